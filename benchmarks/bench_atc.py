"""The ATC benchmark, from a checkout: ``python benchmarks/bench_atc.py [OPTIONS]``.

The harness lives in :mod:`gpu_trend.bench` so that an installed package runs it too, as
``gpu-trend bench [OPTIONS]``; see there for the options and examples.
"""

from gpu_trend.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
