"""The example notebooks in examples/ run from top to bottom; a cell that raises fails.

Each runs in a fresh IPython kernel of this very interpreter (a kernelspec written for the
test, so no machine-wide kernel is needed), from the examples folder, on the CPU: small demo
universes keep each one to a few seconds once the kernels are compiled (Numba's cache).
"""

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("nbclient", "nbformat", "ipykernel")),
    reason="the notebooks need nbclient, nbformat and ipykernel (the test extra)")


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    """The name of a kernel that runs ``sys.executable``, found through JUPYTER_PATH."""
    from ipykernel.kernelspec import write_kernel_spec

    name = "gpu-trend-test"
    write_kernel_spec(tmp_path / "kernels" / name, overrides={"display_name": name})
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    # Plots go to the kernel's inline backend, never to a window.
    monkeypatch.delenv("MPLBACKEND", raising=False)
    return name


def test_there_are_examples():
    assert {p.name for p in NOTEBOOKS} >= {"quickstart.ipynb", "scan_files.ipynb",
                                           "calibration.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, kernel):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    # The first cell that imports gpu_trend may compile the kernels when Numba's cache is cold.
    client = NotebookClient(nb, kernel_name=kernel, timeout=600,
                            resources={"metadata": {"path": str(EXAMPLES)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, if a cell fails
    # Every rich display rendered: the results show themselves as HTML.
    html = [o["data"]["text/html"] for c in nb.cells if c.cell_type == "code"
            for o in c.outputs if "text/html" in o.get("data", {})]
    assert any('<div class="gpu-trend">' in h for h in html)
