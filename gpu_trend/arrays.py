"""Array namespaces: which module an array belongs to, and moving arrays between memories.

In the manner of scikit-learn's ``utils/_array_api.py``: private helpers take
the namespace ``xp`` (NumPy or CuPy) from their arrays, so an array comes out
where it went in. Nothing here imports CuPy or cuDF unless such an object is
passed in, so ``import gpu_trend`` never touches CUDA.

Every device-to-host copy the package makes goes through :func:`to_host`;
tests count its bytes to prove what a GPU path downloads.
"""

from __future__ import annotations

import numpy as np


def _top_module(x) -> str:
    return type(x).__module__.split(".")[0]


def is_cupy(x) -> bool:
    """True for a CuPy ndarray, without importing CuPy when it is not loaded."""
    return _top_module(x) == "cupy"


def is_cudf(x) -> bool:
    """True for a cuDF (or dask-cuDF) object, without importing cuDF."""
    return _top_module(x) in ("cudf", "dask_cudf")


def namespace(*arrays):
    """The array module (``numpy`` or ``cupy``) of ``arrays``; NumPy for anything not CuPy.

    Raises
    ------
    TypeError
        If NumPy and CuPy arrays are mixed.
    """
    kinds = {is_cupy(a) for a in arrays if a is not None}
    if len(kinds) > 1:
        raise TypeError("arrays must all be host (NumPy) arrays or all CuPy arrays")
    if kinds == {True}:
        import cupy
        return cupy
    return np


def to_host(x, out=None):
    """A NumPy array of ``x`` (NumPy, CuPy or anything array-like).

    Parameters
    ----------
    x : array_like
    out : numpy.ndarray, optional
        Written in place (a CuPy source is downloaded straight into it) and
        returned.
    """
    if is_cupy(x):
        if out is None:
            return x.get()
        x.get(out=out) if x.flags.c_contiguous else x.copy().get(out=out)
        return out
    x = np.asarray(x)
    if out is None:
        return x
    out[...] = x
    return out


def to_device(x):
    """A CuPy array of ``x`` (no copy when it already is one)."""
    import cupy
    return cupy.asarray(x)
