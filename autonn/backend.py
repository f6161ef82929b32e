"""NumPy/CuPy dispatch: where arrays live and how to move them.

Everything above this module asks it which array module an array belongs to; nothing else imports
CuPy. CuPy is optional: without it every GPU request raises a clear error.
"""

import numpy as np

_cupy = None
_cupy_checked = False


def cupy():
    """The cupy module, or None when it is not installed or sees no GPU."""
    global _cupy, _cupy_checked
    if not _cupy_checked:
        _cupy_checked = True
        try:
            import cupy as cp
            if cp.cuda.runtime.getDeviceCount() > 0:
                _cupy = cp
        except Exception:  # no CuPy, no driver or no device: the CPU is all we have
            _cupy = None
    return _cupy


def gpu_available():
    """True when CuPy is installed and a CUDA device is present."""
    return cupy() is not None


def gpu_loaded():
    """Whether CuPy has been imported (without it no array can live on the GPU)."""
    return _cupy is not None


def is_gpu_array(x):
    cp = _cupy
    return cp is not None and isinstance(x, cp.ndarray)


def array_module(*arrays):
    """numpy or cupy, according to where the arrays live (numpy for plain numbers)."""
    for x in arrays:
        if is_gpu_array(x):
            return _cupy
    return np


def device_of(x):
    return "gpu" if is_gpu_array(x) else "cpu"


def check_same_device(op_name, **arrays):
    """Raise ValueError naming the op when array arguments live on different devices."""
    devices = {name: device_of(x) for name, x in arrays.items()
               if x is not None and hasattr(x, "shape")}
    if len(set(devices.values())) > 1:
        where = ", ".join(f"{name} on {device}" for name, device in devices.items())
        raise ValueError(f"{op_name}: inputs live on different devices ({where}); "
                         f"move them with autonn.to_device first")


def to_device(x, device):
    """Copy an array to 'cpu' (NumPy) or 'gpu' (CuPy); other values pass through unchanged."""
    if device not in ("cpu", "gpu"):
        raise ValueError(f"to_device: device must be 'cpu' or 'gpu', got {device!r}")
    if device == "gpu":
        if isinstance(x, np.ndarray):
            cp = cupy()
            if cp is None:
                raise RuntimeError("to_device: no GPU is available (install autonn[cuda] and "
                                   "check that a CUDA device is visible)")
            return cp.asarray(x)
        return x
    if is_gpu_array(x):
        return x.get()
    return x


def to_numpy(x):
    return to_device(x, "cpu")
