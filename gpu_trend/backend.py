"""Backend dispatch: which engine ("cpu" or "gpu") a call runs on.

Resolution order for ``backend=None`` / ``"auto"``: the innermost
:func:`use_backend` context, then the ``GPU_TREND_BACKEND`` environment
variable, then "gpu" if a CUDA device is usable, else "cpu".

The GPU probe imports CuPy and asks for a device only when a call first needs
the answer, and caches the result; ``import gpu_trend`` never touches CUDA.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os

BACKENDS = ("auto", "cpu", "gpu")
ENV_VAR = "GPU_TREND_BACKEND"

_override: contextvars.ContextVar = contextvars.ContextVar("gpu_trend_backend", default=None)


class BackendUnavailableError(RuntimeError):
    """A backend was requested explicitly but cannot run here."""


def _check_name(name, where):
    if name not in BACKENDS:
        raise ValueError(f"{where}: backend must be one of {BACKENDS}, got {name!r}")
    return name


@functools.lru_cache(maxsize=None)
def gpu_status() -> tuple:
    """``(usable, reason)`` for the GPU backend, probed once and cached.

    Returns
    -------
    tuple of (bool, str)
        ``reason`` says why the GPU is unusable, or names the device.
    """
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install
        return False, (f"CuPy is not importable ({type(exc).__name__}: {exc}); "
                       "install gpu-trend[cuda12] or gpu-trend[cuda13]")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return False, f"CuPy found no usable CUDA driver/device ({type(exc).__name__}: {exc})"
    if count < 1:
        return False, "CuPy sees no CUDA device"
    try:
        import numba.cuda
        if not numba.cuda.is_available():
            return False, "numba.cuda reports no usable CUDA device/driver"
    except Exception as exc:
        return False, f"numba.cuda is not usable ({type(exc).__name__}: {exc})"
    try:
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    except Exception:
        name = "CUDA device"
    return True, name


def gpu_available() -> bool:
    """Whether the GPU backend can run here (cached probe)."""
    return gpu_status()[0]


def resolve_backend(name: str | None = None) -> str:
    """Turn a requested backend into ``"cpu"`` or ``"gpu"``.

    Parameters
    ----------
    name : {None, "auto", "cpu", "gpu"}
        ``None`` and ``"auto"`` defer to the context, the environment
        variable, then the probe.

    Raises
    ------
    BackendUnavailableError
        If "gpu" is forced and no usable device exists; the message says why.
    """
    if name is None or name == "auto":
        name = _override.get()
        if name is None:
            env = os.environ.get(ENV_VAR, "").strip().lower()
            name = _check_name(env, f"environment variable {ENV_VAR}") if env else "auto"
    else:
        _check_name(name, "resolve_backend")
    if name == "auto":
        return "gpu" if gpu_available() else "cpu"
    if name == "gpu" and not gpu_available():
        raise BackendUnavailableError(f"backend 'gpu' was requested but {gpu_status()[1]}")
    return name


@contextlib.contextmanager
def use_backend(name: str):
    """Context manager selecting the backend for calls that pass ``backend="auto"``.

    Examples
    --------
    >>> with gpu_trend.use_backend("cpu"):
    ...     res = gpu_trend.compute_atc(prices)
    """
    token = _override.set(_check_name(name, "use_backend"))
    try:
        yield
    finally:
        _override.reset(token)
