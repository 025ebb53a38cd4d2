"""The CUDA kernels compile for sm_90, use no local memory, and fuse no inexact multiply-add.

The check needs NVVM but no GPU (see ``tests/ptx_check.py``); it is skipped where
numba-cuda or NVVM is missing, as on CI.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def test_kernels_compile_without_inexact_fma():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")])
    run = subprocess.run([sys.executable, str(HERE / "ptx_check.py")], env=env,
                         capture_output=True, text=True, timeout=600)
    if run.returncode == 3:
        pytest.skip(run.stdout.strip())
    assert run.returncode == 0, run.stdout + run.stderr


def test_audit_flags_a_contracted_product():
    sys.path.insert(0, str(HERE))
    from ptx_check import audit

    ptx = """
	ld.global.f64 	%fd1, [%rd1];
	ld.global.f64 	%fd2, [%rd2];
	cvt.rn.f64.s8 	%fd3, %rs1;
	fma.rn.f64 	%fd4, %fd1, %fd2, %fd5;
	fma.rn.f64 	%fd6, %fd3, %fd2, %fd4;
	fma.rn.f64 	%fd7, %fd1, 0d4010000000000000, 0dC000000000000000;
"""
    assert audit(ptx) == ["fma.rn.f64 \t%fd4, %fd1, %fd2, %fd5;"]
