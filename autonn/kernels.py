"""Calling the C kernels of ``kernels/`` on NumPy arrays (CPU) or CuPy arrays (GPU).

One entry point serves both devices::

    from autonn import kernels
    kernels.launch("axpy", n, 2.0, x, y, n)     # y += 2 x, where x and y live

``launch(name, count, *args)`` picks the device from the array arguments and the type suffix
(``_f32``/``_f64``) from the first floating-point array, then

- on the CPU calls ``autonn._kernels_cpu.lib.<name>_f32(...)``, built by cffi at install time,
  passing arrays with ``ffi.from_buffer`` (no copy; arrays must be C-contiguous); the kernel's
  own OpenMP loop runs over ``count`` (cffi releases the GIL during the call);
- on the GPU compiles the same translation unit with CuPy ``RawModule`` on first use (cached per
  device), and launches ``<name>_f32`` with a grid-stride loop over ``count`` elements; Python
  numbers are converted to the C type the kernel declares (``REAL``, ``index_t``, ``int``).

CuPy is imported only on the GPU path, so the CPU never needs it.
"""

import importlib
import os

import numpy as np

from . import backend
from .kernel_sources import DTYPE_SUFFIX, kernel_dir, kernel_signatures, translation_unit

_CPU_TYPES = {np.dtype(np.float32): "float[]", np.dtype(np.float64): "double[]",
              np.dtype(np.int64): "int64_t[]", np.dtype(np.int32): "int[]",
              np.dtype(np.uint8): "unsigned char[]"}
_GPU_THREADS = 256
_GPU_MAX_BLOCKS = 65535


def launch(name, count, *args):
    """Run kernel ``name`` over ``count`` work items with ``args`` (its C parameters in order).

    Arrays must all live on one device and be C-contiguous; their floating dtype selects the
    float32 or float64 build of the kernel.
    """
    suffix = _suffix(name, args)
    if backend.gpu_loaded() and any(backend.is_gpu_array(a) for a in args):
        return _launch_gpu(name + suffix, name, count, args)
    return _launch_cpu(name + suffix, args)


# --------------------------------------------------------------------- CPU (cffi)
# OpenMP worker threads spin after each parallel region by default, and the kernels alternate
# with BLAS calls whose threads then compete with the spinning ones for the same cores (measured:
# a 1.5x slower conv on 2 cores). Sleeping workers cost a few microseconds to wake instead. The
# runtime reads this once, when it loads, hence the library is loaded with this module (that is,
# when autonn is imported); a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
try:
    # importlib, not "from . import": the compiled module has no Python source, and the import
    # linter would read "from . import" as an import of the whole package
    _cpu = importlib.import_module("._kernels_cpu", __package__)
    _cpu_error = None
except ImportError as error:  # reported when a kernel is first needed
    _cpu, _cpu_error = None, error


def cpu_library():
    """The cffi module ``autonn._kernels_cpu`` (with ``.ffi`` and ``.lib``)."""
    if _cpu is None:
        raise ImportError(
            "autonn: the CPU kernel library autonn._kernels_cpu is not built. Install the "
            "package with 'pip install -e .' (or 'pip install .'); it compiles kernels/ with "
            f"cffi. ({_cpu_error})")
    return _cpu


def _launch_cpu(full_name, args):
    module = cpu_library()
    function = getattr(module.lib, full_name, None)
    if function is None:
        raise AttributeError(f"autonn kernels: no CPU kernel {full_name!r}; is the library "
                             f"stale? reinstall with 'pip install -e .'")
    ffi = module.ffi
    converted, realigned = [], []
    for position, value in enumerate(args):
        if isinstance(value, np.ndarray):
            if not value.flags.c_contiguous:
                raise ValueError(f"kernel {full_name}: argument {position} must be "
                                 f"C-contiguous (got strides {value.strides})")
            if not value.flags.aligned:
                # C reads a float* at a float's alignment (and vectorises on it): an array at an
                # odd address (np.frombuffer at an offset) runs on an aligned copy
                aligned = np.require(value, requirements=["C", "A"])
                realigned.append((value, aligned))
                value = aligned
            value = ffi.from_buffer(_CPU_TYPES[value.dtype], value)
        converted.append(value)
    status = function(*converted)
    for original, aligned in realigned:
        if original.flags.writeable:   # the kernel may have written it: an output
            original[...] = aligned
    return status


def call_cpu(name, *args):
    """Call the CPU driver ``name`` (an ``AN_CPU_FUNCTION``) on NumPy arrays and C scalars, with
    the type suffix of its first floating-point array; returns its int status."""
    return _launch_cpu(name + _suffix(name, args), args)


# A BLAS for the C drivers to call. NumPy's own OpenBLAS is not reachable from C, and its
# thread pool serves NumPy's matmul; the drivers need a GEMM that runs on the calling thread,
# since they parallelise over work units themselves. scipy-openblas32 (the OpenBLAS that
# NumPy and SciPy build against) is loaded privately and set to one thread, which leaves
# NumPy's threads alone.
_GEMM_SYMBOLS = {np.dtype(np.float32): "cblas_sgemm", np.dtype(np.float64): "cblas_dgemm"}
_cpu_gemms = None
_cpu_blas_threads = None    # the library's openblas_set_num_threads


def cpu_gemm(dtype):
    """A ``void *`` to a single-threaded ``cblas_sgemm`` (float32) or ``cblas_dgemm`` (float64)
    for the C drivers, or None when scipy-openblas32 is not installed or cannot be loaded (the
    callers then use NumPy's matmul). The library is set to one thread on every call, since
    threadpoolctl and the like may have raised it, and its GEMMs run inside OpenMP's threads."""
    global _cpu_gemms
    if _cpu_gemms is None:
        _cpu_gemms = _load_cpu_gemms()
    gemm = _cpu_gemms.get(np.dtype(dtype))
    if gemm is not None:
        _cpu_blas_threads(1)
    return gemm


def _load_cpu_gemms():
    global _cpu_blas_threads
    import ctypes
    try:
        import scipy_openblas32
        library = ctypes.CDLL(os.path.join(scipy_openblas32.get_lib_dir(),
                                           scipy_openblas32.get_library(fullname=True)))
        prefix = "scipy_" if hasattr(library, "scipy_openblas_set_num_threads") else ""
        set_threads = getattr(library, prefix + "openblas_set_num_threads")
        addresses = {dtype: ctypes.cast(getattr(library, prefix + symbol), ctypes.c_void_p).value
                     for dtype, symbol in _GEMM_SYMBOLS.items()}
    except (ImportError, OSError, IndexError, AttributeError):   # no usable library
        return {}
    _cpu_blas_threads = set_threads
    ffi = cpu_library().ffi
    # ctypes never unloads a library, so the function addresses stay valid
    return {dtype: ffi.cast("void *", address) for dtype, address in addresses.items()}


# Products of fewer multiply-adds than this (per matrix) go to NumPy's matmul: its OpenBLAS runs
# them on the calling thread (no pool to spin), faster than a call into OpenMP's threads.
MATMUL_MIN_WORK = 2**18


def matmul(a, b, out=None, row_bias=None):
    """``a @ b`` for NumPy matrices (2-D) or batches of them (3-D; a 2-D operand is shared by
    the batch), written into ``out`` (C-contiguous) when given, plus ``row_bias[i]`` on every
    row i of each product when given (a vector as long as a's rows).

    The product runs in OpenMP's threads, each multiplying a block with the single-threaded
    BLAS of :func:`cpu_gemm` (``gemm_batched`` in kernels/gemm.h): NumPy's own BLAS threads
    would keep spinning after it and slow the OpenMP kernels that follow. Operands may be
    transposed views. Falls back to ``np.matmul`` without that BLAS, for other dtypes or
    shapes, for small products (MATMUL_MIN_WORK), and for layouts a BLAS cannot read (such as
    strided rows).
    """
    if (a.ndim < 2 or b.ndim < 2
            or a.shape[-2] * a.shape[-1] * b.shape[-1] < MATMUL_MIN_WORK):
        return _numpy_matmul(a, b, out, row_bias)
    if out is None:
        shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1])
        out = np.empty(shape, np.result_type(a, b))
    result = out
    if out.ndim > 3:        # batch axes of length 1 (a convolution's single group) go
        ones = {axis for axis in range(out.ndim - 2) if out.shape[axis] == 1}
        a, b, out = (_drop_batch_axes(array, out.ndim, ones) for array in (a, b, out))
    plan = _gemm_plan(a, b, out)
    if plan is None:
        _numpy_matmul(a, b, out, row_bias)
        return result
    if row_bias is not None:
        row_bias = _checked_row_bias(row_bias, a, out.dtype)
    function = getattr(cpu_library().lib, "gemm_batched" + DTYPE_SUFFIX[out.dtype.name])
    ffi = cpu_library().ffi
    c_out = ffi.from_buffer(_CPU_TYPES[out.dtype], out)
    bias = ffi.from_buffer(_CPU_TYPES[out.dtype], row_bias) if row_bias is not None else c_out
    function(*plan, c_out, out.shape[-1], out.shape[-2] * out.shape[-1] if out.ndim == 3 else 0,
             bias, int(row_bias is not None), cpu_gemm(out.dtype))
    return result


def _numpy_matmul(a, b, out, row_bias):
    out = np.matmul(a, b, out=out)
    if row_bias is not None:
        out += _checked_row_bias(row_bias, a, out.dtype).reshape(-1, 1)
    return out


def _checked_row_bias(row_bias, a, dtype):
    row_bias = np.ascontiguousarray(row_bias, dtype=dtype)
    if a.ndim < 2 or row_bias.shape != a.shape[-2:-1]:
        raise ValueError(f"matmul: row_bias must have shape {a.shape[-2:-1]} (the rows of a, "
                         f"shape {a.shape}), got {row_bias.shape}")
    return row_bias


def _drop_batch_axes(array, ndim, axes):
    """The view of ``array`` (broadcast to ``ndim`` dimensions) without the batch ``axes``, which
    have length 1 in the product."""
    array = array.reshape((1,) * (ndim - array.ndim) + array.shape)
    return array[tuple(0 if axis in axes else slice(None) for axis in range(ndim - 2))]


def _gemm_plan(a, b, out):
    """gemm_batched's arguments up to C, or None when it cannot compute ``out = a @ b``."""
    if (out.ndim not in (2, 3) or not out.flags.c_contiguous or a.ndim > out.ndim
            or b.ndim > out.ndim or a.shape[-1] != b.shape[-2] or cpu_gemm(out.dtype) is None
            or max(out.shape + a.shape[-1:]) >= 2**31
            or np.may_share_memory(out, a) or np.may_share_memory(out, b)):   # NumPy copies
        return None
    batch = out.shape[0] if out.ndim == 3 else 1
    operands = []
    for matrix in (a, b):
        operand = _gemm_operand(matrix, out.dtype, batch)
        if operand is None:
            return None
        operands.append(operand)
    if (a.shape[-2], b.shape[-1]) != out.shape[-2:]:
        return None
    (a_pointer, trans_a, lda, stride_a), (b_pointer, trans_b, ldb, stride_b) = operands
    return (trans_a, trans_b, batch, out.shape[-2], out.shape[-1], a.shape[-1],
            a_pointer, lda, stride_a, b_pointer, ldb, stride_b)


def _gemm_operand(matrix, dtype, batch):
    """(pointer, transposed, leading dimension, batch stride) of a 2-D operand or a 3-D batch
    of ``batch`` (or 1, shared) matrices, in elements; None when a BLAS cannot read it (another
    dtype, rows and columns both strided, negative strides, an empty matrix)."""
    if matrix.dtype != dtype or 0 in matrix.shape:
        return None
    if matrix.ndim == 3 and matrix.shape[0] not in (1, batch):
        return None
    itemsize = matrix.dtype.itemsize
    if min(matrix.strides) < 0 or any(s % itemsize for s in matrix.strides):
        return None
    rows, columns = (s // itemsize for s in matrix.strides[-2:])
    shared = matrix.ndim == 2 or matrix.shape[0] == 1
    batch_stride = 0 if shared else matrix.strides[0] // itemsize
    if columns == 1 and rows >= matrix.shape[-1]:
        transposed, leading = 0, rows
    elif rows == 1 and columns >= matrix.shape[-2]:
        transposed, leading = 1, columns
    else:
        return None
    pointer = cpu_library().ffi.cast(_CPU_TYPES[matrix.dtype][:-2] + " *",
                                     matrix.__array_interface__["data"][0])
    return pointer, transposed, max(leading, 1), batch_stride


# --------------------------------------------------------------------- GPU (CuPy RawModule)
_gpu_modules = {}      # device id -> cupy.RawModule
_gpu_signatures = None


def gpu_module():
    """The RawModule of all kernels for the current CUDA device, compiled on first use."""
    cp = backend.cupy()
    if cp is None:
        raise RuntimeError("autonn kernels: no GPU is available (install autonn[cuda] and "
                           "check that a CUDA device is visible)")
    device = cp.cuda.Device().id
    module = _gpu_modules.get(device)
    if module is None:
        directory = kernel_dir()
        module = cp.RawModule(code=translation_unit(directory),
                              options=("-I" + directory, "--std=c++14"))
        _gpu_modules[device] = module
    return module


def _launch_gpu(full_name, name, count, args):
    global _gpu_signatures
    cp = backend.cupy()
    if _gpu_signatures is None:
        _gpu_signatures = kernel_signatures(kernel_dir())
    params = _gpu_signatures.get(name)
    if params is None:
        raise AttributeError(f"autonn kernels: no kernel {name!r} in {kernel_dir()}")
    if len(params) != len(args):
        raise TypeError(f"kernel {name}: takes {len(params)} arguments, got {len(args)}")
    real = np.float32 if full_name.endswith("_f32") else np.float64
    converted = []
    for (c_type, param), value in zip(params, args):
        if isinstance(value, cp.ndarray):
            if not value.flags.c_contiguous:
                raise ValueError(f"kernel {name}: argument {param!r} must be C-contiguous")
            converted.append(value)
        elif "*" in c_type:
            raise TypeError(f"kernel {name}: argument {param!r} ({c_type}) must be a CuPy "
                            f"array, got {type(value).__name__}")
        elif c_type.endswith("REAL"):
            converted.append(real(value))
        elif c_type.endswith("index_t") or c_type.endswith("int64_t"):
            converted.append(np.int64(value))
        elif c_type.endswith("int"):
            converted.append(np.int32(value))
        else:
            raise TypeError(f"kernel {name}: unsupported scalar type {c_type!r} for {param!r}")
    count = int(count)
    if count <= 0:
        return
    blocks = min((count + _GPU_THREADS - 1) // _GPU_THREADS, _GPU_MAX_BLOCKS)
    gpu_module().get_function(full_name)((blocks,), (_GPU_THREADS,), tuple(converted))


# --------------------------------------------------------------------- helpers
_SUFFIX_OF_DTYPE = {np.dtype(name): suffix for name, suffix in DTYPE_SUFFIX.items()}


def _suffix(name, args):
    for value in args:
        dtype = getattr(value, "dtype", None)
        if dtype is not None and dtype.kind == "f":
            suffix = _SUFFIX_OF_DTYPE.get(dtype)
            if suffix is None:
                raise TypeError(f"kernel {name}: dtype {dtype.name} is not supported "
                                f"(float32 or float64)")
            return suffix
    raise TypeError(f"kernel {name}: needs at least one float32 or float64 array argument")
