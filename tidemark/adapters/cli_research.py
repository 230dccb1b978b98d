"""``tidemark analyze`` and ``tidemark montecarlo``: the research tables of
finished runs, read from their journals (verified unless ``--trust``).

Exit codes as the rest of the command line: 2 for bad input (an unknown
journal, malformed ``--weights``, weights that do not sum to 1), 1 for a
damaged journal, with one line on stderr.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from tidemark.adapters.cli import EXIT_OK, UsageError, _existing, _trust_flag


def add_research_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``analyze`` and ``montecarlo`` to the subcommands ``sub``."""
    an = sub.add_parser(
        "analyze",
        parents=[common],
        help="horizon, monthly, worst-window and turnover tables of runs, and a blend of several",
    )
    an.add_argument("journals", nargs="+", metavar="JOURNAL")
    an.add_argument(
        "--weights",
        metavar="NAME=W,...",
        help="blend the runs at these allocations (names: the journals' file names without .journal; sum 1)",
    )
    an.add_argument("--csv", metavar="DIR", help="also write every table as CSV files in DIR")
    an.add_argument("--html", metavar="FILE", help="also write the equity curves and tables as an HTML page")
    _trust_flag(an, "each journal")
    an.set_defaults(func=cmd_analyze)

    mc = sub.add_parser(
        "montecarlo", parents=[common], help="bootstrap a run's trades and daily returns: percentiles of the outcomes"
    )
    mc.add_argument("journal")
    mc.add_argument("--n", type=_positive("--n"), default=1000, help="simulations per bootstrap (default 1000)")
    mc.add_argument("--seed", type=int, default=0, help="random seed (default 0; the same seed, the same output)")
    mc.add_argument("--block", type=_positive("--block"), default=20, help="block length in days (default 20)")
    mc.add_argument("--csv", metavar="FILE", help="also write every simulation (both bootstraps) to this CSV file")
    mc.add_argument("--html", metavar="FILE", help="also write histograms and percentiles as an HTML page")
    _trust_flag(mc, "the journal")
    mc.set_defaults(func=cmd_montecarlo)


def _positive(flag: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} {text!r}: expected a whole number") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{flag} {value}: must be at least 1")
        return value

    return parse


# -- formatting ------------------------------------------------------------------------------------


def _pct(x: Any) -> str:
    return "n/a" if not isinstance(x, (int, float)) or not math.isfinite(x) else f"{x * 100:.2f}%"


def _fixed(digits: int) -> Callable[[Any], str]:
    def fmt(x: Any) -> str:
        if isinstance(x, (int, float)) and math.isinf(x):
            return "never" if x > 0 else "ruined"
        return "n/a" if not isinstance(x, (int, float)) or math.isnan(x) else f"{x:,.{digits}f}"

    return fmt


def _table(frame: pd.DataFrame, formats: dict[str, Callable[[Any], str]]) -> str:
    shown = frame.copy().astype(object)
    for column, fmt in formats.items():
        if column in shown:
            shown[column] = [fmt(x) for x in frame[column]]
    return shown.to_string()


HORIZON_FORMATS = {
    "days": _fixed(0),
    "return": _pct,
    "cagr": _pct,
    "max_drawdown": _pct,
    "sharpe": _fixed(2),
    "volatility": _pct,
}


# -- analyze ---------------------------------------------------------------------------------------


def _names(paths: list[Path]) -> list[str]:
    """Each journal's file name without ``.journal``; a repeated name gets
    ``-2``, ``-3`` ... in the order given."""
    names: list[str] = []
    for path in paths:
        name, k = path.stem, 2
        while name in names:
            name, k = f"{path.stem}-{k}", k + 1
        names.append(name)
    return names


def parse_weights(text: str) -> dict[str, float]:
    """``"a=0.5,b=0.5"`` -> ``{"a": 0.5, "b": 0.5}`` (UsageError if malformed)."""
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        try:
            weight = float(value)
        except ValueError:
            weight = math.nan
        if not sep or not name or not math.isfinite(weight):
            raise UsageError(f"--weights {text!r}: expected NAME=WEIGHT,NAME=WEIGHT (e.g. a=0.5,b=0.5)")
        if name in weights:
            raise UsageError(f"--weights {text!r}: {name} is given twice")
        weights[name] = weight
    return weights


def _run_tables(result: Any) -> dict[str, pd.DataFrame]:
    from tidemark.adapters.research import analytics

    return {
        "horizons": analytics.horizon_metrics(result),
        "monthly": analytics.monthly_returns(result),
        "worst": analytics.worst_rolling(result),
        "turnover": analytics.turnover_per_year(result),
    }


def _print_run(name: str, result: Any, tables: dict[str, pd.DataFrame]) -> None:
    currency = result.currency
    print(f"== {name}: {result.journal} (run {result.run_id}, {currency})")
    print(result.check.describe() if result.check is not None else "")
    print("horizons (daily curve; CAGR, Sharpe and volatility over 365.25-day years):")
    print(_table(tables["horizons"], HORIZON_FORMATS))
    print("monthly returns:")
    print(_table(tables["monthly"], {c: _pct for c in tables["monthly"].columns}))
    print("worst rolling windows (months):")
    print(_table(tables["worst"], {"return": _pct}))
    print(f"turnover per year (traded notional over mean equity; money in {currency}):")
    print(_table(tables["turnover"], {"notional": _fixed(2), "mean_equity": _fixed(2), "turnover": _fixed(2)}))
    print()


def cmd_analyze(args: argparse.Namespace) -> int:
    from tidemark.adapters.backtest import Result
    from tidemark.adapters.research import analytics

    paths = [_existing(p) for p in args.journals]
    weights = parse_weights(args.weights) if args.weights else None
    if weights is not None and len(paths) < 2:
        raise UsageError("--weights blends several runs: give two or more journals")
    csv_dir = Path(args.csv) if args.csv else None
    if csv_dir is not None and csv_dir.exists() and not csv_dir.is_dir():
        raise UsageError(f"--csv {csv_dir}: exists and is not a directory")
    names = _names(paths)
    if weights is not None:
        try:
            analytics.check_weights(names, weights)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    results = {name: Result.from_journal(path, trust=args.trust) for name, path in zip(names, paths, strict=True)}
    written: dict[str, pd.DataFrame] = {}
    try:
        for name, result in results.items():
            tables = _run_tables(result)
            _print_run(name, result, tables)
            written.update({f"{name}.{kind}.csv": table for kind, table in tables.items()})
        if weights is not None:
            curve = analytics.blend(results, weights)
            horizons = analytics.horizon_metrics(curve)
            shown = ", ".join(f"{n}={w:g}" for n, w in weights.items())
            print(f"== blend {shown} (rebalanced daily, from 1.0 on {curve.index[0]:%Y-%m-%d}):")
            print(_table(horizons, HORIZON_FORMATS))
            written["blend.horizons.csv"] = horizons
            written["blend.equity.csv"] = curve.to_frame()
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.html:
        _analyze_page(Path(args.html), results, written, weights)
        print(f"html: {args.html}")
    if csv_dir is not None:
        csv_dir.mkdir(parents=True, exist_ok=True)
        for file, table in written.items():
            table.to_csv(csv_dir / file)
        print(f"csv: {len(written)} files in {csv_dir}")
    return EXIT_OK


# -- montecarlo ------------------------------------------------------------------------------------

MC_FORMATS = {"final_equity": _fixed(2), "max_drawdown": _pct, "time_to_recover": _fixed(0)}


def _print_simulations(frame: pd.DataFrame) -> None:
    from tidemark.adapters.research.montecarlo import percentiles

    print(_table(percentiles(frame), MC_FORMATS))
    n = len(frame)
    never = int((frame["time_to_recover"].isna() & ~frame["ruined"].astype(bool)).sum())
    print(f"ruined in {int(frame['ruined'].sum())} of {n}; never recovered from the max drawdown in {never} of {n}")


def cmd_montecarlo(args: argparse.Namespace) -> int:
    from tidemark.adapters.backtest import Result
    from tidemark.adapters.research.montecarlo import block_bootstrap_returns, bootstrap_trades

    result = Result.from_journal(_existing(args.journal), trust=args.trust)
    cash = f"{float(result.metrics['initial_cash']):,.2f} {result.currency}"
    print(f"{result.journal}: run {result.run_id}, {result.currency}")
    print(result.check.describe() if result.check is not None else "")
    frames = []
    try:
        trades = bootstrap_trades(result, n=args.n, seed=args.seed)
    except ValueError as exc:
        print(f"trade bootstrap: {exc}")
    else:
        k = trades.attrs["trades"]
        print(f"trade bootstrap: {args.n} simulations of {k} closed trades from {cash}, seed {args.seed}")
        print("(final equity in the account currency; time to recover in trades)")
        _print_simulations(trades)
        frames.append(trades.assign(method="trades"))
    returns = block_bootstrap_returns(result, n=args.n, block=args.block, seed=args.seed)
    days, block = returns.attrs["days"], returns.attrs["block"]
    print(f"return bootstrap: {args.n} simulations of {days} daily returns in circular blocks of {block} days")
    print(f"from {cash}, seed {args.seed} (time to recover in days)")
    if "ruined_at" in returns.attrs:
        print(f"the run's equity reached zero on {returns.attrs['ruined_at']}: its daily returns are undefined")
    else:
        _print_simulations(returns)
    frames.append(returns.assign(method="returns"))
    if args.html:
        _montecarlo_page(Path(args.html), result, frames, args)
        print(f"html: {args.html}")
    if args.csv:
        table = pd.concat(frames).reset_index()[["method", "simulation", "final_equity", "max_drawdown",
                                                  "time_to_recover", "ruined"]]  # fmt: skip
        table.attrs = {}
        table.to_csv(args.csv, index=False)
        print(f"csv: {len(table)} simulations in {args.csv}")
    return EXIT_OK


def _montecarlo_page(path: Path, result: Any, frames: list[pd.DataFrame], args: argparse.Namespace) -> None:
    from tidemark.adapters.research.montecarlo import percentiles
    from tidemark.adapters.research.plots import histogram_svg, page, table_html

    body = [
        f"<p>{result.journal}: run {result.run_id}; {args.n} simulations per bootstrap, seed {args.seed}; "
        f"money in {result.currency}.</p>"
    ]
    for frame in frames:
        method = str(frame["method"].iloc[0]) if len(frame) else ""
        what = "closed trades resampled" if method == "trades" else f"daily returns in blocks of {args.block} days"
        body.append(f"<h2>{'Trade' if method == 'trades' else 'Return'} bootstrap ({what})</h2>")
        if frame["final_equity"].isna().all():
            body.append('<p class="note">undefined: the run\'s equity reached zero</p>')
            continue
        table = percentiles(frame.drop(columns=["method"]))
        body.append(table_html(table, MC_FORMATS))
        for column, unit in (("final_equity", f" {result.currency}"), ("max_drawdown", "")):
            marks = {label: float(table.at[label, column]) for label in ("p5", "p50", "p95") if label in table.index}  # type: ignore[arg-type]
            body.append(
                histogram_svg(frame[column].to_numpy(dtype=float), column.replace("_", " "), marks=marks, unit=unit)
            )
    path.write_text(page(f"Monte Carlo: {result.run_id}", "".join(body)), encoding="utf-8")


def _analyze_page(
    path: Path, results: dict[str, Any], written: dict[str, pd.DataFrame], weights: dict[str, float] | None
) -> None:
    from tidemark.adapters.research import analytics
    from tidemark.adapters.research.plots import lines_svg, page, table_html

    curves = {name: analytics.daily_equity(result) for name, result in results.items()}
    scaled = {name: curve / float(curve.iloc[0]) for name, curve in curves.items() if len(curve)}
    if weights is not None:
        scaled["blend"] = analytics.blend(results, weights)
    body = [lines_svg(scaled, "daily equity, each from 1.0")]
    for file, table in written.items():
        if file.endswith(".equity.csv"):
            continue
        body.append(f"<h2>{file.removesuffix('.csv')}</h2>{table_html(table)}")
    path.write_text(page("Runs analysed", "".join(body)), encoding="utf-8")
