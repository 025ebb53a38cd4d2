"""Notebook displays: the HTML of ATCResult, ScanResult and Universe, one-line reprs, and when
a progress bar is drawn.

The HTML is parsed with the standard library's ``html.parser``: it must be well formed (every
opened element closed in order) and its tables must hold what the objects hold.
"""

import sys
import types
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

import gpu_trend
from gpu_trend import FAMILIES, display, read_universe, scan
from gpu_trend.demo import demo_universe

VOID = {"br", "hr", "img", "meta", "link", "input", "col", "wbr"}


class Page(HTMLParser):
    """Checks nesting while reading the text of every table cell, row by row."""

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.stack, self.tables, self.text = [], [], []
        self.feed(html)
        self.close()
        assert not self.stack, f"unclosed elements: {self.stack}"

    def handle_starttag(self, tag, attrs):
        if tag in VOID:
            return
        self.stack.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.tables[-1][-1].append("")

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)
        if self.stack and self.stack[-1] in ("td", "th"):
            self.tables[-1][-1][-1] += data

    def facts(self) -> dict:
        """The first table (name | value rows) as a dict."""
        return {row[0]: row[1] for row in self.tables[0]}

    def body(self, k) -> dict:
        """Data table `k` (after the facts): row label → cells, header rows left out."""
        rows = self.tables[k][2:]  # pandas writes the column names, then the index name
        return {row[0]: row[1:] for row in rows}


@pytest.fixture(scope="module")
def uni():
    return demo_universe(14, 240, seed=3)


@pytest.fixture(scope="module")
def res(uni):
    return gpu_trend.compute_atc(uni, backend="cpu")


def test_atc_result_html_holds_shape_backend_config_and_latest(res):
    page = Page(res._repr_html_())
    facts = page.facts()
    assert facts["shape"] == "14 symbols × 240 bars"
    assert facts["backend"] == "cpu (arrays in NumPy)"
    assert facts["time range"] == "2024-01-01 00:00:00 … 2024-01-10 23:00:00"
    assert "la=0.02" in facts["config"] and "lengths=28×6" in facts["config"]
    latest = res.latest()
    rows = page.body(1)
    assert list(rows) == list(latest.index[:display.ROWS])  # cut to the first ten symbols
    for sym, cells in rows.items():
        want = latest.loc[sym]
        assert cells[0] == str(want["time"])
        assert float(cells[1]) == pytest.approx(want["average_signal"], rel=1e-5)
        assert cells[2] == ("" if pd.isna(want["direction"]) else str(want["direction"]))
        assert [float(c) for c in cells[3:9]] == pytest.approx(
            [want[f] for f in FAMILIES], rel=1e-5)
    assert "latest() (first 10 of 14)" in "".join(page.text)


def test_atc_result_repr_is_one_line(res):
    text = repr(res)
    assert text == ("ATCResult(14 symbols × 240 bars, backend cpu, "
                    "2024-01-01 00:00:00 … 2024-01-10 23:00:00)")
    members = gpu_trend.compute_atc(np.full((2, 90), 5.0), backend="cpu", members=True)
    assert repr(members) == "ATCResult(2 symbols × 90 bars, backend cpu, members, 0 … 89)"
    assert Page(members._repr_html_()).facts()["shape"] == "2 symbols × 90 bars × 54 members"


def test_empty_result_displays():
    res = gpu_trend.compute_atc(np.empty((0, 0)), backend="cpu")
    page = Page(res._repr_html_())
    assert page.facts()["shape"] == "0 symbols × 0 bars"
    assert "time range" not in page.facts()
    assert len(page.tables) == 1  # no latest() table without symbols
    assert repr(res) == "ATCResult(0 symbols × 0 bars, backend cpu)"


def test_text_is_escaped():
    close = pd.DataFrame({"<b>A&B</b>": np.linspace(10, 20, 100)},
                         index=pd.RangeIndex(100, name="bar"))
    res = gpu_trend.compute_atc(close, backend="cpu")
    html = res._repr_html_()
    assert "<b>A" not in html
    assert list(Page(html).body(1)) == ["<b>A&B</b>"]


def test_scan_result_html_holds_hits_and_skip_counts(uni):
    short = uni.close.copy()
    short.iloc[:-40, :3] = np.nan  # three symbols listed 40 bars ago: too short
    res = scan(gpu_trend.Universe(close=short, volume=uni.volume), backend="cpu",
               min_price=1.0, progress=False)
    page = Page(res._repr_html_())
    facts = page.facts()
    assert facts["universe"] == "14 symbols × 240 timestamps"
    assert facts["backend"] == "cpu"
    assert facts["scanned"] == f"{len(res.all)} symbols, {len(res.skipped)} skipped"
    assert facts["hits"].startswith(f"{len(res.long)} long (≥ 0.1), {len(res.short)} short")
    hits = page.body(1)
    assert list(hits) == list(res.table.index[:display.ROWS])
    assert [int(cells[0]) for cells in hits.values()] == list(res.table["rank"][:len(hits)])
    skipped = page.body(2)
    assert {k: int(v[0]) for k, v in skipped.items()} == res.skip_counts()
    assert skipped["too short"][0] == "3"
    assert skipped["too short"][1].startswith("too short: 40 bars < min_bars 67")
    assert "min_price" in skipped  # the demo has symbols below 1.0
    assert "\n" not in repr(res)


def test_universe_html_holds_each_symbols_bars_and_rejections():
    rows = [("AAA", t, 10.0 + t) for t in range(30)] + [("BBB", t, 5.0) for t in range(10, 25)]
    rows += [("BAD", 3, -1.0)]
    uni = read_universe(pd.DataFrame(rows, columns=["symbol", "time", "close"]))
    page = Page(uni._repr_html_())
    facts = page.facts()
    assert facts["shape"] == "2 symbols × 30 timestamps"
    assert facts["fields"] == "close" and facts["rejected"] == "1"
    symbols = page.body(1)
    assert symbols["AAA"] == ["30", "0", "29", "39"]
    assert symbols["BBB"] == ["15", "10", "24", "5"]
    assert page.body(2)["BAD"][0] == uni.rejected["BAD"]
    assert "\n" not in repr(uni)


def test_progress_is_drawn_in_a_notebook_or_as_asked(monkeypatch):
    # Under pytest stderr is captured: not a terminal, no IPython kernel.
    assert display.show_progress(None) is False
    assert display.show_progress(True) is True
    kernel = types.SimpleNamespace(config={"IPKernelApp": {}})
    monkeypatch.setitem(sys.modules, "IPython",
                        types.SimpleNamespace(get_ipython=lambda: kernel))
    assert display.in_notebook()
    assert display.show_progress(None) is True
    assert display.show_progress(False) is False
    # A terminal IPython session is not a notebook: the terminal test decides there.
    kernel.config = {"TerminalIPythonApp": {}}
    assert not display.in_notebook()
    assert display.show_progress(None) is False


def test_scan_draws_its_bar_only_when_asked_outside_a_notebook(uni, capsys):
    small = uni.select(uni.symbols[:4])
    scan(small, backend="cpu", progress=None)
    assert "ATC scan" not in capsys.readouterr().err
    scan(small, backend="cpu", progress=True)
    assert "ATC scan:" in capsys.readouterr().err


def test_iter_atc_draws_its_bar_only_when_asked_outside_a_notebook(capsys):
    close = 50 + np.cumsum(np.random.default_rng(3).normal(0, 0.5, (6, 120)), axis=1)
    quiet = [r.average_signal for r in gpu_trend.iter_atc(close, chunk_symbols=2,
                                                          backend="cpu")]
    assert "ATC" not in capsys.readouterr().err
    shown = [r.average_signal for r in gpu_trend.iter_atc(close, chunk_symbols=2,
                                                          backend="cpu", progress=True)]
    err = capsys.readouterr().err
    assert "ATC:" in err and "/6 " in err
    for a, b in zip(quiet, shown):
        np.testing.assert_array_equal(a, b)
