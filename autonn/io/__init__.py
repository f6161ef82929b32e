"""Models and weights in and out: MatConvNet ``.mat`` files (:mod:`autonn.io.matconvnet`),
PyTorch ``.pth`` state dicts (:mod:`autonn.io.pytorch`, without torch), safetensors files
(:mod:`autonn.io.weights`) and ONNX models (:mod:`autonn.io.onnx_export`,
:mod:`autonn.io.onnx_import`). No reader ever executes code from a file, and a malformed file
raises :class:`FormatError` (a ValueError) naming it.
"""

from ..errors import FormatError
from .matconvnet import load_matconvnet
from .onnx_export import ExportError, export_onnx
from .onnx_import import load_onnx
from .pytorch import load_torch_state_dict
from .weights import load_safetensors, save_safetensors

__all__ = ["ExportError", "FormatError", "export_onnx", "load_matconvnet", "load_onnx",
           "load_safetensors", "load_torch_state_dict", "save_safetensors"]
