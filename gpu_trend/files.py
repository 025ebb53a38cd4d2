"""Writing tables to files: the one place that maps a file suffix to a format.

Results (:meth:`gpu_trend.ScanResult.to_file`), universes
(:func:`gpu_trend.io.write_universe`) and the command line's checks of output names all
go through here, so they accept the same names and write the same bytes.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

__all__ = ["TABLE_SUFFIXES", "IMAGE_SUFFIXES", "table_kind", "write_table", "write_atomically"]

#: The format of a table file, by suffix (matched case-insensitively at the end of the
#: name).  The usual three come first; TSV and compressed CSV are there because
#: :func:`gpu_trend.io.read_universe` reads them, so a universe can be written as such.
TABLE_SUFFIXES = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".json": "json",
    ".pq": "parquet",
    ".tsv": "tsv",
    ".csv.gz": "csv",
    ".csv.bz2": "csv",
}

#: The image formats a chart is saved to (matplotlib picks the format from the suffix).
IMAGE_SUFFIXES = (".png", ".svg", ".pdf", ".jpg", ".jpeg")

_USUAL = (".csv", ".parquet", ".json")
_COMPRESSION = {".gz": "gzip", ".bz2": "bz2"}


def table_kind(path: str | os.PathLike) -> str:
    """The format of a table file from its name.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    {"csv", "tsv", "parquet", "json"}

    Raises
    ------
    ValueError
        If the name ends in none of :data:`TABLE_SUFFIXES`; the message lists them.
    """
    name = Path(path).name
    for suffix, kind in TABLE_SUFFIXES.items():
        if name.lower().endswith(suffix):
            return kind
    others = ", ".join(s for s in TABLE_SUFFIXES if s not in _USUAL)
    raise ValueError(f"cannot write {name!r}: the output must end in .csv, .parquet or .json "
                     f"(or {others})")


def write_table(df: Any, path: str | os.PathLike, *, index: bool = False) -> Path:
    """Write a DataFrame to CSV, TSV, Parquet or JSON, chosen by the suffix of `path`.

    The file is written under a temporary name in the same directory and then renamed onto
    `path`, so `path` only ever holds a complete table: a failed or interrupted write leaves
    an existing file as it was, and a reader never sees half a file.

    Parameters
    ----------
    df : pandas.DataFrame
    path : str or os.PathLike
        Output file; see :data:`TABLE_SUFFIXES`.  ``.csv.gz`` and ``.csv.bz2`` are compressed.
    index : bool, default False
        Write the index as the first column(s) (in every format alike).

    Returns
    -------
    pathlib.Path
        `path`.

    Raises
    ------
    ValueError
        If the suffix is not a table format.

    Notes
    -----
    JSON is a list of records with ISO 8601 times and 15 significant digits: the form other
    tools (and people) read most easily, exact enough to round-trip a float64 to 1e-15.
    Parquet is written with pyarrow.
    """
    path = Path(path)
    kind = table_kind(path)
    if index:
        df = df.reset_index()
    return write_atomically(path, lambda tmp: _write(df, tmp, kind,
                                                     _COMPRESSION.get(path.suffix.lower())))


def write_atomically(path: str | os.PathLike, write: Any) -> Path:
    """Run ``write(tmp)`` on a temporary file beside `path`, then rename it onto `path`.

    `path` only ever holds a complete file: a failed or interrupted write leaves an existing
    file as it was, removes the temporary one, and raises an ``OSError`` naming `path` (with
    the system's reason: no space left on device, file too large, permission denied, …).

    Parameters
    ----------
    path : str or os.PathLike
    write : callable
        ``write(tmp_path)`` writes the whole file to `tmp_path` (a :class:`pathlib.Path`).

    Returns
    -------
    pathlib.Path
        `path`.
    """
    path = Path(path)
    # Not tempfile.mkstemp: its files are private (mode 0600), and the rename would keep that.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        reason = exc.strerror or str(exc)
        raise OSError(exc.errno, f"cannot write {path}: {reason}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _write(df: Any, path: Path, kind: str, compression: str | None) -> None:
    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), str(path))
    elif kind == "json":
        df.to_json(path, orient="records", date_format="iso", indent=1, double_precision=15)
    else:
        df.to_csv(path, index=False, sep="\t" if kind == "tsv" else ",",
                  compression=compression)
