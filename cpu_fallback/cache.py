"""Numba's on-disk cache, keyed on the content of every package module a kernel is built from.

Numba stamps a cached function with its own source file only: its modification time and size
up to Numba 0.67, a hash of its content since 0.68 (numba PR 10659). That leaves two gaps:

* a kernel built from several modules is loaded stale when only a module it imports changes:
  ``run_cpu`` (``cpu_fallback/backend.py``) is compiled with the cores and constants of
  ``gpu_trend/cores.py`` inside it, so an edit there would silently run the old arithmetic;
* with Numba ≤ 0.67 (this package allows 0.59 on), a reinstall of the same version (new
  files, same content) throws the whole cache away, and the next call compiles again.

Importing this module puts locators ahead of Numba's own for the functions of
:data:`PACKAGES`. They keep Numba's choice of folder (``NUMBA_CACHE_DIR``, else the
``__pycache__`` beside the source, else the user-wide cache folder) and stamp each index with a
hash of the content of the function's module, of the modules whose functions it closes over,
and of every package module these import at module level (column 0), directly or not. It must
be imported
before the first ``njit(cache=True)`` of those packages runs (Numba builds a function's cache
when it decorates it). A ``NUMBA_CACHE_LOCATOR_CLASSES`` setting replaces Numba's locator list,
these included.
"""

import ast
import functools
import hashlib
import importlib.util
import os
import re

from numba.core import caching

#: The top-level packages whose cached functions get a content stamp.
PACKAGES = ("gpu_trend", "cpu_fallback")
_roots: dict = {}  # package -> its folder


def claim(*packages: str) -> None:
    """Give the cached functions of these top-level packages a content stamp.

    Parameters
    ----------
    *packages : str
        Importable top-level package names (their folders are found without importing them).
    """
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise ValueError(f"{name!r} is not an importable package")
        _roots[name] = os.path.realpath(spec.submodule_search_locations[0])


def module_file(name: str):
    """The source file of module ``name`` of a claimed package, or None (not a module of one)."""
    package, _, rest = name.partition(".")
    if package not in _roots:
        return None
    base = os.path.join(_roots[package], *rest.split(".")) if rest else _roots[package]
    for path in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(path):
            return path
    return None


def _stat_key(path: str):
    st = os.stat(path)
    return path, st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=None)
def _digest(path, mtime_ns, size) -> bytes:
    # Keyed on the stat too, so that a file changed while the process runs is read again.
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).digest()


#: An import statement at column 0 (module level, outside any block), with a parenthesised
#: or backslash-continued tail. Parsing whole files with ``ast`` would cost ~0.1 s a process.
_IMPORT = re.compile(r"^(?:from|import)\b[^\n(\\]*(?:\([^)]*\)|(?:\\\n[^\n]*)*)[^\n]*", re.M)


@functools.lru_cache(maxsize=None)
def _imports(path, mtime_ns, size, name) -> frozenset:
    """The claimed package modules file ``path`` (module ``name``) imports at module level."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found = set()
    for statement in _IMPORT.findall(text):
        try:
            (node,) = ast.parse(statement).body
        except SyntaxError:  # prose in a docstring that starts like an import
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        else:
            base = (importlib.util.resolve_name("." * node.level + (node.module or ""), package)
                    if node.level else node.module)
            # `from pkg import mod` imports the submodule; `from mod import CONST`, the module.
            found.update(f"{base}.{a.name}" if module_file(f"{base}.{a.name}") else base
                         for a in node.names)
    return frozenset(m for m in found if module_file(m))


def sources(py_func) -> dict:
    """The modules a cached ``py_func`` is stamped with (name: file): its module, the modules of
    the package functions it closes over, and what these import at module level, directly or
    not."""
    todo = [py_func.__module__]
    for cell in py_func.__closure__ or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        todo.append(getattr(getattr(value, "py_func", value), "__module__", None) or "")
    seen = {}
    while todo:
        name = todo.pop()
        path = module_file(name)
        if name in seen or path is None:
            continue
        seen[name] = path
        todo.extend(_imports(*_stat_key(path), name))
    return dict(sorted(seen.items()))


def stamp(py_func) -> str:
    """A hash of the names and content of :func:`sources` (not of their paths or times)."""
    h = hashlib.sha256()
    for name, path in sources(py_func).items():
        h.update(name.encode() + b"\0" + _digest(*_stat_key(path)))
    return "sha256:" + h.hexdigest()


class _ContentStamp:
    """Locator mixin: Numba's folder, the content :func:`stamp` (claimed packages only)."""

    def get_source_stamp(self):
        return self._stamp

    @classmethod
    def from_function(cls, py_func, py_file):
        own = module_file(py_func.__module__)
        if own is None or own != os.path.realpath(py_file):
            return None  # not ours: Numba's own locators take it
        self = super().from_function(py_func, py_file)
        if self is not None:
            self._stamp = stamp(py_func)
        return self


class UserProvidedLocator(_ContentStamp, caching.UserProvidedCacheLocator):
    """In ``NUMBA_CACHE_DIR`` when it is set."""


class InTreeLocator(_ContentStamp, caching.InTreeCacheLocator):
    """In the ``__pycache__`` beside the source, when it is writable."""


class UserWideLocator(_ContentStamp, caching.UserWideCacheLocator):
    """In the user-wide cache folder (a read-only install)."""


claim(*PACKAGES)
# Numba's (private) list of locators, tried in order; a Numba without it keeps its own stamps,
# which tests/test_cache.py would report.
_LOCATORS = getattr(caching.CacheImpl, "_locator_classes", None)
if _LOCATORS is not None and UserProvidedLocator not in _LOCATORS:
    _LOCATORS[:0] = [UserProvidedLocator, InTreeLocator, UserWideLocator]
