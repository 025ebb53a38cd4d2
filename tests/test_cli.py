"""The command line, run as users run it: ``python -m gpu_trend …`` in a subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gpu_trend._version import __version__
from gpu_trend.backend import BACKENDS
from gpu_trend.cli import main
from gpu_trend.config import NAN_POLICIES, ROBUSTNESS_OFFSETS
from gpu_trend.io import FORMATS

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    # The checkout must win over any installed copy; no colours or bars in captured output.
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("GPU_TREND_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "gpu_trend", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, *fragments: str) -> str:
    assert proc.returncode == code, proc.stderr
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr
    assert len(err.splitlines()) == 1, proc.stderr
    assert err.startswith("gpu-trend"), err
    for f in fragments:
        assert f in err, err
    return err


def trend(up: bool, seed: int, n: int = 240, base: float = 50.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    slope = np.r_[np.full(n // 2, -0.004), np.full(n - n // 2, 0.004)]
    return base * np.exp(np.cumsum((slope if up else -slope) + rng.normal(0, 0.002, n)))


@pytest.fixture(scope="module")
def long_file(tmp_path_factory) -> Path:
    """A long-form Parquet file: 4 trending symbols and one that is too short."""
    times = pd.date_range("2024-01-01", periods=240, freq="h")
    rows = []
    for sym, up, seed in (("UPA", True, 1), ("UPB", True, 2), ("DNA", False, 3),
                          ("DNB", False, 4)):
        rows.append(pd.DataFrame({"symbol": sym, "time": times, "close": trend(up, seed),
                                  "volume": 1000.0}))
    rows.append(pd.DataFrame({"symbol": "TINY", "time": times[-30:],
                              "close": trend(True, 5)[-30:], "volume": 1000.0}))
    path = tmp_path_factory.mktemp("cli") / "universe.parquet"
    pd.concat(rows, ignore_index=True).to_parquet(path)
    return path


def test_version():
    proc = run("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"gpu-trend {__version__}"


@pytest.mark.parametrize("args, code", [
    (["demo", "--symbols", "12", "--bars", "300", "--no-progress"], 0),
    (["scan", "no-such-file.parquet"], 1),
])
def test_the_program_exits_quickly_without_losing_anything(tmp_path, args, code):
    # cli.run ends the process with os._exit: the exit handlers must still run (last) and
    # every line printed must reach the pipe, with main's exit status.
    script = ("import atexit, sys; from gpu_trend.cli import run; "
              "atexit.register(lambda: print('exit handler ran', flush=True)); "
              f"run({args!r}); print('not reached')")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == code, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == "exit handler ran" and "not reached" not in proc.stdout
    if code == 0:
        assert any(line.startswith("Top long") for line in lines), proc.stdout
    else:
        assert proc.stderr.startswith("gpu-trend: error:") and "no-such-file" in proc.stderr


def test_scan_prints_and_writes(long_file, tmp_path):
    out = tmp_path / "hits.csv"
    proc = run("scan", str(long_file), "--backend", "cpu", "--out", str(out), "--top", "1",
               "--skipped-out", str(tmp_path / "skipped.json"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no progress bar when stderr is not a terminal
    assert "5 symbols × 240 timestamps: 4 scanned, 1 skipped" in proc.stdout
    assert "Top long" in proc.stdout and "Top short" in proc.stdout
    assert "Skipped: too short 1" in proc.stdout
    table = pd.read_csv(out)
    assert list(table["symbol"]) in (["UPA", "DNA"], ["UPA", "DNB"], ["UPB", "DNA"],
                                     ["UPB", "DNB"], ["DNA", "UPA"], ["DNB", "UPA"],
                                     ["DNA", "UPB"], ["DNB", "UPB"])
    assert {"rank", "time", "close", "average_signal", "direction", "EMA", "KAMA",
            "bars_since_long", "dollar_volume"} <= set(table.columns)
    ups = table[table.symbol.str.startswith("UP")]
    assert (ups["average_signal"] > 0.1).all()
    skipped = json.loads((tmp_path / "skipped.json").read_text())
    assert skipped == [{"symbol": "TINY", "category": "too short",
                        "reason": "too short: 30 bars < min_bars 67"}]


def test_scan_json_and_parquet_outputs_in_process(long_file, tmp_path, capsys):
    # main() is the console-script entry point; calling it directly is faster than a process.
    assert main(["scan", str(long_file), "--backend", "cpu", "--quiet", "--min-signal", "0",
                 "--all", "--out", str(tmp_path / "all.json")]) == 0
    assert capsys.readouterr().out == ""
    rows = json.loads((tmp_path / "all.json").read_text())
    assert sorted(r["symbol"] for r in rows) == ["DNA", "DNB", "UPA", "UPB"]
    assert rows[0]["time"].startswith("2024-01-10T23:00:00")
    assert main(["scan", str(long_file), "--backend", "cpu", "--quiet",
                 "--out", str(tmp_path / "t.parquet")]) == 0
    assert len(pd.read_parquet(tmp_path / "t.parquet")) >= 2


def test_scan_wide_csv_with_options(tmp_path, capsys):
    times = pd.date_range("2024-01-01", periods=200, freq="D")
    wide = pd.DataFrame({"A": trend(True, 1, 200), "B": trend(False, 2, 200)}, index=times)
    wide.index.name = "Date"
    path = tmp_path / "wide.csv"
    wide.to_csv(path)
    assert main(["scan", str(path), "--format", "wide", "--backend", "cpu", "--min-signal", "0",
                 "--robustness", "Wide", "--length", "20", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "2 symbols × 200 timestamps: 2 scanned, 0 skipped" in out


@pytest.mark.parametrize("args, code, fragments", [
    (["scan", "does-not-exist.parquet"], 1, ["no such file or directory"]),
    (["scan"], 2, ["the following arguments are required: PATH"]),
    (["scan", "{data}", "--out", "hits.txt"], 1, ["must end in .csv"]),
    (["scan", "{data}", "--min-signal", "abc"], 2, ["invalid float value"]),
    (["scan", "{data}", "--la", "-1"], 1, ["ATCConfig.la must be >= 0"]),
    (["scan", "{data}", "--lengths", "1,2"], 1, ["ATCConfig.lengths"]),
    (["scan", "{data}", "--columns", "close=nope"], 1, ["'nope' (given for 'close') not found"]),
    (["scan", "{data}", "--columns", "close"], 1, ["FIELD=NAME"]),
    (["frobnicate"], 2, ["invalid choice"]),
    (["scan", "{data}", "--out", "chart.png"], 1, [".csv, .parquet, .json, .pq"]),
    (["plot", "{data}", "UPA", "--out", "chart.txt"], 1, ["must end in .png"]),
    (["bench", "--frobnicate"], 2, ["gpu-trend bench: error: unrecognized arguments"]),
])
def test_errors_are_one_line(long_file, tmp_path, capsys, args, code, fragments):
    args = [a.replace("{data}", str(long_file)) for a in args]
    with pytest.raises(SystemExit) if code == 2 else _nullcontext() as info:
        rc = main(args)
    if code == 2:
        rc = info.value.code
    err = capsys.readouterr().err
    assert rc == code
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("gpu-trend")
    for f in fragments:
        assert f in err


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_data_error_in_a_subprocess_is_one_line(tmp_path):
    times = pd.date_range("2024-01-01", periods=3, freq="D")
    df = pd.DataFrame({"symbol": ["X", "X", "X", "X"], "time": list(times) + [times[1]],
                       "close": [1.0, 2.0, 3.0, 4.0]})
    path = tmp_path / "dup.csv"
    df.to_csv(path, index=False)
    proc = run("scan", str(path))
    assert_one_line_error(proc, 1, "duplicate rows for symbol 'X' at time 2024-01-02")


def test_plot_writes_a_png(long_file, tmp_path):
    out = tmp_path / "upa.png"
    proc = run("plot", str(long_file), "UPA", "--out", str(out), "--backend", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"wrote {out}"
    head = out.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    proc = run("plot", str(long_file), "NOPE", "--out", str(out))
    assert_one_line_error(proc, 1, "'NOPE' is not in the data")


def test_plot_default_name(long_file, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main(["plot", str(long_file), "DNA", "--backend", "cpu"]) == 0
    finally:
        os.chdir(cwd)
    assert (tmp_path / "atc_DNA.png").stat().st_size > 10_000


def test_demo(tmp_path):
    out = tmp_path / "demo.json"
    proc = run("demo", "--symbols", "40", "--bars", "300", "--top", "3", "--backend", "cpu",
               "--out", str(out), "--save-data", str(tmp_path / "demo.parquet"))
    assert proc.returncode == 0, proc.stderr
    assert "demo universe: 40 symbols × 300 hourly bars (seed 0)" in proc.stdout
    assert "Top long" in proc.stdout and "Top short" in proc.stdout
    assert "total" in proc.stdout
    rows = json.loads(out.read_text())
    assert 1 <= len(rows) <= 6
    saved = pd.read_parquet(tmp_path / "demo.parquet")
    assert saved["symbol"].nunique() == 40


def test_demo_is_deterministic(capsys):
    assert main(["demo", "--symbols", "25", "--bars", "200", "--top", "5",
                 "--backend", "cpu"]) == 0
    first = capsys.readouterr().out
    assert main(["demo", "--symbols", "25", "--bars", "200", "--top", "5",
                 "--backend", "cpu"]) == 0
    second = capsys.readouterr().out

    def without_timings(text):
        return re.sub(r"\d+\.\d+ s\b|\((load|read)[^)]*\)", "", text)

    assert "Top long" in first
    assert without_timings(first) == without_timings(second)


def test_bench_scan_in_process(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--scan", "--symbols", "20", "--bars", "200", "--repeat", "1",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "20 symbols, scan files: read Parquet" in text
    (record,) = json.loads(out.read_text())["runs"]
    assert record["mode"] == "scan files" and record["symbols"] == 20
    assert record["read_s"] + record["scan_s"] + record["write_s"] == pytest.approx(
        record["median_s"])


def test_bench_needs_no_checkout(tmp_path):
    # The harness is part of the package: nothing is looked up in benchmarks/ or the cwd.
    proc = run("bench", "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: gpu-trend bench")
    assert "--scan" in proc.stdout and "--universe" in proc.stdout


@pytest.mark.parametrize("option, values", [
    ("--robustness", tuple(ROBUSTNESS_OFFSETS)),
    ("--nan-policy", NAN_POLICIES),
    ("--backend", BACKENDS),
    ("--format", FORMATS),
])
def test_choices_are_the_library_constants(long_file, capsys, option, values):
    with pytest.raises(SystemExit):
        main(["scan", str(long_file), option, "nope"])
    listed = re.search(r"\(choose from (.*?)\)", capsys.readouterr().err).group(1)
    # Python versions differ on quoting the choices.
    assert [v.strip("'") for v in listed.split(", ")] == list(values)


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "scan" in capsys.readouterr().out


# --- mixed real data: calendars, staleness, hints -----------------------------------------------

@pytest.fixture(scope="module")
def mixed_csv(tmp_path_factory) -> Path:
    from test_calendars import mixed_long

    path = tmp_path_factory.mktemp("mixed") / "mixed.csv"
    mixed_long().to_csv(path, index=False)
    return path


def test_mixed_calendars_scan_out_of_the_box(mixed_csv, tmp_path):
    out = tmp_path / "all.csv"
    proc = run("scan", str(mixed_csv), "--backend", "cpu", "--out", str(out), "--all")
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(out).set_index("symbol")
    assert len(table) == 7
    assert table.loc["GOOG", "time"].startswith("2013-03-01") and table.loc["GOOG", "stale"]
    assert table.loc["BTC", "bars"] == 156
    assert "Stale: 1 scanned symbol" in proc.stdout and "--max-age" in proc.stdout
    # Integers stay integers in the file.
    assert re.search(r"^GOOG,\d+,2013-03-01[^,]*,[^,]+,[^,]+,-?1,", out.read_text(), re.M)


def test_max_age_option_skips_stale_symbols(mixed_csv):
    proc = run("scan", str(mixed_csv), "--backend", "cpu", "--max-age", "45D")
    assert proc.returncode == 0, proc.stderr
    assert "Skipped: stale 1" in proc.stdout
    assert_one_line_error(run("scan", str(mixed_csv), "--max-age", "soon"), 2, "--max-age")


def test_scanning_nothing_exits_non_zero_with_reasons_in_cli_syntax(mixed_csv):
    # On the union grid every symbol has other symbols' times as holes.
    proc = run("scan", str(mixed_csv), "--backend", "cpu", "--calendar", "union")
    err = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1
    assert err.startswith("gpu-trend: error: scanned 0 of 7 symbols (missing data 7); e.g. ")
    assert "--nan-policy skip" in err and "nan_policy=" not in err


def test_engine_warnings_are_one_line_each(long_file):
    proc = run("scan", str(long_file), "--backend", "cpu", "--la", "1")
    assert proc.returncode == 0, proc.stderr
    warned = [ln for ln in proc.stderr.splitlines() if ln]
    assert len(warned) == 1, proc.stderr
    assert re.fullmatch(r"gpu-trend: warning: la=1\.0 grows returns by [\d.]+x at the last bar "
                        r"\(above 1\.25\) for 4 of 4 symbols; .*", warned[0])


def test_cli_syntax_of_library_hints():
    from gpu_trend.cli import _cli_syntax

    assert _cli_syntax("pass nan_policy='ffill' or raise memory_limit; columns={'time': NAME}"
                       ) == "pass --nan-policy ffill or raise --memory-limit; --columns time=NAME"
    assert _cli_syntax("on its own calendar") == "on its own calendar"


def test_first_run_says_it_is_compiling(capsys):
    from gpu_trend.cli import _wait_for_kernels

    class Compiling:
        cached = False

        def __init__(self):
            self.joined = False

        def is_alive(self):
            return not self.joined

        def join(self, timeout=None):
            self.joined = True

    warm = Compiling()
    _wait_for_kernels(warm)
    assert warm.joined and "compiling the ATC kernels (first run only" in capsys.readouterr().err
    warm = Compiling()
    warm.cached = True
    _wait_for_kernels(warm)
    assert capsys.readouterr().err == ""


def test_epoch_time_hint_in_option_syntax(tmp_path):
    path = tmp_path / "wide.csv"
    pd.DataFrame({"x": 1_700_000_000 + 3600 * np.arange(100),
                  "AAA": trend(True, 1, 100)}).to_csv(path, index=False)
    err = assert_one_line_error(run("scan", str(path), "--backend", "cpu"), 1, "--columns time=x")
    assert "columns={" not in err


def test_warm_scan_with_a_state_file(long_file, tmp_path):
    state = tmp_path / "state.npz"
    cold = run("scan", str(long_file), "--backend", "cpu", "--all", "--out",
               str(tmp_path / "cold.csv"))
    first = run("scan", str(long_file), "--backend", "cpu", "--state", str(state))
    assert first.returncode == 0 and "State: 0 updated, 4 fresh, 0 unchanged" in first.stdout
    warm = run("scan", str(long_file), "--backend", "cpu", "--state", str(state), "--all",
               "--out", str(tmp_path / "warm.csv"))
    assert warm.returncode == 0, warm.stderr
    assert "State: 0 updated, 0 fresh, 4 unchanged" in warm.stdout
    assert f"saved the state to {state}" in warm.stdout
    assert cold.returncode == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "warm.csv"),
                                  pd.read_csv(tmp_path / "cold.csv"))
