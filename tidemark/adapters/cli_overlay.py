"""``tidemark overlay-search``: seed 001's short-overlay search on files of
bars, blended into a finished run (:mod:`tidemark.adapters.research.overlay_search`).

The first symbol is the BTC reference (``--btc`` names another), the others
may be shorted; the grid is the seed's for each bar of ``--bars`` (1h, 4h;
a coarser bar is built causally from the files' bars). The base is the
equity of the run in ``--base`` (verified as it is read unless ``--trust``).
Bad input (files, symbols, bars, a base that does not overlap the bars)
exits 2 with one line on stderr.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from tidemark.adapters.cli import EXIT_OK, UsageError, _existing, _trust_flag

SHOWN = (
    "name",
    "kind",
    "allocation",
    "h1y_return",
    "h6m_return",
    "h3m_return",
    "max_drawdown",
    "calmar",
    "server_readonly_candidate",
)
SEED_BARS = ("1h", "4h")


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``overlay-search`` to the subcommands ``sub``."""
    op = sub.add_parser(
        "overlay-search",
        parents=[common],
        help="seed 001's search: BTC risk-off short overlays blended into a run at 3-10 %%",
    )
    op.add_argument("--data", action="append", required=True, help="OHLCV file; repeat (BTC first, then the shorts)")
    op.add_argument("--symbol", action="append", help="symbol of the matching --data (default: from the file name)")
    op.add_argument("--base", required=True, metavar="JOURNAL", help="the run the overlay is blended into")
    op.add_argument("--base-name", help="its name in the tables (default: the journal's file name)")
    op.add_argument("--btc", metavar="SYMBOL", help="the BTC reference (default: the first symbol)")
    op.add_argument("--bars", default="1h,4h", help="bar sizes of the grid, of 1h and 4h (default 1h,4h)")
    op.add_argument("--top", type=_at_least_one, default=20, help="short legs blended (default 20)")
    op.add_argument(
        "--allocations", default="0.03,0.05,0.07,0.10", help="fractions in the overlay (default 0.03,0.05,0.07,0.10)"
    )
    op.add_argument("--workers", type=_at_least_one, default=1, help="processes for the grid (default 1)")
    op.add_argument(
        "--out", default="overlay-search", metavar="DIR", help="folder of the files (default overlay-search)"
    )
    op.add_argument("--prefix", default="overlay-mix", help="file name prefix (default overlay-mix)")
    _trust_flag(op, "the base journal")
    op.set_defaults(func=cmd_overlay_search)


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: must be at least 1")
    return value


def _bars(text: str) -> list[str]:
    bars = [b.strip() for b in text.split(",") if b.strip()]
    wrong = [b for b in bars if b not in SEED_BARS]
    if not bars or wrong:
        raise UsageError(f"--bars {text!r}: the seed's grid has bars 1h and 4h (e.g. --bars 1h,4h)")
    return list(dict.fromkeys(bars))


def _allocations(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(0.0 < v <= 1.0 for v in values):
        raise UsageError(f"--allocations {text!r}: expected fractions in (0, 1], e.g. 0.03,0.05")
    return values


def load_closes(paths: list[str], symbols: list[str] | None, bars: list[str]) -> dict[str, pd.DataFrame]:
    """``{bar: closes}`` of the files (a column per symbol, stamped at each bar's close)."""
    from tidemark.adapters.data import load_bars
    from tidemark.adapters.research.overlay_search import closes_by_bar

    if symbols is not None and len(symbols) != len(paths):
        raise UsageError(f"{len(symbols)} --symbol for {len(paths)} --data: give one per file, or none")
    columns: dict[str, pd.Series] = {}
    intervals = set()
    for k, path in enumerate(paths):
        loaded = load_bars(path, symbol=symbols[k] if symbols else None)
        if loaded.symbol in columns:
            raise UsageError(f"symbol {loaded.symbol} given twice (name the files with --symbol)")
        times = pd.to_datetime(loaded.times + loaded.interval, utc=True)
        columns[loaded.symbol] = pd.Series(loaded.close, index=times)
        intervals.add(loaded.interval)
    if len(intervals) > 1:
        raise UsageError("the --data files have different bar lengths; give files of one bar (e.g. all 1h)")
    step = pd.Timedelta(intervals.pop())
    same = [bar for bar in bars if pd.Timedelta(bar) == step]
    label = same[0] if same else f"{int(step.total_seconds() // 60)}min"
    too_fine = [bar for bar in bars if pd.Timedelta(bar) < step or pd.Timedelta(bar) % step]
    if too_fine:
        raise UsageError(f"--bars {','.join(too_fine)}: cannot be built from the files' {step} bars")
    by_bar = closes_by_bar({label: pd.DataFrame(columns)}, bars)
    return {bar: by_bar[bar] for bar in bars}


def cmd_overlay_search(args: argparse.Namespace) -> int:
    from tidemark.adapters.backtest import Result
    from tidemark.adapters.research.overlay_search import OverlaySearchError, default_params, overlay_search

    bars = _bars(args.bars)
    allocations = _allocations(args.allocations)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    journal = _existing(args.base)
    closes = load_closes(args.data, args.symbol, bars)
    symbols = list(next(iter(closes.values())).columns)
    btc = args.btc or symbols[0]
    if btc not in symbols:
        raise UsageError(f"--btc {btc}: not among the symbols {', '.join(symbols)}")
    shorts = [s for s in symbols if s != btc]
    if not shorts:
        raise UsageError("give BTC and at least one symbol to short (two or more --data)")
    result = Result.from_journal(journal, trust=args.trust)
    name = args.base_name or journal.stem
    stats = {key: result.metrics.get(key) for key in ("trades", "win_rate", "profit_factor")}
    try:
        params = default_params(closes, btc=btc, short_symbols=shorts)
        started = time.perf_counter()
        search = overlay_search(
            closes,
            result.equity["equity"],
            name,
            stats,
            params=params,
            top=args.top,
            allocations=allocations,
            workers=args.workers,
        )
        seconds = time.perf_counter() - started
    except OverlaySearchError as exc:
        raise UsageError(str(exc)) from exc
    command = shlex.join(["tidemark", *sys.argv[1:]])
    paths = search.write(out, args.prefix, command=command)
    print(
        f"overlay-search: {len(params)} parameter sets ({', '.join(bars)}; BTC {btc}, short {', '.join(shorts)}) "
        f"blended into {name} in {seconds:.1f} s ({args.workers} process{'es' if args.workers > 1 else ''})"
    )
    qualified = int((search.combo["server_readonly_candidate"] == "yes").sum())
    print(f"blends: {len(search.combo)}, qualified {qualified}; selected:")
    with pd.option_context("display.width", 200, "display.max_colwidth", 90):
        print(search.selected[list(SHOWN)].to_string(index=False))
    print(f"files: {len(paths)} in {out}")
    for path in paths:
        print(f"  {path}")
    return EXIT_OK
