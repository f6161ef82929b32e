"""Reading pretrained models: MatConvNet ``.mat`` files (:mod:`autonn.io.matconvnet`) and PyTorch
``.pth`` state dicts (:mod:`autonn.io.pytorch`, without torch). No reader ever executes code
from a file.
"""

from .matconvnet import load_matconvnet
from .pytorch import load_torch_state_dict

__all__ = ["load_matconvnet", "load_torch_state_dict"]
