"""The file readers against hostile files of the kinds coverage-guided fuzzing found.

``scripts/fuzz_loaders.py`` fuzzes every reader with atheris; the slow step runs it for
``AUTONN_FUZZ_SECONDS`` (default 40) per target. What it found is rebuilt here, byte by byte,
and replayed on every run in a child process with its address space capped at 2 GiB: before
the readers checked these files, four of them crashed SciPy (segmentation faults), five asked
for gigabytes and three raised raw errors.
"""

import importlib.util
import io
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import autonn as an
from autonn import nn

FUZZER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts",
                      "fuzz_loaders.py")


# ------------------------------------------------------------------------- MATLAB v5 files
def mat_element(kind, data):
    return struct.pack("<II", kind, len(data)) + data + b"\0" * (-len(data) % 8)


def mat_matrix(mx_class, dims, name, *body, flags=0):
    """A miMATRIX element: array flags, dimensions, name, then ``body``."""
    return mat_element(14, mat_element(6, struct.pack("<II", mx_class | flags, 0))
                       + mat_element(5, struct.pack(f"<{len(dims)}i", *dims))
                       + mat_element(1, name.encode()) + b"".join(body))


def mat_double(value, name=""):
    return mat_matrix(6, (1, 1), name, mat_element(9, struct.pack("<d", value)))


def mat_struct(dims, name_length, names, *fields):
    return mat_matrix(2, dims, "layers", mat_element(5, struct.pack("<i", name_length)),
                      mat_element(1, names), *fields)


def mat_file(*elements):
    header = b"MATLAB 5.0 MAT-file".ljust(116, b" ") + b"\0" * 8 + struct.pack("<H", 0x0100)
    return header + b"IM" + b"".join(elements)


TYPE_FIELD = b"type".ljust(32, b"\0")


# ------------------------------------------------------------------------- .npz and .pth files
def zipped(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def saved_net(folder):
    net = an.Net(nn.relu(nn.conv(an.Input("x"), an.Param(np.ones((2, 1, 3, 3), np.float32),
                                                         name="w"), pad=1)))
    path = os.path.join(folder, "valid.npz")
    net.save(path)
    with open(path, "rb") as file:
        return file.read()


def central_directory_moved(content):
    """The end record says the central directory starts 4 KiB later than it does: the offsets
    of the members, taken relative to it, fall before the file's start."""
    end = content.rfind(b"PK\x05\x06")
    (offset,) = struct.unpack("<I", content[end + 16:end + 20])
    return content[:end + 16] + struct.pack("<I", offset + 4096) + content[end + 20:]


def npy_header_unbalanced(content):
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1, 3, 3 }"
    header = header.ljust(118, b" ") + b"\n"
    members["param:w.npy"] = (b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header
                              + members["param:w.npy"][128:])
    return zipped(members)


def flagged_encrypted(content):
    entry = content.rfind(b"PK\x01\x02")  # the last member's central directory entry
    (flags,) = struct.unpack("<H", content[entry + 8:entry + 10])
    return content[:entry + 8] + struct.pack("<H", flags | 1) + content[entry + 10:]


# LONG_BINPUT to memo slot 2^31 - 1: C's unpickler allocates 2^31 slots (16 GiB) at once
TORCH_MAGIC = 0x1950a86a20f9469cfc6c
HUGE_MEMO_INDEX = b"r\xff\xff\xff\x7f"
LEGACY_MAGIC_WITH_HUGE_MEMO = (b"\x80\x02\x8a\x0a" + TORCH_MAGIC.to_bytes(10, "little")
                               + HUGE_MEMO_INDEX + b".")
STATE_WITH_HUGE_MEMO = b"\x80\x02}" + HUGE_MEMO_INDEX + b"."
# BYTEARRAY8 of 16 GiB: Python's unpickler allocates the bytearray before reading it
HUGE_BYTEARRAY = b"\x80\x05\x96" + struct.pack("<Q", 2**34) + b"xyz."
LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + TORCH_MAGIC.to_bytes(10, "little") + b"."


def hostile_files(folder):
    """name -> (the file's bytes, what the reader must say: its FormatError's text, or
    'loaded' and the repr of what it returns)."""
    net = saved_net(folder)
    return {
        "npz-offset-before-start.npz": (central_directory_moved(net),
                                        "an offset in the file points outside it"),
        "npz-header-token-error.npz": (npy_header_unbalanced(net),
                                       "an array's .npy header is malformed"),
        "npz-encrypted-member.npz": (flagged_encrypted(net), "member 'param:w.npy' is encrypted"),
        "pth-legacy-memo-index.pth": (LEGACY_MAGIC_WITH_HUGE_MEMO,
                                      "the pickle is malformed (it ends early)"),
        "pth-zip-pickle-memo.pth": (zipped({"model/data.pkl": STATE_WITH_HUGE_MEMO}),
                                    "loaded {}"),
        "pth-legacy-bytearray.pth": (LEGACY_MAGIC + HUGE_BYTEARRAY,
                                     "a byte array of 17179869184 bytes is cut short at 4"),
        "pth-zip-bytearray.pth": (zipped({"model/data.pkl": HUGE_BYTEARRAY}),
                                  "a byte array of 17179869184 bytes is cut short at 4"),
        "mat-struct-dims.mat": (
            mat_file(mat_struct((1, 2**30 + 2), 32, TYPE_FIELD, mat_double(1.0))),
            "a struct array declares 1073741826 elements in 64 bytes"),  # SciPy: 8 GiB
        "mat-data-type-segfault.mat": (
            mat_file(mat_matrix(6, (1, 1), "layers", mat_element(255, bytes(8)))),
            "array data of type 255, which is no MATLAB number type"),
        "mat-complex-flag-segfault.mat": (
            mat_file(mat_matrix(6, (1, 1), "layers", mat_element(9, bytes(8)), flags=0x800),
                     mat_double(2.0, "meta")),
            "has 1 data elements; its flags call for 2"),
        "mat-no-dims-segfault.mat": (
            mat_file(mat_matrix(4, (), "layers", mat_element(16, b"ab"))),
            "an array of dimensions []"),
        "mat-field-name-length-zero.mat": (  # SciPy: ZeroDivisionError
            mat_file(mat_struct((1, 1), 0, TYPE_FIELD, mat_double(1.0))),
            "32 bytes of field names do not divide into names of 0"),
    }


REPLAY = textwrap.dedent("""
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    import autonn as an
    from autonn.io import load_matconvnet, load_torch_state_dict
    load = {".npz": an.Net.load, ".pth": load_torch_state_dict, ".mat": load_matconvnet}
    for path in sys.argv[1:]:
        try:
            print("loaded", repr(load[path[-4:]](path)))
        except an.FormatError as error:
            print("FormatError", error)
""")


def test_every_hostile_file_raises_the_format_error_it_should(tmp_path):
    files = hostile_files(str(tmp_path))
    for name, (content, _) in files.items():
        (tmp_path / name).write_bytes(content)
    done = subprocess.run([sys.executable, "-c", REPLAY, *(str(tmp_path / n) for n in files)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]  # -11: a segmentation fault
    lines = done.stdout.splitlines()
    assert len(lines) == len(files), done.stdout
    for (name, (_, expected)), line in zip(files.items(), lines):
        if expected.startswith("loaded"):
            assert line == expected, (name, line)
        else:
            assert line.startswith(f"FormatError {where(name)}") and expected in line, \
                (name, line)
        assert "MemoryError" not in line, (name, line)


def where(name):
    reader = {".npz": "Net.load", ".pth": "load_torch_state_dict",
              ".mat": "load_matconvnet"}[name[-4:]]
    return f"{reader}({name!r})"


def test_the_hostile_pickles_do_exhaust_the_stock_unpicklers():
    """The memo files are hostile through C's unpickler, which the reader must not use, and
    the byte array through Python's as it comes: under a 2 GiB cap neither can allocate."""
    code = textwrap.dedent("""
        import pickle, resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
        for load, data in zip((pickle.loads, pickle.loads, pickle._loads), sys.argv[1:]):
            try:
                load(bytes.fromhex(data))
            except MemoryError:
                print("MemoryError")
    """)
    done = subprocess.run([sys.executable, "-c", code, LEGACY_MAGIC_WITH_HUGE_MEMO.hex(),
                           STATE_WITH_HUGE_MEMO.hex(), HUGE_BYTEARRAY.hex()],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["MemoryError"] * 3, done.stderr
    assert pickle._loads(STATE_WITH_HUGE_MEMO) == {}  # the pure-Python one keeps a dict


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="needs atheris")
@pytest.mark.parametrize("target", ["net", "net-graph", "pth", "pth-pickle", "mat", "onnx",
                                    "safetensors"])
def test_the_fuzzer_finds_nothing(tmp_path, target):
    seconds = int(os.environ.get("AUTONN_FUZZ_SECONDS", "40"))
    done = subprocess.run(
        [sys.executable, FUZZER, target, f"-max_total_time={seconds}", "-timeout=20",
         "-rss_limit_mb=3000", f"-artifact_prefix={tmp_path}/"],
        capture_output=True, text=True, timeout=seconds + 300, cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(tmp_path)})
    found = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert done.returncode == 0 and not found, (
        f"fuzz target {target!r} found {found} (rebuild the input in hostile_files and fix "
        f"the reader):\n{done.stderr[-4000:]}")
