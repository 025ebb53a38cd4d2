#!/usr/bin/env bash
# Everything to run on a CUDA box, in one call: correctness first, then the timings and a
# per-kernel profile. Writes logs and JSON under ${OUT:-gpu_session_out}/.
#
#   bash benchmarks/gpu_session.sh            # from the repository root
#
# Needs CuPy, numba-cuda and the package's CPU dependencies (numpy, pandas, numba, pyarrow,
# pytest, hypothesis, pytest-benchmark, psutil); nothing is installed here, so it runs on an
# offline machine too. ncu (Nsight Compute) is used when it is on the PATH.
set -u
OUT=${OUT:-gpu_session_out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}

step() { echo; echo "=== $*"; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
$PY -c "import sys, numpy, numba, cupy; from numba import cuda; print(sys.version.split()[0], 'numpy', numpy.__version__, 'numba', numba.__version__, 'cupy', cupy.__version__, 'cc', cuda.get_current_device().compute_capability)" | tee -a "$OUT/gpu.txt"

step "PTX audit: kernels compile for sm_90, no inexact fused multiply-add"
$PY tests/ptx_check.py 2>&1 | tee "$OUT/ptx_check.txt"

step "tests (the gpu suite runs on the device; the simulator tests skip)"
$PY -m pytest -q -x -p no:cacheprovider 2>&1 | tail -15 | tee "$OUT/pytest.txt"

step "benchmark: 500, 5,000, 20,000 symbols x 1,500 bars"
$PY benchmarks/bench_atc.py --universe 500,5000,20000 --bars 1500 --backend gpu --repeat 7 \
    --cpu-repeat 1 --json "$OUT/gpu_universe.json" 2>&1 | tee "$OUT/bench.txt"

step "benchmark: members on, 5,000 x 1,500"
$PY benchmarks/bench_atc.py --symbols 5000 --bars 1500 --backend gpu --members --repeat 5 \
    --no-cpu --json "$OUT/gpu_members.json" 2>&1 | tail -6 | tee "$OUT/bench_members.txt"

step "live update: one bar for 5,000 symbols from a GPU state, against recomputing 1,501 bars"
$PY benchmarks/bench_update.py --symbols 5000 --bars 1500 --rounds 7 --backend gpu 2>&1 \
    | tail -4 | tee "$OUT/bench_update.txt"

step "sweep: the 27-point lengths x robustness grid, 500 x 1,500, against separate calls"
$PY benchmarks/bench_sweep.py --grid lengths --symbols 500 --bars 1500 --rounds 3 --backend gpu \
    2>&1 | tail -6 | tee "$OUT/bench_sweep.txt"

if command -v ncu >/dev/null 2>&1; then
    # Skips the 16 launches of the check and the warm-ups; profiles the first full-size call.
    step "per-kernel profile (ncu), one call on 5,000 x 1,500"
    ncu --clock-control none --section SpeedOfLight --section Occupancy --section LaunchStats \
        --kernel-name regex:'returns_kernel|member_kernel|layer2_kernel|final_kernel' \
        --launch-skip 16 --launch-count 4 \
        $PY benchmarks/bench_atc.py --symbols 5000 --bars 1500 --backend gpu --repeat 1 --no-cpu \
        > "$OUT/ncu.txt" 2>&1
    grep -E "member_kernel|layer2_kernel|returns_kernel|final_kernel|Duration|Memory Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Registers Per Thread" "$OUT/ncu.txt" | tee "$OUT/ncu_summary.txt"
fi
step "done: $OUT"
