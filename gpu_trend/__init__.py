"""gpu-trend: the exact Adaptive Trend Classification (ATC) indicator for a whole universe.

``import gpu_trend`` never touches CUDA: the GPU is probed lazily, on the
first call that needs to know.
"""

from ._version import __version__
from .backend import BackendUnavailableError, gpu_available, resolve_backend, use_backend
from .config import FAMILIES, ATCConfig, member_names
from .engine import ATCInputError, ATCWarning, compute_atc, iter_atc
from .memory import MemoryBudgetError, set_memory_limit
from .results import ATCResult
from . import demo, io
from .io import DataError, Universe, read_universe
from .plotting import plot
from .scanner import ScanResult, scan
from .live import iter_time_slices, update_atc
from .sweep import SweepResult, sweep
from .state import ATCState

__all__ = [
    "__version__", "FAMILIES", "ATCConfig", "ATCResult", "ATCInputError", "ATCWarning",
    "BackendUnavailableError", "compute_atc", "gpu_available", "member_names",
    "resolve_backend", "use_backend", "iter_atc", "set_memory_limit", "MemoryBudgetError",
    "demo", "io", "DataError", "Universe", "read_universe", "plot", "ScanResult", "scan",
    "update_atc", "iter_time_slices", "ATCState", "sweep", "SweepResult",
]
