"""Numba's on-disk cache stamped with the content of a kernel's package sources
(:mod:`cpu_fallback.cache`): reused after a reinstall, refreshed after an edit of any module
the kernel imports.

Each step is a fresh process (the cache only matters across processes) compiling a one-line
kernel of a throw-away package, with ``NUMBA_CACHE_DIR`` in a temporary folder.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cpu_fallback import cache

ROOT = Path(__file__).resolve().parents[1]

KERNEL = """\
import numba

from tinyk.consts import K


@numba.njit(cache=True)
def f(x):
    return x + K
"""

RUN = """\
import json, sys
from cpu_fallback import cache
cache.claim("tinyk")
from tinyk.kern import f
value = f(1)
print(json.dumps({"value": value, "hits": sum(f.stats.cache_hits.values()),
                  "misses": sum(f.stats.cache_misses.values()),
                  "locator": type(f._cache._impl.locator).__name__}))
"""


@pytest.fixture
def tinyk(tmp_path):
    pkg = tmp_path / "src" / "tinyk"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "consts.py").write_text("K = 2\n")
    (pkg / "kern.py").write_text(KERNEL)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"),
               PYTHONPATH=os.pathsep.join([str(tmp_path / "src"), str(ROOT)]))
    env.pop("NUMBA_CACHE_LOCATOR_CLASSES", None)

    def run():
        out = subprocess.run([sys.executable, "-c", RUN], env=env, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.splitlines()[-1])

    return pkg, run


def rewrite(path: Path, text: str) -> None:
    """Write ``text`` as a reinstall does: a new file, a modification time in the future."""
    path.unlink()
    path.write_text(text)
    t = path.stat().st_mtime + 3600
    os.utime(path, (t, t))


def test_a_reinstall_loads_and_an_edit_of_an_imported_module_recompiles(tinyk):
    pkg, run = tinyk
    first = run()
    assert first == {"value": 3, "hits": 0, "misses": 1, "locator": "UserProvidedLocator"}

    # Same content, new files and times: loaded, not compiled.
    for name in ("kern.py", "consts.py"):
        rewrite(pkg / name, (pkg / name).read_text())
    assert run() == {**first, "hits": 1, "misses": 0}

    # Only the imported constant changes; Numba's own stamp (kern.py alone) would load the
    # stale build and return 3.
    rewrite(pkg / "consts.py", "K = 5\n")
    assert run() == {**first, "value": 6}

    # The kernel's own file changes.
    rewrite(pkg / "kern.py", KERNEL.replace("x + K", "2 * x + K"))
    assert run() == {**first, "value": 7}


def test_the_engine_kernel_is_stamped_with_the_modules_it_is_built_from():
    from cpu_fallback import backend

    modules = cache.sources(backend.run_cpu.py_func)
    assert {"cpu_fallback.backend", "gpu_trend.cores"} <= modules.keys()
    assert modules["gpu_trend.cores"] == str(ROOT / "gpu_trend" / "cores.py")
    # Modules it does not import (the command line, the scanner) leave its cache alone.
    assert not modules.keys() & {"gpu_trend", "gpu_trend.cli", "gpu_trend.scanner",
                                 "gpu_trend.engine"}
    # The cores close over the backend's `_mul`: they are stamped with the backend too.
    assert "cpu_fallback.backend" in cache.sources(backend.cores.member_core.py_func)


def test_the_backend_imports_the_locators_before_it_compiles():
    # A fresh process importing only the backend: its kernels must already be stamped by
    # content, i.e. the backend imports cpu_fallback.cache before its first njit(cache=True).
    code = ("from cpu_fallback import backend as b; "
            "print(type(b.run_cpu._cache._impl.locator).__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["cpu_fallback.cache"]


def test_claim_rejects_what_is_not_a_package():
    with pytest.raises(ValueError, match="'no_such_package_xyz' is not an importable package"):
        cache.claim("no_such_package_xyz")
