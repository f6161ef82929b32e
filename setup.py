"""Build of the CPU kernel library (cffi) and packaging of the kernel sources for the GPU.

Everything declarative lives in pyproject.toml; this file only adds what needs code:
- ``cffi_modules`` compiles ``kernels/`` into ``autonn._kernels_cpu`` (see kernels/build_cpu.py);
- ``build_py`` copies the kernel headers into ``autonn/kernel_src`` so that an installed (not
  editable) package can still compile them for the GPU with CuPy at run time.
"""

import glob
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class build_py_with_kernel_sources(build_py):
    def run(self):
        super().run()
        if self.editable_mode:  # an editable install reads kernels/ in the checkout
            return
        target = os.path.join(self.build_lib, "autonn", "kernel_src")
        os.makedirs(target, exist_ok=True)
        for header in glob.glob(os.path.join(HERE, "kernels", "*.h")):
            shutil.copy(header, target)


setup(cffi_modules=["kernels/build_cpu.py:ffibuilder"],
      cmdclass={"build_py": build_py_with_kernel_sources})
