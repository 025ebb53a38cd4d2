"""The sweep steps the cores do not run as a whole: a Layer-1 equity on a stored signal, and
Layer 2 on member rows that are not side by side.

``Cores.member_core`` computes a member's MA, its signal q and its Layer-1 equity E in one
pass. A sweep that varies λ, decay or cutout needs further equities of the same q (spec 5:
E depends on q, the growth-applied returns, d and the cutout, not on the MA); running
member_core again would recompute the MA. ``Cores.layer2_core`` reads a family's nine q and
E rows as one (9, T) array; a sweep keeps each distinct row once, so a member set's rows
are scattered. :func:`build_sweep_cores` compiles, for both targets like
:func:`gpu_trend.cores.build_cores`:

* ``member_slot``: member_core's equity on a stored q row;
* ``layer2_sums`` and ``layer2_rows``: layer2_core split in two. ``layer2_sums`` adds one
  member's q·E and E to every bar's N and D; called for the nine members in order, it
  makes each bar's N and D by the same additions, in the same order, as layer2_core's
  member loop, and it reads each row once, straight through. ``layer2_rows`` is
  layer2_core's loop over bars on those sums: X_k = round2(N / D) and S_k
  (``Cores.layer2_step``).

They use the cores' own ``layer2_step`` and ``member_equity``; the sweep tests
hold every output to the bits of separate ``compute_atc`` calls on grids over each field.
"""

import math

from .cores import FLOOR


def build_sweep_cores(jit, mul, core):
    """Compile ``member_slot``, ``layer2_sums`` and ``layer2_rows`` with ``jit``.

    Parameters
    ----------
    jit : decorator
    mul : compiled function
        As for :func:`gpu_trend.cores.build_cores`.
    core : Cores
        :func:`gpu_trend.cores.build_cores` compiled with the same ``jit``.

    Returns
    -------
    tuple of three compiled functions
        ``member_slot(q_src, r, start, cutout, d, q_out, e_out)`` copies q to ``q_out``
        (which may be ``q_src`` itself) and writes E from ``start`` on; the bars before a
        listing are never read (Layer 2 starts at the cutout, counted from the listing).
        ``layer2_sums(q, e, first, start, num, den)`` adds ``q * e`` to ``num`` and ``e`` to
        ``den`` on bars ``start:`` (with ``first``, it sets them to ``0.0`` first, as
        layer2_core starts its sums). ``layer2_rows(num, den, r, start, cutout, w, d, xout,
        sout)`` writes every bar of X_k and S_k.
    """

    member_equity = core.member_equity

    @jit
    def member_slot(q_src, r, start, cutout, d, q_out, e_out):
        a = 0.0
        e = math.nan
        q_prev = 0.0  # member_core's q before the listing bar
        for t in range(start, q_out.shape[0]):
            tau = t - start
            q = q_src[t]
            a, e = member_equity(tau, cutout, e, a, r[t], q_prev, d)
            q_out[t] = q
            e_out[t] = e
            q_prev = q

    @jit
    def layer2_sums(q, e, first, start, num, den):
        if first:
            for t in range(start, num.shape[0]):
                num[t] = 0.0
                den[t] = 0.0
        for t in range(start, num.shape[0]):
            num[t] += mul(q[t], e[t])
            den[t] += e[t]

    @jit
    def layer2_rows(num, den, r, start, cutout, w, d, xout, sout):
        x_prev = math.nan
        a = 0.0
        s = math.nan
        w0 = w if w > FLOOR else FLOOR
        for t in range(xout.shape[0]):
            tau = t - start
            if tau < cutout:
                xout[t] = math.nan
                sout[t] = math.nan
                continue
            x, a, s = core.layer2_step(num[t], den[t], tau == cutout, s, a, r[t], x_prev, w0,
                                       d)
            xout[t] = x
            sout[t] = s
            x_prev = x

    return member_slot, layer2_sums, layer2_rows
