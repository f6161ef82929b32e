"""The installed package wins wherever Python starts: in the folder that holds the clone
(``~`` with the clone at ``~/autonn``) the clone's folder is a directory named ``autonn``
without an ``__init__.py``, which Python's path finder takes for a namespace package unless
the editable install's finder comes first (setup.py's ``editable_wheel``)."""

import os
import subprocess
import sys

import autonn


def test_the_folder_holding_a_clone_does_not_shadow_the_package(tmp_path):
    clone = tmp_path / "autonn"                  # what the clone looks like from its parent
    (clone / "kernels").mkdir(parents=True)
    (clone / "kernels" / "conv.h").write_text("/* C */\n")
    (clone / "README.md").write_text("autonn\n")
    script = ("import autonn, autonn.kernels; "
              "print(autonn.__file__); print(autonn.kernels.__file__); print(autonn.models.lenet)")
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=environment,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    package_file, kernels_file, _ = result.stdout.splitlines()
    assert package_file == autonn.__file__
    assert kernels_file.endswith(os.path.join("autonn", "kernels.py"))

