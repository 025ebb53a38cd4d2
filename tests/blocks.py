"""Running one block straight through a backend, as the engine does after its checks."""

from gpu_trend.checks import check_symbols
from gpu_trend.engine import apply_nan_policy


def prepared(close, source, cfg):
    """``(close, source, starts, params)`` of a clean universe, NaN policy applied."""
    source = close if source is None else source
    found = check_symbols(close, source, nan_policy=cfg.nan_policy)
    assert found.first_error() is None, "the test universe has bad input"
    close, source = apply_nan_policy(close, source, cfg)
    return close, source, found.start, cfg.kernel_params(close.shape[1])
