"""The kernel build machinery: one source, compiled for the CPU (cffi) and the GPU (CUDA).

The CUDA side is compiled with nvcc when it is installed, so a CUDA syntax error fails here even
on a machine without a GPU; the GPU launch tests run only where CuPy sees a device.
"""

import itertools
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig

import numpy as np
import pytest

from autonn import backend, kernels
from autonn.kernel_sources import (REAL_TYPES, cdef, cpu_function_signatures,
                                   cpu_struct_declarations, family_headers, helper_headers,
                                   kernel_dir, kernel_signatures, translation_unit)

DTYPES = [np.float32, np.float64]


def test_every_family_header_is_in_the_translation_unit_once_per_real_type():
    source = translation_unit()
    for header in family_headers():
        assert source.count(f'#include "{header}"') == len(REAL_TYPES)


# Which helpers each family that shares code includes (the helpers are never in the translation
# unit itself).
_HELPERS_OF = {
    "activation.h": ("_fast_exp.h", "_softmax.h"),
    "loss.h": ("_fast_exp.h", "_softmax.h"),
    "conv.h": ("_conv_geometry.h", "_cblas.h"),
    "conv_direct.h": ("_conv_geometry.h",),
    "gemm.h": ("_cblas.h",),
}

_STRUCT_TYPEDEF = r"\btypedef\s+struct\s*\{[^{}]*\}\s*an_\w+\s*;"


def _uncommented(name):
    with open(os.path.join(kernel_dir(), name)) as f:
        return re.sub(r"//[^\n]*", " ", re.sub(r"/\*.*?\*/", " ", f.read(), flags=re.S))


def test_helper_headers_are_included_by_the_families_not_by_the_translation_unit():
    helpers = helper_headers()
    assert {"_fast_exp.h", "_softmax.h", "_conv_geometry.h", "_cblas.h"} <= set(helpers)
    assert not set(helpers) & set(family_headers())
    source = translation_unit()
    assert "#define AN_REAL_IS_DOUBLE 0" in source and "#define AN_REAL_IS_DOUBLE 1" in source
    for helper in helpers:
        assert f'"{helper}"' not in source
        text = _uncommented(helper)
        # Helpers hold inline code, macros and types: kernel_signatures and
        # cpu_function_signatures read the families only; cpu_struct_declarations reads both,
        # so a struct is allowed in the one form it copies into the cdef.
        assert not re.search(r"\b(AN_KERNEL|AN_KERNEL_SIZED|AN_CPU_FUNCTION)\s*\(", text)
        assert not re.search(r"\bstruct\b", re.sub(_STRUCT_TYPEDEF, " ", text)), helper
        assert "AN_REAL_IS_DOUBLE" in text, f"{helper} needs a per-REAL-pass guard"
    for family, used in _HELPERS_OF.items():
        text = _uncommented(family)
        for helper in used:
            assert f'#include "{helper}"' in text, f"{family} should include {helper}"


def test_a_struct_in_a_helper_is_declared_to_cffi_once():
    """an_conv_geometry lives in _conv_geometry.h, which conv.h and conv_direct.h both include:
    the cdef declares it once, and no family defines a struct of its own under that name."""
    structs = cpu_struct_declarations()
    names = [re.search(r"\}\s*(an_\w+)\s*;$", s).group(1) for s in structs]
    assert len(names) == len(set(names)) and "an_conv_geometry" in names
    assert cdef().count("} an_conv_geometry;") == 1
    assert re.search(_STRUCT_TYPEDEF, _uncommented("_conv_geometry.h"))
    for family in family_headers():
        assert "an_conv_geometry;" not in _uncommented(family)
    ffi = kernels.cpu_library().ffi
    assert ffi.sizeof("an_conv_geometry") == 16 * ffi.sizeof("index_t")


def _c_compiler():
    command = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    if not command or shutil.which(command[0]) is None:
        pytest.skip("no C compiler")
    return command


def _c_syntax_errors(source):
    """The C compiler's complaints about a translation unit ('' when it compiles)."""
    result = subprocess.run(_c_compiler() + ["-std=c99", "-fsyntax-only",
                                             "-Werror=implicit-function-declaration",
                                             "-I", kernel_dir(), "-x", "c", "-"],
                            input=source, capture_output=True, text=True, timeout=60)
    return "" if result.returncode == 0 else result.stderr or f"exit status {result.returncode}"


@pytest.mark.parametrize("family", family_headers())
def test_every_family_compiles_alone(family):
    """A family may use portable.h and the helpers it includes, not another family: the order of
    the families in the translation unit (alphabetical) must not matter."""
    assert _c_syntax_errors(translation_unit(families=[family])) == ""


def test_families_sharing_helpers_compile_in_either_order():
    """activation.h and loss.h both include _fast_exp.h and _softmax.h: in one REAL pass the
    helpers are defined once, whichever family comes first, and once again in the next pass."""
    for order in (["activation.h", "loss.h"], ["loss.h", "activation.h"]):
        assert _c_syntax_errors(translation_unit(families=order)) == ""
    assert _c_syntax_errors(translation_unit(families=list(reversed(family_headers())))) == ""


@pytest.mark.parametrize("order", list(itertools.permutations(["conv.h", "conv_direct.h",
                                                                "gemm.h"])), ids="+".join)
def test_conv_families_compile_in_any_order(order):
    """conv.h, conv_direct.h and gemm.h share _conv_geometry.h and _cblas.h: their AN()
    definitions once per REAL pass, the struct and the CBLAS constants once per translation
    unit, whichever family comes first."""
    assert _c_syntax_errors(translation_unit(families=list(order))) == ""


@pytest.mark.parametrize("helper", helper_headers())
def test_a_helper_outside_the_translation_unit_says_what_is_missing(helper):
    source = '#include "portable.h"\n#define REAL float\n#define AN_SUFFIX _f32\n' \
             f'#include "{helper}"\n'
    assert "no AN_REAL_IS_DOUBLE" in _c_syntax_errors(source)


def test_a_struct_defined_in_two_headers_is_refused(tmp_path):
    """cpu_struct_declarations reads each helper and family once; the same an_ struct in two
    files would be two definitions in C, and two in the cdef."""
    struct = "typedef struct { index_t a; } an_thing;\n"
    (tmp_path / "portable.h").write_text("")
    (tmp_path / "_shared.h").write_text(struct)
    (tmp_path / "user.h").write_text('#include "_shared.h"\n')
    assert cpu_struct_declarations(str(tmp_path)) == [struct.strip()]
    (tmp_path / "other.h").write_text(struct)
    with pytest.raises(SyntaxError, match="an_thing.*_shared.h"):
        cpu_struct_declarations(str(tmp_path))


def test_cdef_declares_every_kernel_for_both_types():
    declarations = cdef()
    for name in kernel_signatures():
        for suffix in REAL_TYPES:
            assert f"void {name}{suffix}(" in declarations


def test_cpu_library_exports_every_declared_kernel():
    lib = kernels.cpu_library().lib
    for name in kernel_signatures():
        for suffix in REAL_TYPES:
            assert hasattr(lib, name + suffix), name + suffix


def test_cpu_only_drivers_are_declared_to_cffi_but_not_to_the_gpu():
    drivers = cpu_function_signatures()
    calling_the_blas = {"conv_forward_units", "conv_backward_units", "gemm_batched"}
    assert calling_the_blas | {"conv_forward_direct"} <= set(drivers)
    assert not set(drivers) & set(kernel_signatures())
    lib = kernels.cpu_library().lib
    for name, params in drivers.items():
        assert (("void *", "gemm") in params) == (name in calling_the_blas)
        for suffix in REAL_TYPES:
            assert f"int {name}{suffix}(" in cdef() and hasattr(lib, name + suffix)


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_drivers_blas_is_a_working_single_threaded_gemm(dtype):
    """cpu_gemm's function computes C = A B (row-major) for the C drivers."""
    gemm = kernels.cpu_gemm(dtype)
    assert gemm is not None, "scipy-openblas32, a dependency, should be installed"
    import ctypes
    real = ctypes.c_float if dtype == np.float32 else ctypes.c_double
    pointer = ctypes.c_void_p
    function = ctypes.CFUNCTYPE(None, *[ctypes.c_int] * 6, real, pointer, ctypes.c_int, pointer,
                                ctypes.c_int, real, pointer, ctypes.c_int)(
        int(kernels.cpu_library().ffi.cast("uintptr_t", gemm)))
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)).astype(dtype), rng.standard_normal((4, 5)).astype(dtype)
    c = np.zeros((3, 5), dtype)
    function(101, 111, 111, 3, 5, 4, 1.0, a.ctypes.data, 4, b.ctypes.data, 5, 0.0,
             c.ctypes.data, 5)
    np.testing.assert_allclose(c, a @ b, rtol=1e-5)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_cuda_sources_compile_with_nvcc(tmp_path):
    source = tmp_path / "autonn_kernels.cu"
    source.write_text(translation_unit())
    result = subprocess.run(["nvcc", "--ptx", "-x", "cu", "-I", kernel_dir(), str(source),
                             "-o", str(tmp_path / "autonn_kernels.ptx")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    ptx = (tmp_path / "autonn_kernels.ptx").read_text()
    for name in kernel_signatures():
        for suffix in REAL_TYPES:
            assert f".entry {name}{suffix}(" in ptx, f"{name}{suffix} missing from the PTX"


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
@pytest.mark.parametrize("families", [["conv.h"], ["gemm.h", "conv_direct.h", "conv.h"]],
                         ids="+".join)
def test_cuda_sources_compile_conv_alone_and_after_the_cpu_only_families(tmp_path, families):
    """On the GPU, conv.h's kernels take conv_valid_range from _conv_geometry.h whether or not
    conv_direct.h (CPU only, empty there) came first; _cblas.h and the struct are CPU only."""
    source = tmp_path / "conv.cu"
    source.write_text(translation_unit(families=families))
    result = subprocess.run(["nvcc", "--ptx", "-x", "cu", "-I", kernel_dir(), str(source),
                             "-o", str(tmp_path / "conv.ptx")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    ptx = (tmp_path / "conv.ptx").read_text()
    for name in ("im2col", "col2im", "gemm_to_nchw"):
        for suffix in REAL_TYPES:
            assert f".entry {name}{suffix}(" in ptx
    assert "conv_forward_units" not in ptx and "gemm_batched" not in ptx


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_cuda_sources_compile_with_loss_before_activation(tmp_path):
    """The helpers on the GPU side: loss.h needs nothing from activation.h, and the helpers both
    include are defined once per REAL pass (NVRTC finds them, like the families, with -I)."""
    source = tmp_path / "loss_first.cu"
    source.write_text(translation_unit(families=["loss.h", "activation.h"]))
    result = subprocess.run(["nvcc", "--ptx", "-x", "cu", "-I", kernel_dir(), str(source),
                             "-o", str(tmp_path / "loss_first.ptx")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    ptx = (tmp_path / "loss_first.ptx").read_text()
    for name in ("softmaxlog_forward", "softmax_forward", "sigmoid_forward"):
        for suffix in REAL_TYPES:
            assert f".entry {name}{suffix}(" in ptx


def _devices():
    return ["cpu", pytest.param("gpu", marks=[pytest.mark.gpu, pytest.mark.skipif(
        not backend.gpu_available(), reason="no GPU")])]


@pytest.mark.parametrize("device", _devices())
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 7, 100_003])  # 100_003 crosses the OpenMP threshold
def test_fill_and_axpy_kernels_run_end_to_end(device, dtype, n):
    x = np.arange(n, dtype=dtype)
    y = np.ones(n, dtype=dtype)
    x, y = backend.to_device(x, device), backend.to_device(y, device)
    kernels.launch("axpy", n, 0.5, x, y, n)
    np.testing.assert_allclose(backend.to_numpy(y), 0.5 * np.arange(n) + 1, rtol=1e-6)
    kernels.launch("fill", n, y, -2.0, n)
    assert np.all(backend.to_numpy(y) == -2.0)


def test_launch_refuses_non_contiguous_arrays():
    y = np.zeros((4, 4), np.float32)[:, 1]
    with pytest.raises(ValueError, match="C-contiguous"):
        kernels.launch("fill", 4, y, 1.0, 4)


def test_launch_refuses_unsupported_dtypes():
    with pytest.raises(TypeError, match="float16"):
        kernels.launch("fill", 4, np.zeros(4, np.float16), 1.0, 4)


def test_build_without_a_compiler_fails_with_a_clear_message(tmp_path):
    script = os.path.join(os.path.dirname(kernel_dir()), "kernels", "build_cpu.py")
    if not os.path.isfile(script):
        pytest.skip("installed package: no build script")
    environment = dict(os.environ, CC=str(tmp_path / "no-such-compiler"))
    result = subprocess.run([sys.executable, script], capture_output=True, text=True,
                            env=environment, cwd=tmp_path, timeout=120)
    assert result.returncode != 0
    assert "needs a C compiler" in result.stderr and "no-such-compiler" in result.stderr


def test_gpu_launch_compiles_the_same_source_and_converts_arguments(monkeypatch):
    """The CuPy path, with a stand-in for CuPy: which source it compiles, which function it
    launches, and the C types it gives Python numbers (runs without a GPU)."""
    import types

    class FakeArray:
        def __init__(self, array):
            self.dtype, self.flags, self.shape = array.dtype, array.flags, array.shape

    launches, compiled = [], []

    class FakeRawModule:
        def __init__(self, code, options):
            compiled.append((code, options))

        def get_function(self, name):
            return lambda grid, block, args: launches.append((name, grid, block, args))

    fake_cupy = types.SimpleNamespace(
        ndarray=FakeArray, RawModule=FakeRawModule,
        cuda=types.SimpleNamespace(Device=lambda: types.SimpleNamespace(id=0)))
    monkeypatch.setattr(backend, "_cupy", fake_cupy)
    monkeypatch.setattr(backend, "_cupy_checked", True)
    monkeypatch.setattr(kernels, "_gpu_modules", {})
    x, y = FakeArray(np.zeros(1000)), FakeArray(np.zeros(1000))
    kernels.launch("axpy", 1000, 2, x, y, 1000)
    kernels.launch("fill", 10, y, 1, 10)
    assert len(compiled) == 1                       # compiled once per device, then cached
    code, options = compiled[0]
    assert code == translation_unit() and "-I" + kernel_dir() in options
    name, grid, block, args = launches[0]
    assert (name, grid, block) == ("axpy_f64", (4,), (256,))
    assert [type(a) for a in args] == [np.float64, FakeArray, FakeArray, np.int64]
    with pytest.raises(TypeError, match=r"kernel fill: argument 'y' \(REAL \*\) must be a CuPy"):
        kernels.launch("fill", 10, np.zeros(10), 1.0, y)


def test_the_drivers_blas_is_held_to_one_thread_even_when_raised_from_outside():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    kernels.cpu_gemm(np.float32)                         # loads the library
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((8, 2, 9, 9)), rng.standard_normal((3, 2, 3, 3))
    dy = rng.standard_normal((8, 3, 7, 7))
    with threadpoolctl.threadpool_limits(limits=2):       # raises every BLAS, ours included
        from autonn import nn
        dx = nn.conv(x, w, dzdy=dy)[0]                   # the backward of small images uses it
        ours = [pool for pool in threadpoolctl.threadpool_info()      # not NumPy's *openblas64_*
                if os.path.basename(pool["filepath"]).startswith("libscipy_openblas.")]
        assert ours and all(pool["num_threads"] == 1 for pool in ours)
    np.testing.assert_allclose(dx, nn.conv(x, w, dzdy=dy)[0], rtol=1e-12)



def test_an_unaligned_array_reaches_the_kernels_as_an_aligned_copy(monkeypatch):
    # np.frombuffer at an odd offset gives a float array at an odd address; C may not read a
    # float there (and vectorises assuming it does not)
    from autonn import nn
    values = np.linspace(-2, 2, 4 * 6 * 6, dtype=np.float32)
    raw = b"\0" + values.tobytes()
    x = np.frombuffer(raw, np.float32, offset=1).reshape(1, 4, 6, 6)
    assert not x.flags.aligned
    seen = []
    library = kernels.cpu_library()

    class Spy:  # library.ffi, noting the alignment of every array handed to C
        def __getattr__(self, name):
            return getattr(library.ffi, name)

        def from_buffer(self, kind, array):
            seen.append(array.flags.aligned)
            return library.ffi.from_buffer(kind, array)

    spied = type("SpiedLibrary", (), {"lib": library.lib, "ffi": Spy()})()
    monkeypatch.setattr(kernels, "cpu_library", lambda: spied)
    np.testing.assert_array_equal(nn.relu(x), np.maximum(values, 0).reshape(x.shape))
    w = np.ones((2, 4, 3, 3), np.float32)
    np.testing.assert_allclose(nn.conv(x, w), nn.conv(np.ascontiguousarray(x), w), rtol=1e-6)
    assert seen and all(seen)
