"""``python -m gpu_trend``: the same command line as ``gpu-trend``."""

from .cli import run

if __name__ == "__main__":
    run()
