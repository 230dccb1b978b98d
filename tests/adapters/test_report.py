"""The HTML report: downsampling that keeps every extreme (property tests),
the data embedded in the page, Result.stats, and the page itself driven in
headless Chromium (skipped, with the reason, where Chromium or Playwright is
absent; CI installs both)."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tidemark.adapters.backtest import Result, run_backtest
from tidemark.adapters.report import ReportView, render, run_warnings, write_report
from tidemark.adapters.report.model import decode_f8
from tidemark.adapters.report.sampling import aggregate_ohlc, bucket_size, m4_indexes

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tidemark" / "adapters" / "sample_data" / "SYNTH_BTC-1h.csv"
SAMPLE_ETH = ROOT / "tidemark" / "adapters" / "sample_data" / "SYNTH_ETH-1h.csv"

finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)


# -- downsampling ---------------------------------------------------------------------------------


@given(
    values=st.lists(arrays(np.float64, st.integers(1, 600), elements=finite), min_size=1, max_size=3),
    buckets=st.integers(1, 80),
)
def test_m4_keeps_first_last_and_every_buckets_min_and_max(values: list[np.ndarray], buckets: int) -> None:
    n = min(len(v) for v in values)
    columns = [v[:n] for v in values]
    kept = m4_indexes(columns, buckets)
    assert kept[0] == 0 and kept[-1] == n - 1
    assert (np.diff(kept) > 0).all(), "sorted and unique"
    size = bucket_size(n, buckets)
    assert len(kept) <= n and len(kept) <= 2 * (1 + len(columns)) * -(-n // size)
    if n <= buckets:
        assert len(kept) == n
    for column in columns:
        assert column[kept].min() == column.min() and column[kept].max() == column.max()
        for start in range(0, n, size):  # each bucket's extremes, i.e. each pixel column's
            inside = kept[(kept >= start) & (kept < start + size)]
            assert column[inside].min() == column[start : start + size].min()
            assert column[inside].max() == column[start : start + size].max()


@given(values=arrays(np.float64, st.integers(2, 300), elements=finite | st.just(np.nan)), buckets=st.integers(1, 40))
def test_m4_ignores_nans_but_keeps_the_extremes(values: np.ndarray, buckets: int) -> None:
    kept = m4_indexes([values], buckets)
    if np.isfinite(values).any():
        assert np.nanmin(values[kept]) == np.nanmin(values) and np.nanmax(values[kept]) == np.nanmax(values)


@given(
    closes=arrays(np.float64, st.integers(1, 500), elements=st.floats(1.0, 1e6)),
    wiggle=st.floats(0.0, 0.2),
    buckets=st.integers(1, 60),
)
def test_merged_candles_keep_every_high_and_low(closes: np.ndarray, wiggle: float, buckets: int) -> None:
    n = len(closes)
    opens = np.roll(closes, 1)
    highs = np.maximum(opens, closes) * (1 + wiggle * np.linspace(0, 1, n))
    lows = np.minimum(opens, closes) * (1 - wiggle * np.linspace(1, 0, n))
    times = np.arange(n, dtype=np.float64) * 60
    volume = np.ones(n)
    candles, size = aggregate_ohlc(times, opens, highs, lows, closes, volume, buckets)
    assert size == bucket_size(n, buckets) and len(candles["time"]) <= buckets
    assert candles["high"].max() == highs.max() and candles["low"].min() == lows.min()
    assert candles["count"].sum() == n and candles["volume"].sum() == pytest.approx(n)
    starts = np.arange(0, n, size)
    assert (candles["open"] == opens[starts]).all() and (candles["time"] == times[starts]).all()
    assert (candles["close"] == closes[np.minimum(starts + size, n) - 1]).all()
    for k, start in enumerate(starts):
        assert candles["high"][k] == highs[start : start + size].max()
        assert candles["low"][k] == lows[start : start + size].min()


# -- runs ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Result:
    """A fast EMA cross on the sample data: more than 500 trades, no commission."""
    folder = tmp_path_factory.mktemp("report")
    return run_backtest(
        "ema_cross",
        data=SAMPLE,
        params={"fast": 2, "slow": 5, "long_only": False},
        journal=folder / "fast.journal",
        initial_cash=100_000,
        account="margin",
        borrow_rate=0.0,  # the reversals short spot
    )


@pytest.fixture(scope="module")
def two_symbols(tmp_path_factory: pytest.TempPathFactory) -> Result:
    folder = tmp_path_factory.mktemp("report2")
    return run_backtest(
        "ema_cross",
        data=[SAMPLE, SAMPLE_ETH],
        journal=folder / "two.journal",
        symbols=["BTC", "ETH"],
        commission_bps=5,
        initial_cash=100_000,
    )


def page_data(page: str) -> dict[str, Any]:
    match = re.search(r"<script id='tm-data' type='application/json'>(.*?)</script>", page, re.S)
    assert match is not None
    return json.loads(match.group(1))


def column(table: dict[str, Any], name: str) -> Any:
    values = next(c["values"] for c in table["columns"] if c["name"] == name)
    if isinstance(values, dict) and "f8" in values:
        return decode_f8(values)
    if isinstance(values, dict):  # categories
        codes = np.frombuffer(__import__("base64").b64decode(values["codes"]), dtype="<" + values["dtype"])
        return [values["cats"][c] for c in codes]
    return values


def test_every_trade_and_fill_is_in_the_page(run: Result) -> None:
    assert len(run.trades) > 500  # the old report cut its table at 500
    data = page_data(render(run))
    trades = data["tables"]["trades"]
    assert trades["rows"] == len(run.trades)
    np.testing.assert_array_equal(column(trades, "pnl"), run.trades["pnl"].to_numpy())
    assert column(trades, "side") == run.trades["side"].tolist()
    assert data["tables"]["fills"]["rows"] == len(run.fills)
    rows = decode_f8(data["prices"][0]["fills"])
    assert sorted(rows.astype(int).tolist()) == list(range(len(run.fills)))
    assert len(decode_f8(data["pnl"]["rows"])) == int((~run.trades["open"]).sum())


@pytest.mark.parametrize("max_points", [40_000, 300, 7])
def test_drawdown_pane_lowest_point_is_the_metric(run: Result, max_points: int) -> None:
    data = page_data(render(run, max_points=max_points))
    drawdown = decode_f8(data["equity"]["drawdown"])
    assert drawdown.min() == run.metrics["max_drawdown"] == data["max_drawdown"]
    assert decode_f8(data["equity"]["equity"]).min() == run.equity["equity"].min()
    series = len([k for k in data["equity"] if k not in ("total", "points", "time")])
    per_bucket = 2 + 2 * series  # first, last, and each series' min and max
    assert (
        data["equity"]["points"]
        == len(drawdown)
        <= (len(run.equity) if max_points > len(run.equity) else per_bucket * max_points)
    )
    candles = data["prices"][0]["candles"]
    bars = run.bars["SYNTH_BTC"]
    assert decode_f8(candles["high"]).max() == bars["high"].max()
    assert decode_f8(candles["low"]).min() == bars["low"].min()


def test_page_is_self_contained(run: Result) -> None:
    page = render(run)
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:)?//""", page), "no external script, style or link"
    assert "<script src" not in page and "@import" not in page
    assert page.count("<script") == 3  # the data, uPlot, the report's own script
    assert "uPlot" in page and "</script>" not in page_data_raw(page)


def page_data_raw(page: str) -> str:
    start = page.index("<script id='tm-data'")
    return page[page.index(">", start) + 1 : page.index("</script>", start)]


def test_config_and_warnings_at_the_top(run: Result, two_symbols: Result) -> None:
    page = render(run)
    top = page[: page.index("id='charts'")]
    for label in ("Data", "Period", "Strategy ema_cross", "fast=2", "Initial cash", "Leverage", "Fees", "Slippage"):
        assert label in top
    assert "Fill model" in top and "next_open" in top and "SYNTH_BTC-1h.csv" in top
    assert "no commission configured" in top
    for group in ("Returns", "Risk", "Trades", "Costs"):
        assert f"<h3>{group}</h3>" in top
    assert "Max. Drawdown [%]" in top and "Equity Final [USD]" in top
    texts = [w.text for w in run_warnings(two_symbols)]
    assert not any("commission" in t for t in texts)


def test_warnings_read_a_result_field_when_there_is_one(run: Result) -> None:
    class WithWarnings:
        def __init__(self, result: Result) -> None:
            self.__dict__.update(result.__dict__)
            self.warnings = ["data repaired: 3 rows"]

    assert next(w.text for w in run_warnings(WithWarnings(run))) == "data repaired: 3 rows"


def test_two_symbols_get_a_price_pane_each(two_symbols: Result) -> None:
    data = page_data(render(two_symbols))
    assert [p["symbol"] for p in data["prices"]] == ["BTC", "ETH"]
    fills = sum(len(decode_f8(p["fills"])) for p in data["prices"])
    assert fills == len(two_symbols.fills)
    assert data["position"]["symbols"] == sorted(set(two_symbols.fills["instrument"]))


def test_stats_in_backtesting_py_order(run: Result) -> None:
    stats = run.stats
    assert isinstance(stats, pd.Series)
    assert list(stats.index[:7]) == [
        "Start",
        "End",
        "Duration",
        "Exposure Time [%]",
        "Equity Final [USD]",
        "Equity Peak [USD]",
        "Fees [USD]",
    ]
    keys = list(stats.index)
    order = ["Return [%]", "Buy & Hold Return [%]", "CAGR [%]", "Max. Drawdown [%]", "# Trades", "Win Rate [%]", "SQN"]
    assert [keys.index(k) for k in order] == sorted(keys.index(k) for k in order)
    assert stats["Equity Final [USD]"] == run.metrics["final_equity"]
    assert stats["Max. Drawdown [%]"] == run.metrics["max_drawdown"] * 100
    assert stats["# Trades"] == run.metrics["trades"]
    assert stats["Start"] == run.equity.index[0] and stats["Duration"] == run.equity.index[-1] - run.equity.index[0]
    assert stats["_trades"] is run.trades


def test_repr_html_and_plot(run: Result, tmp_path: Path) -> None:
    inline = run._repr_html_()
    assert inline.startswith("<iframe srcdoc=") and "tidemarkReport" in inline
    view = run.plot(tmp_path / "r.html", open_browser=False)
    assert isinstance(view, ReportView) and view.path == tmp_path / "r.html" and view.path.stat().st_size > 10_000


IDLE = """
def schema():
    return {"id": "idle", "inputs": {}}

def on_bar(ctx, i):
    pass
"""


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Result:
    folder = tmp_path_factory.mktemp("idle")
    strategy = folder / "idle.py"
    strategy.write_text(IDLE)
    return run_backtest(str(strategy), data=SAMPLE, journal=folder / "idle.journal", initial_cash=1_000)


# -- in a browser ------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser(run: Result, idle: Result, two_symbols: Result) -> Iterator[Any]:
    """Chromium, started after the runs it shows: Playwright's sync API holds
    an event loop in this thread while it lives, where asyncio.run (a
    backtest) fails."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail(".ci/run installs chromium, yet it is not on PATH")
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium); CI installs it")
    if os.environ.get("CI"):
        import playwright.sync_api as sync_api
    else:
        sync_api = pytest.importorskip("playwright.sync_api", reason="playwright missing: pip install -e '.[test]'")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            tempfile.mkdtemp(prefix="tidemark-chromium-"),
            executable_path=CHROMIUM,
            args=ARGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
        )
        yield context
        context.close()


class Opened:
    def __init__(self, page: Any, console: list[tuple[str, str]], requests: list[str]) -> None:
        self.page, self.console, self.requests = page, console, requests

    def js(self, expression: str) -> Any:
        return self.page.evaluate(expression)


def open_report(browser: Any, path: Path) -> Opened:
    page = browser.new_page()
    console: list[tuple[str, str]] = []
    requests: list[str] = []
    page.on("console", lambda m: console.append((m.type, m.text)))
    page.on("pageerror", lambda e: console.append(("pageerror", str(e))))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.resolve().as_uri())
    page.wait_for_function("window.tidemarkReport && window.tidemarkReport.ready", timeout=60_000)
    return Opened(page, console, requests)


@pytest.fixture(scope="module")
def opened(browser: Any, run: Result, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Opened]:
    path = write_report(run, tmp_path_factory.mktemp("page") / "report.html")
    page = open_report(browser, path)
    yield page
    page.page.close()


def test_browser_page_loads_with_no_console_error_and_no_network(opened: Opened, run: Result) -> None:
    assert [m for m in opened.console if m[0] in ("error", "pageerror", "warning")] == []
    assert opened.requests == [opened.page.url], "the file itself and nothing else"
    names = opened.js("tidemarkReport.charts.map(c => c.name)")
    assert names == ["price:SYNTH_BTC", "equity", "drawdown", "margin", "position", "pnl"]  # a margin account


def test_browser_draws_a_marker_for_every_fill(opened: Opened, run: Result) -> None:
    assert opened.js("tidemarkReport.markerCount()") == len(run.fills)


def test_browser_lowest_drawdown_shown_is_the_metric(opened: Opened, run: Result) -> None:
    shown = opened.js("tidemarkReport.lowestDrawdownShown()")
    assert shown["value"] == run.metrics["max_drawdown"]
    assert shown["axisMin"] <= run.metrics["max_drawdown"], "the point is inside the drawn range"


def test_browser_lowest_drawdown_shown_when_downsampled(browser: Any, run: Result, tmp_path: Path) -> None:
    page = open_report(browser, write_report(run, tmp_path / "small.html", max_points=50))
    try:
        assert page.js("tidemarkReport.lowestDrawdownShown().value") == run.metrics["max_drawdown"]
        assert page.js("tidemarkReport.markerCount()") == len(run.fills)
        assert not [m for m in page.console if m[0] in ("error", "pageerror")]
    finally:
        page.page.close()


def test_browser_zoom_changes_the_visible_range_of_every_pane(opened: Opened) -> None:
    page = opened.page
    full = opened.js("tidemarkReport.visible()")
    over = page.locator("[data-pane='drawdown'] .u-over")
    over.scroll_into_view_if_needed()
    box = over.bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=5)
    page.mouse.up()
    ranges = opened.js("tidemarkReport.charts.map(c => [c.u.scales.x.min, c.u.scales.x.max])")
    zoomed = ranges[0]
    assert full[0] < zoomed[0] < zoomed[1] < full[1]
    assert (zoomed[1] - zoomed[0]) < 0.3 * (full[1] - full[0])
    assert all(r == zoomed for r in ranges), "linked x axes"
    visible_markers = opened.js("tidemarkReport.markerCount()")
    assert 0 < visible_markers < opened.js("tidemarkReport.tables.fills.n")
    page.mouse.wheel(0, 400)  # zoom out around the cursor
    page.wait_for_timeout(50)
    wider = opened.js("tidemarkReport.visible()")
    assert wider[1] - wider[0] > zoomed[1] - zoomed[0]
    page.locator("#tm-reset").click()
    assert opened.js("tidemarkReport.visible()") == full


def test_browser_trade_table_sorts_and_filters(opened: Opened, run: Result) -> None:
    page = opened.page
    assert opened.js("tidemarkReport.tables.trades.rows.length") == len(run.trades)
    page.locator("#tm-table th[data-col='pnl']").click()
    first = page.locator("#tm-table tbody tr").first.locator("td").nth(8).inner_text()
    assert float(first.replace(",", "")) == pytest.approx(run.trades["pnl"].min(), abs=0.01)
    page.locator("#tm-table input[data-col='pnl']").fill(">0")
    page.locator("#tm-table input[data-col='pnl']").press("Enter")
    wins = int((run.trades["pnl"] > 0).sum())
    assert opened.js("tidemarkReport.tables.trades.rows.length") == wins
    assert f"of {wins:,}" in page.locator("#tm-table .tinfo").inner_text()


def test_browser_hover_shows_values_and_a_fills_details(opened: Opened, run: Result) -> None:
    page = opened.page
    page.locator("#tm-reset").click()
    opened.js("tidemarkReport.setRange(tidemarkReport.full[0], tidemarkReport.full[0] + 7 * 86400)")
    over = page.locator("[data-pane^='price:'] .u-over")
    over.scroll_into_view_if_needed()
    box = over.bounding_box()
    assert box is not None
    x, y = opened.js(
        """() => { const c = tidemarkReport.charts[0], u = c.u, F = c.extra.P.fills;
                   return [u.valToPos(F.time[0], 'x'), u.valToPos(F.price[0], 'y')]; }"""
    )
    page.mouse.move(box["x"] + x, box["y"] + y)
    tip = page.locator("#tm-tip")
    assert tip.is_visible()
    first = run.fills.sort_values(["exec_time", "seq"]).iloc[0]
    assert tip.inner_text().startswith("BUY" if first["side"] == "buy" else "SELL")
    assert str(first["order_id"]) in tip.inner_text()
    legend = page.locator("[data-pane='equity'] .u-series").nth(1).inner_text()
    assert "USD" in legend, "the equity pane's legend follows the cursor (linked)"
    page.locator("#tm-reset").click()


def test_inline_notebook_view_runs_in_its_iframe(browser: Any, run: Result, tmp_path: Path) -> None:
    host = tmp_path / "notebook.html"
    host.write_text(f"<!doctype html><html><body><h1>cell output</h1>{run._repr_html_()}</body></html>")
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(host.resolve().as_uri())
        frame = page.frame_locator("iframe")
        frame.locator("[data-pane='drawdown'] canvas").first.wait_for(timeout=60_000)
        inner = next(f for f in page.frames if f != page.main_frame)
        assert inner.evaluate("tidemarkReport.markerCount()") == len(run.fills)
        assert errors == []
    finally:
        page.close()


def test_a_run_with_no_trade_renders(idle: Result, browser: Any, tmp_path: Path) -> None:
    assert len(idle.trades) == 0 and len(idle.fills) == 0
    stats = idle.stats
    assert stats["# Trades"] == 0 and stats["Return [%]"] == 0.0
    page = open_report(browser, write_report(idle, tmp_path / "idle.html"))
    try:
        assert [m for m in page.console if m[0] in ("error", "pageerror")] == []
        assert page.js("tidemarkReport.markerCount()") == 0
        assert page.js("tidemarkReport.lowestDrawdownShown().value") == 0
    finally:
        page.page.close()
