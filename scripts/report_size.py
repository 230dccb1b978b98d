"""Measure the HTML report of a long run: file size, ``write_report`` time
and, with ``--browser``, the time headless Chromium takes to open it.

    python scripts/report_size.py                      # 1,000,000 one-minute bars
    python scripts/report_size.py --bars 100000 --browser
    python scripts/report_size.py --journal runs/x.journal --browser

The run is the canonical EMA(12/26) cross of ``scripts/bench_backtest.py``
on the same synthetic bars; its journal is kept under ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


def make_journal(n: int, journal: Path) -> None:
    import numpy as np
    from bench_backtest import synthetic_minutes

    from tidemark.adapters.backtest import build_config, run_async
    from tidemark.core.series import InstrumentSeries, MarketSeries

    frame = synthetic_minutes(n)
    minute = 60_000_000_000
    timeline = frame.index.as_unit("ns").asi8 + minute
    series = InstrumentSeries(
        "SYN",
        minute,
        *(frame[c].to_numpy(copy=True) for c in ("Open", "High", "Low", "Close", "Volume")),
        np.ones(n, dtype=bool),
    )
    market = MarketSeries(timeline, {"SYN": series})
    config = build_config(None, strategy="ema_cross", initial_cash=1_000_000, commission_bps=4, symbols=["SYN"])
    asyncio.run(run_async(config, market=market, fingerprints={"SYN": "synthetic"}, journal=journal, overwrite=True))


def open_in_chromium(path: Path) -> tuple[float, dict[str, float]]:
    from playwright.sync_api import sync_playwright

    args = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            tempfile.mkdtemp(), executable_path="/usr/bin/chromium", args=args, headless=True
        )
        page = context.new_page()
        start = time.perf_counter()
        page.goto(path.resolve().as_uri())
        page.wait_for_function("window.tidemarkReport && window.tidemarkReport.ready", timeout=120_000)
        seconds = time.perf_counter() - start
        timings = page.evaluate("tidemarkReport.timings")
        context.close()
    return seconds, timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--journal", type=Path, help="report this journal instead of making a run")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "tidemark-report-size")
    parser.add_argument("--max-points", type=int, default=None)
    parser.add_argument("--browser", action="store_true", help="also time opening it in /usr/bin/chromium")
    args = parser.parse_args()

    from tidemark.adapters.backtest import Result
    from tidemark.adapters.report import DEFAULT_MAX_POINTS, write_report

    args.out.mkdir(parents=True, exist_ok=True)
    journal = args.journal
    if journal is None:
        journal = args.out / f"ema-{args.bars}.journal"
        if not journal.exists():
            start = time.perf_counter()
            make_journal(args.bars, journal)
            print(f"run: {args.bars:,} bars in {time.perf_counter() - start:.1f} s -> {journal}")
    start = time.perf_counter()
    result = Result.from_journal(journal)
    print(f"Result.from_journal: {time.perf_counter() - start:.2f} s")
    path = args.out / (journal.stem + ".html")
    max_points = args.max_points or DEFAULT_MAX_POINTS
    start = time.perf_counter()
    write_report(result, path, max_points=max_points)
    took = time.perf_counter() - start
    size = path.stat().st_size
    bars = sum(len(b) for b in result.bars.values())
    print(
        f"write_report: {took:.2f} s, {size / 1e6:.2f} MB ({size:,} bytes) for {bars:,} bars, "
        f"{len(result.trades):,} trades, {len(result.fills):,} fills, max_points {max_points:,} -> {path}"
    )
    if args.browser:
        seconds, timings = open_in_chromium(path)
        inside = ", ".join(f"{k} {v:.0f}" for k, v in timings.items())
        print(f"chromium: ready {seconds:.2f} s after goto (in the page: {inside})")


if __name__ == "__main__":
    main()
