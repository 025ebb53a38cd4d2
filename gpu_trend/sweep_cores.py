"""The one sweep step the cores do not run as a whole: a Layer-1 equity on a stored signal.

``Cores.member_core`` computes a member's MA, its signal q and its Layer-1 equity E in one
pass. A sweep that varies λ, decay or cutout needs further equities of the same q (spec 5:
E depends on q, the growth-applied returns, d and the cutout, not on the MA); running
member_core again would recompute the MA. :func:`build_sweep_cores` compiles, for both
targets like :func:`gpu_trend.cores.build_cores`, ``member_slot``: member_core's equity on
a stored q row.

Its equity is member_core's (``equity_step`` of :mod:`gpu_trend.cores` with w = 1), written
out here because ``Cores`` does not export that step; the sweep tests hold the two to the
same bits on grids over λ, decay and cutout.
"""

import math

from .cores import FLOOR


def build_sweep_cores(jit):
    """Compile ``member_slot(q_src, r, start, cutout, d, q_out, e_out)`` with ``jit``.

    It copies q to ``q_out`` (which may be ``q_src`` itself) and writes E from ``start`` on;
    the bars before a listing are never read (Layer 2 starts at the cutout, counted from the
    listing).
    """

    @jit
    def member_slot(q_src, r, start, cutout, d, q_out, e_out):
        a = 0.0
        e = math.nan
        q_prev = 0.0  # member_core's q before the listing bar
        for t in range(start, q_out.shape[0]):
            tau = t - start
            q = q_src[t]
            if tau < cutout:
                e = math.nan
            else:
                # equity_step(e, a, r[t], q_prev, tau == cutout, 1.0, d)
                if q_prev > 0:
                    a = r[t]
                elif q_prev < 0:
                    a = -r[t]
                if tau == cutout or e != e:
                    e = 1.0
                else:
                    e = e * d * (1.0 + a)
                    if e < FLOOR:
                        e = FLOOR
            q_out[t] = q
            e_out[t] = e
            q_prev = q

    return member_slot
