"""Cold and warm start of ``gpu-trend demo``, and what the cold start compiles.

Each start is a whole process running ``gpu-trend demo`` (the program's ``cli.run``, default
500 × 1,500 demo), its wall and CPU seconds taken from outside. *Cold*: ``NUMBA_CACHE_DIR`` points at an empty folder, so nothing
is in Numba's on-disk cache; *warm*: the same folder again, filled by the cold run. The runs
alternate (cold, warm, cold, warm, ...), each cold run in a fresh folder.

``--profile`` instead runs one cold demo in this process with a listener on Numba's
``numba:compile`` events and prints each compiled function, its signature and its own
compile time (time in nested compiles of its callees subtracted).

``--backend-file FILE`` runs ``FILE`` as ``cpu_fallback.backend`` (a variant of the CPU backend,
e.g. a scratch copy with fewer specialisations), to compare its cold start with the tree's.

    python3 benchmarks/bench_cold_start.py [--repeat 3] [--profile] [--backend-file FILE]
                                           [-- demo args]
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict

DEMO = """
import sys
backend_file = sys.argv[1]
if backend_file:
    import importlib.util
    import cpu_fallback
    spec = importlib.util.spec_from_file_location("cpu_fallback.backend", backend_file)
    sys.modules[spec.name] = cpu_fallback.backend = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cpu_fallback.backend)
from gpu_trend.cli import run
run(["demo", "--no-progress"] + sys.argv[2:])
"""


def timed_start(cache_dir: str, backend_file: str, extra: list) -> tuple:
    """Wall and CPU seconds of one ``gpu-trend demo`` process, Numba's cache in ``cache_dir``."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", DEMO, backend_file or ""] + extra, env=env,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)


def starts(repeat: int, backend_file: str, extra: list) -> None:
    runs = {"cold": [], "warm": []}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as d:
            runs["cold"].append(timed_start(d, backend_file, extra))
            runs["warm"].append(timed_start(d, backend_file, extra))
    for name, xs in runs.items():
        walls, cpus = zip(*xs)
        print(f"{name}: median wall {statistics.median(walls):.2f} s "
              f"({', '.join(f'{x:.2f}' for x in walls)}), "
              f"CPU {statistics.median(cpus):.2f} s ({', '.join(f'{x:.2f}' for x in cpus)})")


def profile(backend_file: str, extra: list) -> None:
    """One cold demo in this process, printing every compile with its own time."""
    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp()
    from numba.core import event

    spans = []            # (name, signature, own seconds)
    outer = []            # (dispatcher, args) of compiles no other compile contains
    stack = threading.local()

    class Compiles(event.Listener):
        def on_start(self, ev):
            if not hasattr(stack, "open"):
                stack.open = []
            stack.open.append([time.perf_counter(), 0.0])

        def on_end(self, ev):
            t0, nested = stack.open.pop()
            total = time.perf_counter() - t0
            d = ev.data["dispatcher"]
            if stack.open:
                stack.open[-1][1] += total
            else:
                outer.append((d, tuple(ev.data["args"])))
            sig = ", ".join(str(a) for a in ev.data["args"])
            spans.append((f"{d.py_func.__module__}.{d.py_func.__qualname__}", sig,
                          total - nested))

    event.register("numba:compile", Compiles())
    sys.argv[:] = ["demo", backend_file or ""] + extra
    t0 = time.perf_counter()
    try:
        exec(DEMO, {"__name__": "demo"})
    except SystemExit:
        pass
    wall = time.perf_counter() - t0
    by_fn = defaultdict(list)
    for name, sig, own in spans:
        by_fn[name.replace(".build_cores.<locals>", "")].append((own, sig))
    print(f"\n{len(spans)} compiles of {len(by_fn)} functions, "
          f"{sum(s[2] for s in spans):.1f} s of {wall:.1f} s in main()")
    for d, args in outer:  # Numba's own split: its compiler (typing, lowering) and LLVM
        timers = d.overloads[args].metadata["timers"]
        print(f"{d.py_func.__qualname__}: {timers['compiler_lock']:.1f} s under the compiler "
              f"lock, of which {timers['llvm_lock']:.1f} s in LLVM")
    for name, sigs in sorted(by_fn.items(), key=lambda kv: -sum(o for o, _ in kv[1])):
        print(f"{sum(o for o, _ in sigs):6.2f} s  {len(sigs)}×  {name}")
        for own, sig in sigs:
            print(f"          {own:6.2f} s  ({sig})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--backend-file", help="run this file as cpu_fallback.backend")
    ap.add_argument("extra", nargs="*", help="more `gpu-trend demo` arguments (after --)")
    a = ap.parse_args()
    if a.profile:
        profile(a.backend_file, a.extra)
    else:
        starts(a.repeat, a.backend_file, a.extra)
