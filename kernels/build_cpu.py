"""cffi build script for the CPU kernel library ``autonn._kernels_cpu``.

Run by setuptools through ``cffi_modules`` in ``setup.py`` (``pip install .`` or
``pip install -e .``); it can also be run by hand: ``python kernels/build_cpu.py`` builds the
extension in place. Flags: ``-O3 -march=native -fopenmp``; ``-march=native`` and ``-fopenmp``
are dropped (with a warning) when the compiler refuses them, and a missing compiler is a clear
error rather than a page of distutils output. ``CC`` chooses the compiler and ``AUTONN_MARCH``
the ``-march`` value (``native`` by default; empty for the compiler's default).
"""

import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import warnings

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _load_kernel_sources():
    # Loaded by path: importing the autonn package here would need its run-time dependencies.
    path = os.path.join(ROOT, "autonn", "kernel_sources.py")
    spec = importlib.util.spec_from_file_location("autonn_kernel_sources", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _compiler():
    command = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    if not command or shutil.which(command[0]) is None:
        raise RuntimeError(
            "autonn: building the CPU kernels needs a C compiler, and "
            f"{command[0] if command else 'cc'!r} was not found. Install one (e.g. "
            "'apt-get install gcc' or Xcode's command line tools) or point the CC "
            "environment variable at it, then reinstall autonn.")
    return command


def _accepts(compiler, flags):
    """Whether the compiler builds a small OpenMP-using program with these flags."""
    program = "#include <stdio.h>\nint main(void) { int s = 0;\n#pragma omp parallel for reduction(+:s)\n for (int i = 0; i < 4; ++i) s += i; return s != 6; }\n"
    with tempfile.TemporaryDirectory() as folder:
        source = os.path.join(folder, "probe.c")
        with open(source, "w") as f:
            f.write(program)
        result = subprocess.run(compiler + flags + [source, "-o", os.path.join(folder, "probe")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return result.returncode == 0


def compile_flags():
    """(compile flags, link flags), keeping each optional flag only if the compiler takes it."""
    compiler = _compiler()
    compile_args, link_args = ["-O3", "-std=c99"], []
    if _accepts(compiler, ["-fopenmp"]):
        compile_args.append("-fopenmp")
        link_args.append("-fopenmp")
    else:
        warnings.warn("autonn: the C compiler does not support -fopenmp; the CPU kernels will "
                      "run on one thread")
        compile_args.append("-Wno-unknown-pragmas")
    # AUTONN_MARCH picks the target (e.g. x86-64-v3 for a wheel other machines will run);
    # empty means the compiler's default.
    march = os.environ.get("AUTONN_MARCH", "native")
    if march and _accepts(compiler, [f"-march={march}"] + link_args):
        compile_args.append(f"-march={march}")
    elif march:
        warnings.warn(f"autonn: the C compiler does not support -march={march}; building for "
                      "the generic architecture")
    return compile_args, link_args


def make_ffibuilder():
    sources = _load_kernel_sources()
    compile_args, link_args = compile_flags()
    builder = FFI()
    builder.cdef(sources.cdef(HERE))
    headers = ([sources.PORTABLE_HEADER] + sources.family_headers(HERE)
               + sources.helper_headers(HERE))     # the families include the helpers
    builder.set_source("autonn._kernels_cpu", sources.translation_unit(HERE),
                       include_dirs=[HERE], depends=[os.path.join(HERE, h) for h in headers],
                       extra_compile_args=compile_args, extra_link_args=link_args)
    return builder


ffibuilder = make_ffibuilder()

if __name__ == "__main__":
    os.chdir(ROOT)
    ffibuilder.compile(verbose=True)
    sys.exit(0)
