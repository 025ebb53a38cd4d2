"""``python -m gpu_trend``: the same command line as ``gpu-trend``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
