"""Writes torch_resnet18.onnx and torch_resnet18_io.npz, which tests/test_onnx.py reads: a
ResNet-18 (He et al.: a 7x7 stem, 4 stages of 2 basic blocks, global average pooling, a linear
classifier) exported by PyTorch's torch.onnx.export, with one input and PyTorch's output.
Its channels are 1/8 of the usual (8 to 64) to keep the file small; its BatchNorm statistics
are random so that they matter. Needs torch (``pip install torch==2.13.0``):

    python tests/data/make_torch_resnet18_onnx.py [width]
"""

import os
import sys

import numpy as np
import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    def __init__(self, width=64, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 7, 2, 3, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        blocks, cin = [], width
        for scale, stride in ((1, 1), (1, 1), (2, 2), (2, 1), (4, 2), (4, 1), (8, 2), (8, 1)):
            blocks.append(BasicBlock(cin, width * scale, stride))
            cin = width * scale
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


def export(path, width, image_size=64):
    """Export a seeded, randomised ResNet-18; returns (input, PyTorch's output)."""
    torch.manual_seed(0)
    model = ResNet18(width).eval()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    x = torch.randn(2, 3, image_size, image_size)
    torch.onnx.export(model, (x,), path, input_names=["images"], output_names=["scores"],
                      opset_version=17, dynamo=False)
    with torch.no_grad():
        return x.numpy(), model(x).numpy()


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    images, scores = export(os.path.join(here, "torch_resnet18.onnx"),
                            int(sys.argv[1]) if len(sys.argv) > 1 else 8)
    np.savez(os.path.join(here, "torch_resnet18_io.npz"), images=images, scores=scores)
