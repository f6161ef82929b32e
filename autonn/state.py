"""A net's parameters by name: :meth:`Net.state_dict` and :meth:`Net.load_state_dict`.

PyTorch's names for what MatConvNet users do with ``net.params``: save the values, or load the
ones whose names and shapes match into a rebuilt graph (fine-tuning with a new head). Every
Param is included, bnorm's ``'average'`` moments too.
"""

import collections
from typing import NamedTuple

import numpy as np

from . import backend


class LoadReport(NamedTuple):
    """What :meth:`Net.load_state_dict` did not load: ``missing`` (the net's Params the dict
    does not name), ``unexpected`` (names the net has no Param for) and ``mismatched``
    (``(name, the Param's shape, the dict's shape)``)."""
    missing: list
    unexpected: list
    mismatched: list


def state_dict(params):
    """``OrderedDict`` of Param name -> a copy of its value, in the net's order."""
    return collections.OrderedDict((p.name, p.value.copy()) for p in params)


def load_state_dict(params, state, strict=True):
    """Copy ``state``'s arrays into the Params of the same names (converted to each Param's
    dtype and device). ``strict=True`` loads nothing unless the names and shapes match exactly
    (``KeyError`` or ``ValueError`` listing every difference); ``strict=False`` loads what
    matches and returns a :class:`LoadReport` of the rest."""
    if not isinstance(state, collections.abc.Mapping):
        raise TypeError(f"Net.load_state_dict: expected a mapping of name -> array, got "
                        f"{type(state).__name__}")
    by_name = {p.name: p for p in params}
    missing = [name for name in by_name if name not in state]
    unexpected = [name for name in state if name not in by_name]
    loads, mismatched = [], []
    for name, param in by_name.items():
        if name not in state:
            continue
        value = _as_array(name, state[name])
        if tuple(value.shape) != tuple(param.value.shape):
            mismatched.append((name, tuple(param.value.shape), tuple(value.shape)))
        else:
            loads.append((param, value))
    if strict and (missing or unexpected):
        raise KeyError(f"Net.load_state_dict: names differ (strict=True): missing "
                       f"{missing}, unexpected {unexpected}; strict=False loads the rest")
    if strict and mismatched:
        raise ValueError("Net.load_state_dict: shapes differ (strict=True): " + "; ".join(
            f"{name}: the net's {want}, the dict's {got}" for name, want, got in mismatched))
    # converted first, assigned after: an error leaves every Param as it was
    converted = [(p, backend.to_device(np.asarray(v, dtype=p.value.dtype),
                                       backend.device_of(p.value))) for p, v in loads]
    for param, value in converted:
        param.value = value
    return LoadReport(missing, unexpected, mismatched)


def _as_array(name, value):
    """A NumPy view of a NumPy or CuPy array, or of anything NumPy reads (a torch tensor)."""
    array = backend.to_numpy(value) if backend.is_gpu_array(value) else np.asarray(value)
    if array.dtype.kind not in "fiub":
        raise TypeError(f"Net.load_state_dict: {name!r} must be an array of numbers, got "
                        f"dtype {array.dtype}")
    return array
