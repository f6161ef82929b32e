"""The sizes a MATLAB v5 file declares, checked against its bytes before SciPy reads it.

SciPy allocates a cell or struct array from the dimensions its header gives before it reads a
single element: four bytes of a hostile file can ask for a 4 GiB object array. Every element of
such an array is a data element of at least 8 bytes (its tag), so a cell of ``n`` elements (a
struct array of ``n`` elements and ``f`` fields: ``n * f``) needs ``8 n`` bytes of the file
(:func:`check_sizes` walks every cell and struct, compressed ones included, and refuses one
that claims more than it holds). Compressed variables may inflate to ``MAX_INFLATION`` times
their size (or ``SMALL_INFLATED_BYTES``), as zip members may (:mod:`autonn.errors`).

The layout (MathWorks, "MAT-File Format", chapter 1): a 128-byte header, then data elements,
each an 8-byte tag (type, byte count; or, in the "small" form, type and count in 4 bytes and up
to 4 bytes of data) followed by its bytes, padded to 8. A ``miMATRIX`` holds sub-elements:
array flags (its class), dimensions, name, then for a cell its elements, for a struct the field
name length, the names and every field of every element (an object puts its class name first).
"""

import struct
import zlib

from ..errors import MAX_INFLATION, FormatError

MI_INT8, MI_INT32, MI_UINT32, MI_MATRIX, MI_COMPRESSED = 1, 5, 6, 14, 15
MX_CELL, MX_STRUCT, MX_OBJECT, MX_CHAR, MX_SPARSE, MX_UINT64 = 1, 2, 3, 4, 5, 15
COMPLEX_FLAG = 0x800  # of the array flags' first word (class in its low byte)
# The data types an array's numbers may have: the 8-, 16-, 32- and 64-bit integers, single and
# double; text may also be UTF-8/16/32. SciPy looks a type up in a table without checking it
# (a type of 255 read past the table and crashed).
NUMBER_TYPES = {1, 2, 3, 4, 5, 6, 7, 9, 12, 13}
TEXT_TYPES = NUMBER_TYPES | {16, 17, 18}
SMALL_INFLATED_BYTES = 64 * 2**20
TAG_BYTES = 8


def is_v5(header):
    """Whether a file's first 128 bytes are a v5 header (version 0x0100, either byte order)."""
    return len(header) == 128 and header[124:128] in (b"\x00\x01IM", b"\x01\x00MI")


def check_sizes(file, where):
    """Walk the v5 file open in ``file`` (at its start) and raise :class:`FormatError` where a
    cell or struct array declares more elements than its bytes can hold."""
    header = file.read(128)
    order = "<" if header[126:128] == b"IM" else ">"
    file_bytes = _Region(file.read, None, where)
    while file_bytes.more():
        kind, size, _ = _tag(file_bytes, order)
        if kind == MI_COMPRESSED:
            inflated = _Region(_Inflating(file_bytes, size, where).read, None, where)
            while inflated.more():
                _element(inflated, order, where)
        elif kind == MI_MATRIX:
            _matrix(_Region(file_bytes.take, size, where), order, where)
            file_bytes.skip_padding(-size % 8)
        else:
            file_bytes.skip(size)
            file_bytes.skip_padding(-size % 8)


def _element(region, order, where):
    kind, size, _ = _tag(region, order)
    if kind == MI_MATRIX:
        _matrix(_Region(region.take, size, where), order, where)
    else:
        region.skip(size)
    region.skip_padding(-size % 8)


def _matrix(region, order, where):
    if region.left == 0:  # an empty matrix: how MATLAB writes an empty cell element
        return
    _, _, flags = _data_element(region, order)
    mx_class = struct.unpack(order + "I", flags[:4])[0] & 0xFF if len(flags) >= 4 else 0
    if not MX_CELL <= mx_class <= MX_UINT64:
        raise FormatError(f"{where}: an array of MATLAB class {mx_class}: a MatConvNet model "
                          f"holds only numbers, text, cells and structs")
    _, _, dims = _data_element(region, order)
    dims = [n for (n,) in struct.iter_unpack(order + "i", dims[:len(dims) // 4 * 4])]
    if len(dims) < 2 or min(dims) < 0:
        # MATLAB writes two dimensions or more; SciPy indexed the last of none (and crashed)
        raise FormatError(f"{where}: an array of dimensions {dims}: MATLAB arrays have two "
                          f"or more, none negative")
    if mx_class > MX_OBJECT:
        complex_ = bool(struct.unpack(order + "I", flags[:4])[0] & COMPLEX_FLAG)
        _numbers(region, order, mx_class, complex_, where)
        return
    count = 1
    for n in dims:
        count *= n
    _data_element(region, order)  # the name
    if mx_class == MX_OBJECT:
        _data_element(region, order)  # the class name
    if mx_class != MX_CELL:
        _, _, length = _data_element(region, order)
        name_length = struct.unpack(order + "i", length[:4])[0] if len(length) >= 4 else 0
        _, _, names = _data_element(region, order)
        if name_length <= 0 or len(names) % name_length:
            raise FormatError(f"{where}: {len(names)} bytes of field names do not divide "
                              f"into names of {name_length}")
        count *= len(names) // name_length
    if count * TAG_BYTES > region.left:
        raise FormatError(f"{where}: a {('cell', 'struct', 'object')[mx_class - 1]} array "
                          f"declares {count} elements in {region.left} bytes")
    for _ in range(count):
        _element(region, order, where)
    if region.left:
        # SciPy reads on from where the last element ends, not from where the array does
        raise FormatError(f"{where}: {region.left} bytes after the last element of an array")


def _numbers(region, order, mx_class, complex_, where):
    """The name, then the data elements: the real part and, when the complex flag is set, the
    imaginary part (a sparse array has row indices and column starts before them), each of a
    type that arrays may have. SciPy reads as many as the flags say, past the array's end if
    need be, and took the next array's tag for one (which crashed it)."""
    _data_element(region, order)
    allowed = TEXT_TYPES if mx_class == MX_CHAR else NUMBER_TYPES
    expected = (3 if mx_class == MX_SPARSE else 1) + complex_
    found = 0
    while region.left:
        kind, size, _ = _tag(region, order)
        if kind not in allowed:
            raise FormatError(f"{where}: array data of type {kind}, which is no MATLAB "
                              f"number type")
        region.skip(size)
        region.skip_padding(-size % 8)
        found += 1
    if found != expected:
        raise FormatError(f"{where}: an array of MATLAB class {mx_class} has {found} data "
                          f"elements; its flags call for {expected}")


def _tag(region, order):
    """(type, byte count, data of a small element or b'')."""
    first, second = struct.unpack(order + "II", region.take(TAG_BYTES))
    if first >> 16:  # the small form: the count in the upper half, the data in the second word
        size = first >> 16
        return first & 0xFFFF, 0, struct.pack(order + "I", second)[:size]
    return first, second, b""


def _data_element(region, order):
    kind, size, small = _tag(region, order)
    if small or size == 0:
        return kind, len(small), small
    data = region.take(size)
    region.skip(-size % 8)
    return kind, size, data


class _Region:
    """``n`` bytes (or all there are, when ``n`` is None) read through ``read(k)``."""

    def __init__(self, read, n, where):
        self.read, self.left, self.where = read, n, where
        self.peeked = b""

    def more(self):
        if self.left is not None:
            return self.left > 0
        self.peeked = self.peeked or self.read(1)
        return bool(self.peeked)

    def take(self, n):
        if self.left is not None and n > self.left:
            raise FormatError(f"{self.where}: an element of {n} bytes overruns the {self.left} "
                              f"bytes of the one holding it")
        data, self.peeked = self.peeked[:n], self.peeked[n:]
        while len(data) < n:
            chunk = self.read(min(n - len(data), 2**20))
            if not chunk:
                raise FormatError(f"{self.where}: the file ends inside an element")
            data += chunk
        if self.left is not None:
            self.left -= n
        return data

    def skip(self, n):
        while n > 0:
            n -= len(self.take(min(n, 2**20)))

    def skip_padding(self, n):
        """Up to ``n`` bytes of padding, which the last element of a stream may lack."""
        for _ in range(n):
            if not self.more():
                return
            self.take(1)


class _Inflating:
    """The inflated bytes of a compressed element of ``size`` bytes, read in chunks, never more
    than the inflation bound."""

    def __init__(self, source, size, where):
        self.source, self.compressed_left, self.where = source, size, where
        self.inflater = zlib.decompressobj()
        self.bound = max(SMALL_INFLATED_BYTES, MAX_INFLATION * size)
        self.inflated = 0

    def read(self, n):
        while not self.inflater.eof:
            pending = self.inflater.unconsumed_tail
            if not pending:
                if not self.compressed_left:
                    break  # a stream cut short: the walk reports where it ends
                step = min(self.compressed_left, 2**20)
                pending = self.source.take(step)
                self.compressed_left -= step
            data = self.inflater.decompress(pending, n)
            if data:
                self.inflated += len(data)
                if self.inflated > self.bound:
                    raise FormatError(f"{self.where}: a compressed variable inflates beyond "
                                      f"{self.bound} bytes ({MAX_INFLATION}x its size)")
                return data
        if self.compressed_left:  # what follows the end of the stream, inside the element
            self.source.skip(self.compressed_left)
            self.compressed_left = 0
        return b""
