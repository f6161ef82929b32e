"""Weights as safetensors files: :func:`save_safetensors` and :func:`load_safetensors`.

A safetensors file is a JSON header (name -> dtype, shape, byte range) and the raw bytes; it
holds no code, and the ``safetensors`` library (an optional extra: ``pip install
autonn[interchange]``) validates the header against the bytes. NumPy has no bfloat16, so
tensors are read from their bytes here: bfloat16 and float16 become float32, as the ``.pth``
reader does for bfloat16; the names are kept as written (PyTorch's ``conv1.weight`` or
autonn's ``conv1_filters``).
"""

import collections
import os

import numpy as np

from .. import backend
from ..errors import FormatError, reading
from .pytorch import bfloat16_to_float32

# safetensors dtype -> the NumPy dtype of its bytes (little-endian)
STORED_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4",
    "I16": "<i2", "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1",
    "BOOL": "?",
}
# NumPy dtype -> safetensors dtype, for writing
WRITTEN_DTYPES = {np.dtype(v): k for k, v in STORED_DTYPES.items() if k != "BF16"}


def save_safetensors(net, path, metadata=None):
    """Write a Net's :meth:`~autonn.Net.state_dict` (or any mapping of name -> array) to
    ``path``. ``metadata`` is a dict of strings stored in the header."""
    save_file = _safetensors("save_safetensors").numpy.save_file
    state = net.state_dict() if hasattr(net, "state_dict") else net
    where = f"save_safetensors({os.path.basename(os.fspath(path))!r})"
    arrays = {}
    for name, value in state.items():
        array = np.asarray(backend.to_numpy(value), order="C")  # (keeps a 0-d array 0-d)
        if array.dtype.newbyteorder("<") not in WRITTEN_DTYPES:
            raise TypeError(f"{where}: {name!r} has dtype {array.dtype}, which safetensors "
                            f"cannot hold")
        arrays[name] = array
    header = {"format": "np", "producer": "autonn"}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"{where}: metadata must map strings to strings, got "
                            f"{key!r}: {value!r}")
        header[key] = value
    save_file(arrays, os.fspath(path), metadata=header)


def load_safetensors(path):
    """Read a safetensors file into an ``OrderedDict`` of name -> NumPy array, for
    :meth:`~autonn.Net.load_state_dict`. A malformed file raises :class:`FormatError` naming
    it."""
    library = _safetensors("load_safetensors")
    path = os.fspath(path)
    where = f"load_safetensors({os.path.basename(path)!r})"
    if not os.path.exists(path):
        raise FileNotFoundError(f"{where}: no such file {path!r}")
    with open(path, "rb") as file:
        content = file.read()
    with reading(where):
        try:
            tensors = library.deserialize(content)
        except library.SafetensorError as error:
            raise FormatError(f"{where}: not a valid safetensors file ({error})") from None
        state = collections.OrderedDict()
        for name, info in tensors:
            state[name] = _array(where, name, info)
    return state


def _safetensors(caller):
    try:
        import safetensors.numpy
    except ImportError:
        raise ImportError(f"{caller}: needs the safetensors package (pip install "
                          f"autonn[interchange])") from None
    return safetensors


def _array(where, name, info):
    dtype = STORED_DTYPES.get(info["dtype"])
    if dtype is None:
        raise FormatError(f"{where}: tensor {name!r} has dtype {info['dtype']}; autonn reads "
                          f"{', '.join(STORED_DTYPES)}")
    array = np.frombuffer(bytes(info["data"]), dtype=dtype).reshape(info["shape"])
    if info["dtype"] == "BF16":
        return bfloat16_to_float32(array)
    if info["dtype"] == "F16":
        return array.astype(np.float32)
    return array.astype(array.dtype.newbyteorder("="))
