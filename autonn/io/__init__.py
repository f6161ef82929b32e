"""Models and weights in and out: MatConvNet ``.mat`` files (:mod:`autonn.io.matconvnet`),
PyTorch ``.pth`` state dicts (:mod:`autonn.io.pytorch`, without torch) and safetensors files
(:mod:`autonn.io.weights`). No reader ever executes code from a file, and a malformed file
raises :class:`FormatError` (a ValueError) naming it.
"""

from ..errors import FormatError
from .matconvnet import load_matconvnet
from .pytorch import load_torch_state_dict
from .weights import load_safetensors, save_safetensors

__all__ = ["FormatError", "load_matconvnet", "load_safetensors", "load_torch_state_dict",
           "save_safetensors"]
