"""The architecture's contracts: one-way layering (checked by import-linter against the
contract in pyproject.toml) and the one registration point through which lower layers reach
higher ones."""

import os
import subprocess
import sys

import pytest

import autonn as an
from autonn import registration

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_modules_import_only_from_lower_layers():
    pytest.importorskip("importlinter")
    result = subprocess.run([sys.executable, "-c",
                             "import sys, importlinter.cli as c; "
                             "sys.exit(c.lint_imports(no_cache=True, no_logo=True))"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_registration_slot_is_filled_once_autonn_is_imported():
    for slot in registration.SLOTS:
        assert callable(registration.provided(slot)), slot
    assert registration.layer_class() is an.Layer


def test_an_unknown_slot_is_refused_by_name():
    with pytest.raises(KeyError, match="unknown slot 'grpah_svg'"):
        registration.provide("grpah_svg", print)


def test_modules_and_their_functions_have_different_names():
    # a function that shadows its module hides the module's constants and docstring
    import importlib
    for module_name, function in [("autonn.nn.convolution", an.nn.conv),
                                  ("autonn.nn.pooling", an.nn.pool),
                                  ("autonn.nn.losses", an.nn.loss),
                                  ("autonn.nn.noise", an.nn.dropout),
                                  ("autonn.nn.distance", an.nn.pdist),
                                  ("autonn.training", an.train),
                                  ("autonn.gradient_check", an.gradcheck)]:
        module = importlib.import_module(module_name)
        package, _, name = module_name.rpartition(".")
        assert getattr(importlib.import_module(package), name) is module
        assert getattr(module, function.__name__) is function
    assert an.training.plot_history is not None
    assert an.nn.losses.CATEGORICAL
