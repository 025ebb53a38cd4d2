"""Test-session setup.

Without CuPy (CI, laptops) the numba.cuda kernels run in Numba's CUDA
simulator, so the GPU backend's arithmetic is tested everywhere; the flag
must be set before numba.cuda is first imported. With CuPy present the real
device is used and the simulator tests are skipped.
"""

import importlib.util
import os
import sys
from pathlib import Path

if importlib.util.find_spec("cupy") is None:
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/reference.py, tests/golden.py

import pytest  # noqa: E402


def cudasim_enabled() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def pytest_collection_modifyitems(config, items):
    from gpu_trend.backend import gpu_available

    skip_gpu = None
    skip_sim = pytest.mark.skip(reason="NUMBA_ENABLE_CUDASIM is not 1 (a real GPU run)")
    for item in items:
        if "gpu" in item.keywords:
            if skip_gpu is None:
                ok = gpu_available()
                skip_gpu = False if ok else pytest.mark.skip(reason="no usable CUDA device/CuPy")
            if skip_gpu:
                item.add_marker(skip_gpu)
        if "cudasim" in item.keywords and not cudasim_enabled():
            item.add_marker(skip_sim)
