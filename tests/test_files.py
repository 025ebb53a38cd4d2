"""gpu_trend.files: one table writer for every format, and it never leaves half a file."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gpu_trend.files import TABLE_SUFFIXES, table_kind, write_table


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "symbol": ["AAA", "BBB", "CCC"],
        "time": pd.date_range("2024-01-01 09:00", periods=3, freq="h"),
        "average_signal": [0.123456789012345, -0.5, np.nan],
        "direction": [1, -1, 0],
    })


def read_back(path, kind: str) -> pd.DataFrame:
    if kind == "parquet":
        return pd.read_parquet(path)
    if kind == "json":
        back = pd.DataFrame(json.loads(path.read_text()))
        return back.assign(time=pd.to_datetime(back["time"]))
    back = pd.read_csv(path, sep="\t" if kind == "tsv" else ",")
    return back.assign(time=pd.to_datetime(back["time"]))


@pytest.mark.parametrize("suffix", list(TABLE_SUFFIXES))
def test_round_trip(tmp_path, frame, suffix):
    path = tmp_path / f"table{suffix}"
    assert write_table(frame, path) == path
    back = read_back(path, table_kind(path))
    pd.testing.assert_frame_equal(back, frame, check_dtype=False, rtol=1e-15)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_formats_on_disk(tmp_path, frame):
    rows = json.loads(write_table(frame, tmp_path / "t.json").read_text())
    # Records with ISO times and 15 significant digits.
    assert rows[0] == {"symbol": "AAA", "time": "2024-01-01T09:00:00.000",
                       "average_signal": 0.123456789012345, "direction": 1}
    assert rows[2]["average_signal"] is None
    assert (tmp_path / "t.json").read_text().startswith("[\n {\n")
    assert write_table(frame, tmp_path / "t.csv").read_text().splitlines()[0] == \
        "symbol,time,average_signal,direction"
    assert write_table(frame, tmp_path / "t.tsv").read_text().splitlines()[0] == \
        "symbol\ttime\taverage_signal\tdirection"
    assert write_table(frame, tmp_path / "t.csv.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert write_table(frame, tmp_path / "T.PARQUET").read_bytes()[:4] == b"PAR1"


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json"])
def test_index_is_written_as_columns(tmp_path, frame, suffix):
    path = write_table(frame.set_index("symbol"), tmp_path / f"t{suffix}", index=True)
    back = read_back(path, table_kind(path))
    assert list(back.columns) == list(frame.columns)
    assert list(back["symbol"]) == ["AAA", "BBB", "CCC"]


@pytest.mark.parametrize("name", ["hits.xlsx", "hits", "hits.csv.zip", "parquet"])
def test_unknown_suffix(tmp_path, frame, name):
    with pytest.raises(ValueError, match=r"\.csv, \.parquet or \.json") as info:
        write_table(frame, tmp_path / name)
    assert repr(name) in str(info.value)
    assert all(s in str(info.value) for s in TABLE_SUFFIXES)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix, writer", [
    (".csv", "to_csv"),
    (".json", "to_json"),
    (".parquet", "pyarrow"),
])
def test_failed_write_keeps_the_old_file(tmp_path, frame, monkeypatch, suffix, writer):
    path = tmp_path / f"table{suffix}"
    path.write_bytes(b"the previous table")

    def half_then_fail(self_or_table, target, *args, **kwargs):
        with open(target, "wb") as fh:
            fh.write(b"half a tab")
        raise OSError("disk full")

    if writer == "pyarrow":
        import pyarrow.parquet as pq

        monkeypatch.setattr(pq, "write_table", half_then_fail)
    else:
        monkeypatch.setattr(pd.DataFrame, writer, half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_table(frame, path)
    assert path.read_bytes() == b"the previous table"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_interrupted_write_leaves_no_file(tmp_path, frame, monkeypatch):
    def interrupted(self, target, *args, **kwargs):
        open(target, "w").close()
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_table(frame, tmp_path / "new.csv")
    assert list(tmp_path.iterdir()) == []


def test_replaces_an_existing_file(tmp_path, frame):
    path = tmp_path / "t.csv"
    path.write_text("old\n")
    write_table(frame, path)
    assert len(pd.read_csv(path)) == 3


def test_a_write_beyond_the_file_size_limit_keeps_the_old_file_and_names_the_path(tmp_path):
    """A real OS failure (EFBIG under RLIMIT_FSIZE), as `--out partial.csv` met it."""
    import subprocess
    import sys
    import textwrap

    target = tmp_path / "partial.csv"
    target.write_text("old,complete\n1,2\n")
    script = textwrap.dedent(f"""
        import resource, signal
        import pandas as pd
        from gpu_trend.files import write_table
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write, do not kill the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            write_table(pd.DataFrame({{"x": range(5000)}}), {str(target)!r})
        except OSError as exc:
            print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert f"cannot write {target}: File too large" in out.stdout, out.stdout + out.stderr
    assert target.read_text() == "old,complete\n1,2\n"
    assert [p.name for p in tmp_path.iterdir()] == ["partial.csv"]
