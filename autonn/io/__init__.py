"""Reading pretrained models: MatConvNet ``.mat`` files (:mod:`autonn.io.matconvnet`) and PyTorch
``.pth`` state dicts (:mod:`autonn.io.pytorch`, without torch). No reader ever executes code
from a file, and a malformed file raises :class:`FormatError` (a ValueError) naming it.
"""

from ..errors import FormatError
from .matconvnet import load_matconvnet
from .pytorch import load_torch_state_dict

__all__ = ["FormatError", "load_matconvnet", "load_torch_state_dict"]
