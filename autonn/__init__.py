"""autonn: MatConvNet and its AutoNN wrapper in Python.

Write a network as Python and NumPy expressions on :class:`Layer` objects, compile it with
:class:`Net` into a forward/backward tape, and evaluate it on NumPy (CPU) or CuPy (GPU) arrays.
"""

from . import nn
from .backend import gpu_available, to_device
from .errors import FormatError
from .gradient_check import GradcheckReport, gradcheck
from .layer import Input, Layer, Param, Selector, workspace_names
from .loops import For, While
from .net import Net
from .ops import Op, op

__version__ = "0.1.0"

__all__ = [
    "For", "FormatError", "GradcheckReport", "Input", "Layer", "Net", "Op", "Param", "Selector", "gpu_available",
    "gradcheck", "nn", "op", "to_device", "While", "workspace_names",
]
from . import solvers, datasets, models  # noqa: E402  (Training)
from .training import train  # noqa: E402  (Training)
from . import viz  # noqa: E402  (Jupyter pictures)
from . import simplenn, dagnn, wrappers, io  # noqa: E402  (MatConvNet wrappers, model import)


def __getattr__(name):
    # an.testing needs Hypothesis (a test dependency), so it is imported on first use only
    if name == "testing":
        import importlib
        return importlib.import_module(".testing", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
