"""Build of the CPU kernel library (cffi) and packaging of the kernel sources for the GPU.

Everything declarative lives in pyproject.toml; this file only adds what needs code:
- ``cffi_modules`` compiles ``kernels/`` into ``autonn._kernels_cpu`` (see kernels/build_cpu.py);
- ``build_py`` copies the kernel headers into ``autonn/kernel_src`` so that an installed (not
  editable) package can still compile them for the GPU with CuPy at run time;
- ``editable_wheel`` puts the editable install's finder first, so that Python started in the
  folder that holds the clone (``~`` with the clone at ``~/autonn``) imports the package, not
  the clone's folder as an empty namespace package.
"""

import glob
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

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


class editable_wheel_finder_first(editable_wheel):
    """``pip install -e .`` of this flat layout maps ``autonn`` to the checkout through a meta
    path finder that setuptools appends to ``sys.meta_path``: after the path finder, which takes
    a folder named ``autonn`` in the current directory (the clone itself, seen from its parent)
    for a namespace package. The ``.pth`` line that installs the finder also moves it to the
    front; nothing else is found differently (it answers only for ``autonn``)."""

    def _select_strategy(self, *args, **kwargs):
        strategy = super()._select_strategy(*args, **kwargs)
        implementation = getattr(strategy, "get_implementation", None)
        if implementation is None:  # a static .pth (src layout, compat mode): nothing to move
            return strategy

        def finder_first():
            for file, content in implementation():
                text = content.decode("utf-8") if isinstance(content, bytes) else content
                module = text.split(";")[0].split()[-1] if text.startswith("import ") else None
                if file.endswith(".pth") and module:
                    finder = f"{module}._EditableFinder"
                    text = (f"{text.strip()}; import sys; sys.meta_path.remove({finder}); "
                            f"sys.meta_path.insert(0, {finder})\n")
                    content = text.encode("utf-8")
                yield file, content
        strategy.get_implementation = finder_first
        return strategy


setup(cffi_modules=["kernels/build_cpu.py:ffibuilder"],
      cmdclass={"build_py": build_py_with_kernel_sources,
                "editable_wheel": editable_wheel_finder_first})
