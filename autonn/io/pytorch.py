"""Reading PyTorch state dicts without torch (:func:`load_torch_state_dict`).

PyTorch's zip format (``torch.save`` since 1.6) is a zip holding ``<name>/data.pkl`` (a pickle
of the state dict whose tensors refer to storages by key) and one raw little-endian file per
storage, ``<name>/data/<key>``. It is read here *without torch*: a restricted unpickler rebuilds
``OrderedDict``\\ s and tensors (``torch._utils._rebuild_tensor_v2``, ``_rebuild_parameter``,
the ``torch.*Storage`` types) as NumPy arrays and refuses every other global, so a malicious file
cannot run code.
"""

import collections
import io
import math
import os
import pickle
import struct
import zipfile

import numpy as np

from ..errors import RefusedCode, reading, check_zip_members

ALLOWED_STORAGES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
    "BFloat16Storage": np.uint16,  # NumPy has no bfloat16: its 16-bit words, widened on reading
}
LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
# A tensor's elements must lie inside its storage, but zero or overlapping strides (what
# ``expand`` makes) can still ask for any number of them, which reading copies out: such a
# tensor may hold at most this many elements, any other at most its storage's.
MAX_EXPANDED_ELEMENTS = 2**24


def load_torch_state_dict(path):
    """Read a PyTorch ``.pth``/``.pt`` file without torch.

    Returns what was saved with every tensor as a NumPy array: usually an ``OrderedDict`` of
    parameter name -> array (a state dict). Both the zip format (``torch.save`` since 1.6) and
    the older stream format (magic number, header pickles, the data pickle, then the raw
    storages) are read. Only ``collections.OrderedDict``, tensors and their storages may appear
    in the pickle; any other global (classes or functions that ``torch.load`` would run) raises
    :class:`autonn.errors.RefusedCode` naming it (a :class:`~autonn.errors.FormatError` and a
    ``pickle.UnpicklingError``); any other malformed content raises ``FormatError``.
    """
    path = os.fspath(path)
    where = f"load_torch_state_dict({os.path.basename(path)!r})"
    if not os.path.exists(path):
        raise FileNotFoundError(f"{where}: no such file {path!r}")
    with reading(where):
        if zipfile.is_zipfile(path):
            return _load_torch_zip(path, where)
        return _load_torch_legacy(path, where)


def _load_torch_zip(path, where):
    with zipfile.ZipFile(path) as archive:
        names = [info.filename for info in check_zip_members(archive, where)]
        pickles = [n for n in names if n.endswith("data.pkl")]
        if len(pickles) != 1:
            raise ValueError(f"{where}: expected one '<name>/data.pkl' in the archive, found "
                             f"{pickles}")
        prefix = pickles[0][:-len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in names:
            byteorder = archive.read(prefix + "byteorder").decode().strip()
        # in memory: the unpickler allocates what a length in the pickle says before reading,
        # and a BytesIO has no more to give than it holds
        result, storages = _restricted_load(io.BytesIO(archive.read(pickles[0])), where)
        for key, storage in storages.items():
            member = f"{prefix}data/{key}"
            try:
                raw = archive.read(member)
            except KeyError:
                raise ValueError(f"{where}: storage {member!r} is missing from the archive") \
                    from None
            storage.fill(np.frombuffer(raw, dtype=storage.dtype.newbyteorder(
                "<" if byteorder == "little" else ">")), where)
    return _resolve(result)


def _load_torch_legacy(path, where):
    with open(path, "rb") as file:
        stream = _ClampedReads(file)
        # Even the magic number is read by the restricted unpickler: the first pickle of a
        # hostile file is as able to run code as any other.
        try:
            magic = _restricted_load(stream, where)[0]
        except RefusedCode:
            raise
        except Exception:
            magic = None
        if type(magic) is not int or magic != LEGACY_MAGIC:
            raise ValueError(f"{where}: not a PyTorch file (neither a zip archive nor the "
                             f"legacy stream format with its magic number)")
        # protocol version and system information: plain numbers, dicts and booleans
        _restricted_load(stream, where)
        system = _restricted_load(stream, where)[0]
        little = system.get("little_endian", True) if isinstance(system, dict) else True
        result, storages = _restricted_load(stream, where)
        keys, _ = _restricted_load(stream, where)
        if not isinstance(keys, (list, tuple)) or any(key not in storages for key in keys):
            raise ValueError(f"{where}: the list of storage keys does not match the storages "
                             f"the data pickle names")
        for key in keys:
            storage = storages[key]
            header = stream.read(8)
            if len(header) != 8:
                raise ValueError(f"{where}: the file ends before storage {key!r}")
            count = int(np.frombuffer(header, dtype="<i8")[0])
            if count < 0:
                raise ValueError(f"{where}: storage {key!r} declares {count} elements")
            raw = stream.read(count * storage.dtype.itemsize)
            if len(raw) != count * storage.dtype.itemsize:
                raise ValueError(f"{where}: the file ends inside storage {key!r}")
            storage.fill(np.frombuffer(raw, dtype=storage.dtype.newbyteorder(
                "<" if little else ">")), where)
    return _resolve(result)


class _ClampedReads:
    """A file whose reads never ask for more than is left in it: the unpickler allocates what
    a length in the pickle says before reading (4 bytes of a hostile file could ask for 4 GiB),
    and a file's read allocates what it is asked for."""

    def __init__(self, file):
        self.file, self.size = file, os.fstat(file.fileno()).st_size

    def _left(self, n):
        left = max(self.size - self.file.tell(), 0)
        return left if n is None or n < 0 else min(n, left)

    def read(self, n=-1):
        return self.file.read(self._left(n))

    def readline(self, n=-1):
        return self.file.readline(self._left(n))


class _StorageType:
    """Stands for ``torch.<Type>Storage`` inside the pickle: only its dtype matters."""

    def __init__(self, name):
        self.name, self.dtype = name, np.dtype(ALLOWED_STORAGES[name])
        self.bfloat16 = name == "BFloat16Storage"


class _Storage:
    """A storage named in the pickle; its bytes come after (legacy) or beside (zip) it."""

    def __init__(self, key, dtype, count, bfloat16=False):
        self.key, self.dtype, self.count, self.data = key, dtype, count, None
        self.bfloat16 = bfloat16

    def fill(self, data, where):
        if data.size < self.count:
            raise ValueError(f"{where}: storage {self.key!r} holds {data.size} elements, the "
                             f"pickle says {self.count}")
        self.data = data


class _PendingTensor:
    """A tensor whose storage has not been read yet."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, offset
        self.size, self.stride = size, stride

    def array(self):
        data = self.storage.data
        native = data.dtype.newbyteorder("=")
        self._check_geometry(data.size, data.itemsize)
        if not self.size:
            array = np.array(data[self.offset], dtype=native)
        else:
            view = np.lib.stride_tricks.as_strided(
                data[self.offset:], shape=self.size,
                strides=tuple(s * data.itemsize for s in self.stride))
            array = np.ascontiguousarray(view).astype(native, copy=False)
        return bfloat16_to_float32(array) if self.storage.bfloat16 else array


    def _check_geometry(self, available, itemsize):
        """The file's offset, sizes and strides must be whole numbers that keep every element
        inside the storage: they reach ``as_strided``, which would read anywhere in memory."""
        text = f"tensor of size {self.size!r}, stride {self.stride!r} at offset {self.offset!r}"
        size, stride, offset = self.size, self.stride, self.offset
        if not (_is_int(offset) and isinstance(size, tuple) and isinstance(stride, tuple)
                and len(size) == len(stride) and all(map(_is_int, size + stride))):
            raise ValueError(f"{text}: offset, sizes and strides must be integers, as many "
                             f"strides as sizes")
        if offset < 0 or min(size, default=0) < 0 or min(stride, default=0) < 0:
            raise ValueError(f"{text}: offset, sizes and strides must not be negative")
        elements = math.prod(size)
        if elements > max(available, MAX_EXPANDED_ELEMENTS):
            raise ValueError(f"{text}: {elements} elements from a storage of {available} "
                             f"(zero or overlapping strides may give at most "
                             f"{MAX_EXPANDED_ELEMENTS})")
        # the last element read: (offset when the tensor is empty: nothing is read then)
        last = offset + sum((n - 1) * s for n, s in zip(size, stride)) if elements else offset - 1
        if last >= available:
            raise ValueError(f"{text} overruns its storage of {available} elements")


def bfloat16_to_float32(words):
    """bfloat16 numbers given as their 16-bit words (NumPy has no bfloat16): a bfloat16 is the
    upper half of the float32 it rounds, so each widens exactly."""
    return (words.astype(np.uint32) << 16).view(np.float32)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _restricted_load(stream, where):
    """Unpickle one object allowing only tensors, storages and OrderedDicts; returns the object
    (tensors still pending) and the storages it named, by key."""
    storages = {}

    # Python's own unpickler, not the C one: the C unpickler's memo is an array that a
    # LONG_BINPUT index grows to (5 bytes of a file asked for 9 GiB); this one's is a dict.
    class Unpickler(pickle._Unpickler):
        dispatch = dict(pickle._Unpickler.dispatch)

        def load_bytearray8(self):
            # Python's version allocates the length the pickle gives before reading (8 bytes
            # of a file asked for gigabytes); this one reads what is there, then checks.
            (length,) = struct.unpack("<Q", self.read(8))
            data = self.read(length)
            if len(data) != length:
                raise pickle.UnpicklingError(f"{where}: a byte array of {length} bytes is "
                                             f"cut short at {len(data)}")
            self.append(bytearray(data))
        dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8

        def find_class(self, module, name):
            if (module, name) == ("collections", "OrderedDict"):
                return collections.OrderedDict
            if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                return _rebuild_tensor_v2
            if (module, name) == ("torch._utils", "_rebuild_parameter"):
                return _rebuild_parameter
            if module == "torch" and name in ALLOWED_STORAGES:
                return _StorageType(name)
            raise RefusedCode(
                f"{where}: refusing to load global '{module}.{name}': only tensors, their "
                f"storages and OrderedDicts are allowed (the file may contain code)")

        def persistent_load(self, pid):
            # zip: ('storage', type, key, location, count); legacy adds view metadata.
            if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
                    and isinstance(pid[1], _StorageType)):
                raise pickle.UnpicklingError(f"{where}: unsupported persistent id {pid!r}")
            if len(pid) == 6 and pid[5] is not None:
                raise pickle.UnpicklingError(f"{where}: storage views (legacy view metadata "
                                             f"{pid[5]!r}) are not supported")
            _, storage_type, key, _location, count = pid[:5]
            if key not in storages:
                storages[key] = _Storage(key, storage_type.dtype, int(count),
                                         storage_type.bfloat16)
            return storages[key]

    try:
        return Unpickler(stream).load(), storages
    except (KeyError, IndexError, AttributeError, TypeError, ValueError, EOFError,
            struct.error, pickle.UnpicklingError) as error:
        if isinstance(error, RefusedCode) or str(error).startswith(where):
            raise
        # a memo entry never stored, a call with the wrong arguments, a stack too short...
        what = "it ends early" if isinstance(error, EOFError) else \
            f"{type(error).__name__}: {error}"
        raise pickle.UnpicklingError(f"{where}: the pickle is malformed ({what})") from None


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("load_torch_state_dict: a tensor without a storage")
    return _PendingTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


def _resolve(value, done=None):
    """Replace pending tensors by arrays inside dicts, lists and tuples. What the pickle shares
    is resolved once and stays shared: a pickle of nested lists that each hold the one below
    twice is small, and resolving it as a tree would take time exponential in its depth."""
    done = {} if done is None else done
    if id(value) in done:
        return done[id(value)][1]
    if isinstance(value, _PendingTensor):
        resolved = value.array()
    elif isinstance(value, dict):
        resolved = type(value)() if isinstance(value, collections.OrderedDict) else {}
        for key, item in value.items():
            resolved[key] = _resolve(item, done)
    elif isinstance(value, (list, tuple)):
        resolved = type(value)(_resolve(v, done) for v in value)
    else:
        return value
    done[id(value)] = (value, resolved)  # (the value kept alive: its id stays its own)
    return resolved
