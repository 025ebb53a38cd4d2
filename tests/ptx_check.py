"""Compile the CUDA kernels to PTX for Hopper (sm_90) and audit their fused multiply-adds.

Run by ``tests/test_ptx.py`` in a subprocess, because the test session may be
using Numba's CUDA simulator, which cannot compile. Needs NVVM (numba-cuda with
the CUDA toolkit's ``nvvm`` component, e.g. ``pip install "numba-cuda[cu13]"``)
but no GPU. Usage: ``python tests/ptx_check.py`` from the repository root.

Why: NVVM contracts ``a * b + c`` into one fused multiply-add unless the
product is explicitly rounded, and a fused result can differ from the CPU's in
the last bit. Every ``fma.rn.f64`` left in the PTX must be one whose product is
exact, so that fusing cannot change the result: a factor that is an
immediate small integer (``4.0 * length - 2.0``), or a member signal q or a
``cut`` value (−1, 0 or +1).

Exit status: 0 all kernels compiled and passed the audit, 1 an audit failed,
3 NVVM (or numba-cuda) is not available here.
"""

import importlib.util
import os
import re
import sys

# A ±1/0/small-integer operand is produced by one of these.
EXACT_SOURCES = re.compile(r"^\s*(cvt\.rn\.f64\.s8|cvt\.rn\.f64\.s64|selp\.f64|mov\.f64)\s")
FMA = re.compile(r"^\s*fma\.rn\.f64\s+(%fd\d+),\s*([^,]+),\s*([^,]+),\s*([^;]+);")
IMMEDIATE = re.compile(r"^0d[0-9A-F]{16}$")


def _defs(ptx):
    out = {}
    for line in ptx.splitlines():
        m = re.match(r"^\s*([a-z0-9.]+)\s+(%fd\d+),", line)
        if m:
            out.setdefault(m.group(2), []).append(line.strip())
    return out


def _exact_operand(op, defs):
    op = op.strip()
    if IMMEDIATE.match(op):
        return True
    lines = defs.get(op, [])
    return bool(lines) and all(EXACT_SOURCES.match(line) for line in lines)


def audit(ptx):
    """The fma.rn.f64 lines of ``ptx`` whose product is not provably exact."""
    defs = _defs(ptx)
    bad = []
    for line in ptx.splitlines():
        m = FMA.match(line)
        if m and not (_exact_operand(m.group(2), defs) or _exact_operand(m.group(3), defs)):
            bad.append(line.strip())
    return bad


def main():
    os.environ["NUMBA_ENABLE_CUDASIM"] = "0"
    if importlib.util.find_spec("numba_cuda") is None:
        # Numba's own numba.cuda is deprecated and the device runs numba-cuda.
        print("NVVM unavailable: numba-cuda is not installed")
        return 3
    try:
        from numba import cuda, float64

        cuda.compile_ptx(lambda a, b: a + b, (float64, float64), device=True, cc=(9, 0))
    except Exception as exc:  # no numba-cuda / NVVM: nothing to check here
        print(f"NVVM unavailable: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        return 3
    from numba import types

    try:
        cuda.get_current_device()
    except Exception:
        # Compiling a call to a device function asks the current device for its compute
        # capability; with no GPU here, answer for the one we compile for.
        import numba.cuda.dispatcher as dispatcher

        class _Hopper:
            compute_capability = (9, 0)

        dispatcher.get_current_device = lambda: _Hopper()

    from gpu_trend import gpu

    returns_k, member_k, layer2_k, final_k = gpu._kernels()
    f8, i8, flag = types.float64, types.int64, types.boolean

    def arr(dtype, ndim):
        return types.Array(dtype, ndim, "C")

    q8 = arr(types.int8, 3)
    b1 = arr(flag, 1)
    sigs = [
        ("returns", returns_k, (arr(f8, 2), arr(f8, 1), arr(i8, 1), arr(i8, 1), arr(f8, 2))),
        ("member", member_k,
         (arr(f8, 2), arr(f8, 2), arr(f8, 2), arr(i8, 1), arr(i8, 1), arr(i8, 1), i8, f8, f8,
          flag, arr(f8, 3), q8, arr(f8, 3), arr(f8, 3), b1, flag)),
        ("member (members=True)", member_k,
         (arr(f8, 2), arr(f8, 2), arr(f8, 2), arr(i8, 1), arr(i8, 1), arr(i8, 1), i8, f8, f8,
          flag, arr(f8, 3), arr(f8, 3), arr(f8, 3), arr(f8, 3), b1, flag)),
        ("layer2", layer2_k,
         (q8, arr(f8, 3), arr(f8, 2), arr(i8, 1), arr(i8, 1), arr(f8, 1), i8, f8, arr(f8, 3),
          arr(f8, 3), arr(f8, 3), b1, flag)),
        ("layer2 (members=True)", layer2_k,
         (arr(f8, 3), arr(f8, 3), arr(f8, 2), arr(i8, 1), arr(i8, 1), arr(f8, 1), i8, f8,
          arr(f8, 3), arr(f8, 3), arr(f8, 3), b1, flag)),
        ("final", final_k,
         (arr(f8, 3), arr(f8, 3), arr(i8, 1), arr(i8, 1), i8, f8, f8, i8, flag, arr(f8, 2),
          arr(f8, 2), arr(flag, 2), arr(flag, 2), arr(f8, 2), b1, flag)),
    ]
    failed = False
    for name, kernel, sig in sigs:
        ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(9, 0))
        bad = audit(ptx)
        n_fma = len(re.findall(r"fma\.rn\.f64", ptx))
        local = ".local" in ptx
        print(f"{name:24s} {len(ptx.splitlines()):6d} PTX lines, {n_fma:3d} fma.rn.f64 "
              f"({len(bad)} inexact), local memory: {local}")
        for line in bad:
            print(f"    inexact fused multiply-add: {line}")
        failed |= bool(bad) or local
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
