"""The ``tidemark`` command line.

Exit codes: 0 success; 1 a check failed (verify found damage, replay
diverged); 2 bad input (data, config, parameters, unknown files), with one
line on stderr naming what is wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import msgspec

from tidemark.adapters import logs
from tidemark.adapters.progress import ProgressBar
from tidemark.core.text import plural
from tidemark.journal.terminal import RunInterrupted

if TYPE_CHECKING:
    from tidemark.adapters.live_feed import FeedSettings
    from tidemark.adapters.paper import PaperOptions

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class UsageError(Exception):
    """Bad command-line input (exit 2)."""


EXIT_BROKEN_PIPE = 141
"""128 + SIGPIPE: the reader of our output went away (``| head``), as a
shell reports a command killed by SIGPIPE."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code. Output cut short by the reader
    (``tidemark journal show J | head -1``) ends quietly."""
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, not at exit, where a closed pipe would print a traceback
        return code
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush of what is
    still buffered cannot fail on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real stdout (captured in-process): nothing to flush at exit
        pass


@functools.cache
def _parser() -> argparse.ArgumentParser:
    """The parser, built once per process (about 20 ms for every subcommand
    and flag): ``main`` called in-process again and again (tests, notebooks,
    a forked run) reuses it. Parsing leaves it as it was."""
    return build_parser()


def _main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, a usage error: argparse printed it
        sys.stdout.flush()
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_BAD_INPUT
    logs.configure(json_lines=args.log_json, verbose=args.verbose)
    try:
        with _inputs_given(args):
            return int(args.func(args) or 0)
    except BrokenPipeError:
        raise
    except KeyboardInterrupt:
        print("tidemark: interrupted", file=sys.stderr)
        return 130
    except RunInterrupted as exc:
        print(f"tidemark: {exc}; {_where_sealed(exc)}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        from tidemark.adapters.ccxt_errors import ExchangeUnreachable
        from tidemark.adapters.paper import PaperError
        from tidemark.core.bus import BusFault

        if isinstance(exc, (PaperError, ExchangeUnreachable)) and not args.verbose:
            print(f"tidemark: error: {exc}", file=sys.stderr)
            return EXIT_CHECK_FAILED
        if isinstance(exc, BusFault) and not args.verbose:
            from tidemark.core.strategy.faults import describe_failure

            what = describe_failure(exc.error, exc.event)
            print(f"tidemark: error: {what} ({_where_sealed(exc)}; -v for the traceback)", file=sys.stderr)
            return EXIT_CHECK_FAILED
        if _is_check_failure(exc):
            sealed = f" ({_where_sealed(exc)})" if hasattr(exc, "sealed") or hasattr(exc, "seal_error") else ""
            print(f"tidemark: error: {_one_line(exc)}{sealed}", file=sys.stderr)
            return EXIT_CHECK_FAILED
        if not _is_input_error(exc):
            raise
        print(f"tidemark: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _one_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _where_sealed(exc: BaseException) -> str:
    """Where a run that raised left its journal (see ``journal.terminal.seal_after``)."""
    sealed = getattr(exc, "sealed", None)
    if sealed is not None:
        where = f"the journal {sealed.path} is sealed {sealed.status!r} at seq {sealed.events}, head {sealed.head}"
        return where if sealed.one_file else where + " (still split in a -wal file: run tidemark verify --repair)"
    error = getattr(exc, "seal_error", None)
    if error is not None:
        return f"the journal could not be sealed: {_one_line(error)}"
    return "the journal is sealed"


def _is_check_failure(exc: Exception) -> bool:
    """A journal that is damaged, or that could not be written (exit 1)."""
    from tidemark.journal.errors import (
        JournalDecodeError,
        JournalEmptyError,
        JournalIntegrityError,
        JournalWriteError,
    )

    return isinstance(exc, (JournalIntegrityError, JournalDecodeError, JournalWriteError, JournalEmptyError))


def _inputs_given(args: argparse.Namespace) -> Any:
    """Input journals named with ``--inputs``, findable while the command runs."""
    from tidemark.journal.errors import JournalError
    from tidemark.journal.shared import use_inputs

    try:
        return use_inputs(*getattr(args, "input_journals", ()))
    except (OSError, JournalError) as exc:
        raise UsageError(f"--inputs: {exc}") from None


def _is_input_error(exc: Exception) -> bool:
    from tidemark.adapters.data import DataError
    from tidemark.adapters.fetch import FetchError
    from tidemark.adapters.markets import MarketError
    from tidemark.adapters.research.space import SpaceError
    from tidemark.adapters.research.sweep import SweepError
    from tidemark.core.config import ConfigError
    from tidemark.core.strategy import StrategyError
    from tidemark.core.strategy.params import ParamError
    from tidemark.journal.errors import JournalError

    return isinstance(
        exc,
        (
            UsageError,
            SweepError,
            SpaceError,
            FetchError,
            MarketError,
            DataError,
            ConfigError,
            ParamError,
            StrategyError,
            JournalError,
            FileNotFoundError,
            FileExistsError,
        ),
    )


def build_parser() -> argparse.ArgumentParser:
    from tidemark import __version__

    parser = argparse.ArgumentParser(prog="tidemark", description="Event-sourced trading simulation engine.")
    parser.add_argument("--version", action="version", version=f"tidemark {__version__}")
    parser.add_argument("--log-json", action="store_true", help="structured logs as JSON lines on stderr")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks")
    # The same flags after the subcommand (tidemark backtest -v): SUPPRESS keeps the top-level default.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument(
        "--inputs",
        dest="input_journals",
        action="append",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="an input journal that run journals read their market inputs from (when not beside them)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    bt = sub.add_parser(
        "backtest", parents=[common], help="run a backtest (no arguments: ema_cross on the bundled sample data)"
    )
    _run_flags(bt)
    bt.add_argument("--journal", help="journal path (default runs/<strategy>-<run id>.journal)")
    bt.add_argument("--report", help="HTML report path (default: next to the journal)")
    bt.add_argument("--no-report", action="store_true", help="do not write the HTML report")
    bt.add_argument("--force", action="store_true", help="overwrite an existing --journal")
    bt.add_argument(
        "--universe-min",
        metavar="COLUMN=MIN",
        help="trade only the --data files whose last COLUMN value is >= MIN (seed 003's min_usd_risk_volume; "
        "the choice knows each file's end and is recorded in the header)",
    )
    bt.add_argument("--json", action="store_true", help="print the metrics as JSON instead of a table")
    bt.add_argument(
        "--progress", action="store_true", help="progress lines on stderr even when it is not a terminal (CI, pipes)"
    )
    bt.add_argument(
        "--from-journal",
        metavar="JOURNAL",
        help="rerun over exactly the market data of this journal (a paper session or a backtest): a child run",
    )
    _trust_flag(bt, "the --from-journal parent")
    bt.set_defaults(func=cmd_backtest)

    pp = sub.add_parser(
        "paper", parents=[common], help="paper-trade a strategy on a live exchange feed (fills walk the real book)"
    )
    pp.add_argument("--exchange", help="ccxt exchange id, e.g. binanceusdm (USD-M perpetuals)")
    pp.add_argument("--symbol", action="append", help="ccxt symbol, e.g. BTC/USDT:USDT; repeatable")
    pp.add_argument(
        "--resume",
        metavar="JOURNAL",
        help="continue a session that crashed, in its own journal (exchange, symbols, strategy from its header)",
    )
    pp.add_argument("--strategy", default="ema_cross", help="built-in name or path to a .py strategy")
    pp.add_argument("--param", action="append", default=[], metavar="K=V", help="strategy parameter; repeatable")
    pp.add_argument("--duration", help="stop after this long, e.g. 30m (default: until Ctrl-C)")
    pp.add_argument("--journal", help="journal path (default runs/paper-<strategy>-<run id>.journal)")
    pp.add_argument("--force", action="store_true", help="overwrite an existing --journal")
    pp.add_argument("--config", help="run config JSON (risk, sizing, fees, paper settings)")
    pp.add_argument("--cash", type=float, help="initial cash in the settlement currency (default 100,000)")
    pp.add_argument("--bar", help="bar length built from trades for on_bar (default 1m)")
    pp.add_argument("--latency-ms", type=float, help="decision-to-matching latency in ms (default 0)")
    pp.add_argument("--book-depth", type=int, default=50, help="book levels kept per side (default 50)")
    pp.add_argument("--max-book-age", type=float, default=10.0, help="seconds of book silence before it is stale")
    pp.add_argument("--funding-poll", type=float, default=5.0, help="seconds between mark/funding polls")
    pp.add_argument("--ticker-poll", type=float, default=5.0, help="seconds between ticker polls (0: none)")
    pp.add_argument("--funding-fallback", choices=["error", "skip", "rate"], help="what a missing funding rate does")
    pp.add_argument("--rest", action="store_true", help="poll REST instead of websockets")
    pp.add_argument("--watch", action="store_true", help="reload the strategy file when it changes")
    pp.add_argument("--ccxt-option", action="append", default=[], metavar="KEY=VALUE", help="ccxt option, dotted keys")
    pp.add_argument("--ccxt-options", help="JSON file of ccxt options")
    pp.add_argument(
        "--credentials",
        metavar="FILE",
        help="JSON file of exchange credentials (ccxt option names), readable by you only; or $TIDEMARK_API_KEY, ...",
    )
    pp.add_argument("--no-status", action="store_true", help="no live status line")
    pp.add_argument(
        "--signing-key",
        metavar="FILE",
        help="Ed25519 private key: journal signed checkpoints of the chain head (else $TIDEMARK_SIGNING_KEY)",
    )
    pp.add_argument("--checkpoint-every", type=float, default=5.0, help="seconds between signed checkpoints")
    pp.set_defaults(func=cmd_paper)

    df = sub.add_parser(
        "diff", parents=[common], help="first divergent decision between two runs, and PnL differences by cause"
    )
    df.add_argument("run_a")
    df.add_argument("run_b")
    df.add_argument("--json", action="store_true")
    _trust_flag(df, "either journal")
    df.set_defaults(func=cmd_diff)

    rp = sub.add_parser("report", parents=[common], help="summary of any journal")
    rp.add_argument("journal")
    rp.add_argument("--json", action="store_true", help="metrics as one JSON object")
    rp.add_argument("--html", help="also write the HTML report here")
    _trust_flag(rp, "the journal")
    rp.set_defaults(func=cmd_report)

    rl = sub.add_parser(
        "replay", parents=[common], help="replay a journal: regenerate every output and compare byte for byte"
    )
    rl.add_argument("journal")
    rl.add_argument("--check", action="store_true", help="(the default; kept for scripts that pass it)")
    rl.add_argument("--json", action="store_true")
    rl.set_defaults(func=cmd_replay)

    vf = sub.add_parser("verify", parents=[common], help="check a journal's integrity and hash chain")
    vf.add_argument("journal")
    vf.add_argument("--json", action="store_true")
    _proof_flags(vf)
    vf.add_argument(
        "--repair",
        action="store_true",
        help="a journal whose writer died: make it one file again (nothing committed is lost), then verify",
    )
    vf.set_defaults(func=cmd_verify)

    au = sub.add_parser("audit", parents=[common], help="verify, then replay --check")
    au.add_argument("journal")
    au.add_argument("--json", action="store_true")
    _proof_flags(au)
    au.set_defaults(func=cmd_audit)

    kg = sub.add_parser("keygen", parents=[common], help="make an Ed25519 key pair for signed checkpoints")
    kg.add_argument("--out", required=True, metavar="FILE", help="private key file (the public key goes to FILE.pub)")
    kg.set_defaults(func=cmd_keygen)

    jn = sub.add_parser("journal", parents=[common], help="inspect or export a journal")
    jsub = jn.add_subparsers(dest="journal_command", required=True)
    show = jsub.add_parser("show", parents=[common], help="run header and counts by kind")
    show.add_argument("journal")
    show.add_argument("--json", action="store_true")
    _trust_flag(show, "the journal")
    show.set_defaults(func=cmd_journal_show)
    ex = jsub.add_parser(
        "export",
        parents=[common],
        help="export the events (one table per kind) and the results to parquet, csv or jsonl",
    )
    ex.add_argument("journal")
    ex.add_argument("--format", choices=["parquet", "csv", "jsonl"], required=True)
    ex.add_argument("--out", required=True, help="output directory")
    _trust_flag(ex, "the journal")
    ex.set_defaults(func=cmd_journal_export)
    sh = jsub.add_parser(
        "share",
        parents=[common],
        help="store sealed journals' market inputs once, in an input journal they then read them from",
    )
    sh.add_argument("journals", nargs="+", metavar="JOURNAL")
    sh.add_argument(
        "--into",
        metavar="DIR",
        help="the input journal's folder (default: inputs/ beside the first journal); "
        "one made there before for the same inputs is reused",
    )
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=cmd_journal_share)

    fe = sub.add_parser(
        "fetch", parents=[common], help="download candles, funding and marks through ccxt into a Parquet cache"
    )
    fe.add_argument("--exchange", required=True, help="ccxt exchange id, e.g. binance or binanceusdm")
    fe.add_argument("--symbol", required=True, help="ccxt symbol, e.g. BTC/USDT or BTC/USDT:USDT")
    fe.add_argument("--timeframe", default="1h")
    fe.add_argument("--since", required=True, help="first candle (ISO time or epoch ms)")
    fe.add_argument("--until", help="last candle (default: now)")
    fe.add_argument("--funding", action="store_true", help="also funding-rate history")
    fe.add_argument("--mark", action="store_true", help="also mark-price candles")
    fe.add_argument("--cache", default="data", help="cache folder (default data/)")
    fe.add_argument("--ccxt-option", action="append", default=[], metavar="KEY=VALUE", help="ccxt option, dotted keys")
    fe.add_argument("--ccxt-options", help="JSON file of ccxt options")
    fe.add_argument("--json", action="store_true")
    fe.set_defaults(func=cmd_fetch)

    from tidemark.adapters import cli_sweep, cli_walkforward

    cli_sweep.add_parser(sub, common, _run_flags)
    cli_walkforward.add_parser(sub, common, _run_flags)

    st = sub.add_parser("strategies", parents=[common], help="list built-in strategies and their parameters")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_strategies)

    from tidemark.adapters.cli_research import add_research_commands

    add_research_commands(sub, common)
    from tidemark.adapters import cli_overlay

    cli_overlay.add_parser(sub, common)
    return parser


def _run_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that define a run (``backtest``, and the base run of a ``sweep``)."""
    parser.add_argument("--strategy", help="built-in name or path to a .py strategy (default ema_cross)")
    parser.add_argument("--data", action="append", help="OHLCV file (CSV/Parquet/Feather); repeat for several symbols")
    parser.add_argument("--symbol", action="append", help="symbol name for the matching --data file")
    parser.add_argument("--param", action="append", default=[], metavar="K=V", help="strategy parameter; repeatable")
    parser.add_argument("--config", help="run config JSON (flags override it)")
    parser.add_argument("--fill", choices=["next_open", "close"], help="fill model (default next_open)")
    parser.add_argument("--cash", type=float, help="initial cash in the account currency (default 100,000)")
    parser.add_argument(
        "--account",
        choices=["cash", "margin"],
        help="cash: spot bought with cash, no shorts; margin: spot levered or shorted "
        "(default: cash, margin if --leverage > 1)",
    )
    parser.add_argument(
        "--leverage", type=float, help="account leverage: initial margin is 1/leverage of notional (default 1)"
    )
    parser.add_argument(
        "--borrow-rate", type=float, help="annual interest on borrowing; enables spot shorts (margin account)"
    )
    parser.add_argument("--commission-bps", type=float, help="commission, basis points of notional")
    parser.add_argument("--slippage-bps", type=float, help="slippage, basis points against the order")
    parser.add_argument("--timeframe", help="bar length, e.g. 1h (default: inferred from the data)")
    parser.add_argument("--start", help="first bar traded (ISO time or epoch ms)")
    parser.add_argument("--warmup", help="bars (e.g. 200) or a duration (e.g. 30d) before --start seen without trading")
    parser.add_argument("--end", help="last bar (ISO time or epoch ms)")
    parser.add_argument("--seed", type=int, help="seed for any randomness (fill probability)")
    parser.add_argument(
        "--every-bar",
        action="store_true",
        help="call on_bar at every step even if the strategy declares wake(ctx) (to check the mask)",
    )
    parser.add_argument("--tz", help="timezone of data times that carry none (e.g. UTC)")
    parser.add_argument("--repair", choices=["none", "drop", "ffill"], help="repair policy for bad data rows")
    parser.add_argument(
        "--funding", action="append", help="funding-rate history file (freqtrade layout); enables funding"
    )
    parser.add_argument("--mark", action="append", help="mark-price candles used to value funding")
    parser.add_argument(
        "--funding-fallback", choices=["error", "skip", "rate"], help="what a missing funding rate does"
    )


def _trust_flag(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--trust",
        action="store_true",
        help=f"read {what} without verifying it (a damaged journal is refused otherwise); the output says so",
    )


def _proof_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--expect-head",
        metavar="HASH",
        help="an anchor: fail unless the chain ends at or passes through this chain hash (printed when it was written)",
    )
    parser.add_argument(
        "--pubkey", metavar="FILE", help="check the signed checkpoints with this Ed25519 public key (tidemark keygen)"
    )


# -- backtest --------------------------------------------------------------------------------------


def _params(pairs: list[str]) -> dict[str, Any]:
    from tidemark.core.strategy.params import parse_cli_value

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {pair!r}: expected KEY=VALUE")
        out[key.strip()] = parse_cli_value(value)
    return out


def config_from_args(args: argparse.Namespace) -> Any:
    """The RunConfig the run flags (:func:`_run_flags`) describe."""
    from tidemark.adapters.backtest import build_config

    overrides: dict[str, Any] = {
        "strategy": args.strategy,
        "fill_model": args.fill,
        "initial_cash": args.cash,
        "account": args.account,
        "leverage": args.leverage,
        "borrow_rate": args.borrow_rate,
        "warmup": _warmup(args.warmup),
        "commission_bps": args.commission_bps,
        "slippage_bps": args.slippage_bps,
        "timeframe": args.timeframe,
        "start": args.start,
        "end": args.end,
        "seed": args.seed,
        "repair": args.repair,
        "wake": False if args.every_bar else None,
    }
    if args.symbol:
        overrides["symbols"] = list(args.symbol)
    config = build_config(args.config, **overrides)
    if args.funding or args.mark or args.funding_fallback:
        funding = config.funding
        config = build_config(
            config,
            funding={
                **msgspec.to_builtins(funding),
                "enabled": True,
                "data": [*funding.data, *(args.funding or [])],
                "marks": [*funding.marks, *(args.mark or [])],
                "fallback": args.funding_fallback or funding.fallback,
                "interval": funding.interval or "8h",
            },
        )
    params = _params(args.param)
    if params:
        if config.strategies:
            raise UsageError("--param applies to a single strategy; set params per strategy in --config")
        config = build_config(config, params={**config.params, **params})
    return config


def cmd_backtest(args: argparse.Namespace) -> int:
    from tidemark.adapters.backtest import run_with_results
    from tidemark.adapters.report_html import write_report
    from tidemark.adapters.universe import UniverseRule

    log = logs.get("backtest")
    if args.from_journal:
        return _rerun(args)
    config = config_from_args(args)
    progress = ProgressBar("backtest") if (sys.stderr.isatty() or args.progress) else None
    if args.tz is not None:
        _check_tz(args.tz)
    universe = UniverseRule.parse(args.universe_min) if args.universe_min else None
    result = asyncio.run(
        run_with_results(
            config,
            data=args.data,
            journal=args.journal,
            overwrite=args.force,
            tz=args.tz,
            progress=progress,
            universe=universe,
        )
    )
    if progress is not None:
        progress.close()
    path = result.journal
    report_path = None
    if not args.no_report:
        report_path = Path(args.report) if args.report else path.with_suffix(".html")
        write_report(result, report_path)
    log.info("backtest finished", journal=str(path), events=result.events, run_id=result.run_id)
    if args.json:
        print(
            json.dumps(
                _jsonable(
                    {
                        **result.metrics,
                        "journal": str(path),
                        "run_id": result.run_id,
                        "head": result.head,
                        "events": result.events,
                    }
                ),
                sort_keys=True,
            )
        )
    else:
        print(summary_table(result))
        print(f"journal: {path}")
        print(f"head:    {result.head}  (anchor: tidemark verify {path} --expect-head {result.head})")
        if report_path is not None:
            print(f"report:  {report_path}")
    return EXIT_OK


def _check_tz(name: str) -> None:
    """A timezone name the data's naive times can be read in."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--tz {name!r}: not a timezone (e.g. UTC, Europe/London, America/New_York)") from None


def _warmup(text: str | None) -> int | str | None:
    """``--warmup 200`` (bars) or ``--warmup 30d`` (a duration)."""
    if text is None:
        return None
    return int(text) if text.strip().isdigit() else text.strip()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    return obj


def summary_table(result: Any) -> str:
    """The run's figures, money in the account currency, warnings below."""
    m = result.metrics
    config = result.config
    currency = m.get("currency") or config.get("currency", "USD")
    strategies = ", ".join(s["id"] for s in config.get("strategies", []))
    ruin = " (equity reached zero)" if m.get("ruined_at") else ""

    def money(x: float) -> str:
        return f"{x:,.2f} {currency}"

    rows = [
        ("run", result.run_id),
        ("strategy", strategies),
        ("symbols", ", ".join(config.get("symbols", []))),
        ("data", ", ".join(config.get("data", [])) or "(journal)"),
        ("period", _period(result.equity)),
        ("timeframe", config.get("timeframe") or "n/a"),
        ("bars", f"{m['bars']:,}"),
        ("account", _account(m, config)),
        ("initial cash", money(m["initial_cash"])),
        ("final equity", money(m["final_equity"])),
        ("total return", _pct(m["total_return"])),
        ("annualized return", _pct(m["annualized_return"]) + ruin),
        ("max drawdown", _pct(m["max_drawdown"]) + ruin),
        ("sharpe", _num(m["sharpe"])),
        ("sortino", _num(m["sortino"])),
        ("calmar", _num(m["calmar"])),
        ("trades", f"{m['trades']} closed, {m['open_trades']} open"),
        ("win rate", _pct(m["win_rate"])),
        ("profit factor", _num(m["profit_factor"])),
        ("expectancy", _num(m["expectancy"]) + (f" {currency}" if math.isfinite(m["expectancy"]) else "")),
        ("exposure time", _pct(m["exposure_time"])),
        ("fees paid", money(m["fees_paid"])),
        ("funding", money(m.get("funding", 0.0))),
        ("rejections", str(m.get("rejections", 0))),
    ]
    if m.get("interest"):
        rows.insert(-1, ("interest", money(m["interest"])))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    lines.extend(f"warning: {w}" for w in getattr(result, "warnings", []))
    return "\n".join(lines)


def _period(equity: Any) -> str:
    """First and last step closes of the results, UTC."""
    if not len(equity):
        return "n/a"
    first, last = equity.index[0], equity.index[-1]
    return f"{first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M} UTC"


def _account(metrics: dict[str, Any], config: dict[str, Any]) -> str:
    kind = metrics.get("account", "cash")
    if kind == "unchecked":
        return "unchecked (rules version 1: no cash or margin checks)"
    leverage = metrics.get("leverage", 1.0)
    borrow = config.get("borrow_rate")
    text = f"{kind}, leverage {leverage:g}x"
    if borrow is not None:
        text += f", borrowing at {borrow * 100:g}%/year"
    return text


def _pct(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x * 100:.2f}%"


def _num(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.3f}"


# -- journals --------------------------------------------------------------------------------------


def _existing(path: str) -> Path:
    """A journal path given on the command line: a file this user can read
    (else exit 2: the argument is unusable, which is not a damaged journal)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such journal")
    if p.is_dir():
        raise UsageError(f"{p}: is a directory, not a journal")
    if not os.access(p, os.R_OK):
        raise UsageError(f"{p}: not readable (permission denied)")
    return p


def cmd_report(args: argparse.Namespace) -> int:
    from tidemark.adapters.backtest import Result
    from tidemark.adapters.report_html import write_report

    result = Result.from_journal(_existing(args.journal), trust=args.trust)
    assert result.check is not None
    if args.html:
        write_report(result, Path(args.html))
    if args.json:
        facts = {**result.metrics, "run_id": result.run_id, "events": result.events, "head": result.head}
        print(json.dumps(_jsonable({**facts, **result.check.as_dict()}), sort_keys=True))
    else:
        print(summary_table(result))
        print(result.check.describe())
    if args.html:
        print(f"report: {args.html}", file=sys.stderr if args.json else sys.stdout)
    return EXIT_OK


def _expectations(args: argparse.Namespace) -> Any:
    from tidemark.journal.verify import Expectations

    if args.pubkey is not None:
        _existing_file(args.pubkey, "public key")
    head = args.expect_head
    if head is not None and not (len(head) == 64 and all(c in "0123456789abcdefABCDEF" for c in head)):
        raise UsageError(f"--expect-head {head!r}: a chain hash is 64 hex characters")
    return Expectations(expect_head=head, public_key=args.pubkey)


def _existing_file(path: str, what: str) -> Path:
    p = Path(path)
    if not p.is_file() or not os.access(p, os.R_OK):
        raise UsageError(f"{p}: no readable {what} file")
    return p


def _is_sweep(path: str) -> bool:
    """A sweep folder or manifest: verify and audit check every point."""
    from tidemark.adapters.research.proof import is_sweep_manifest

    return is_sweep_manifest(path)


def cmd_verify(args: argparse.Namespace) -> int:
    from tidemark.journal.signing import SigningKeyError
    from tidemark.journal.verify import verify

    if _is_sweep(args.journal) and not args.repair:
        from tidemark.adapters.cli_sweep import cmd_sweep_proof

        return cmd_sweep_proof(args, audit=False)

    path = _existing(args.journal)
    expect = _expectations(args)
    repaired = None
    if args.repair:
        from tidemark.journal.repair import repair

        repaired = repair(path)
    try:
        report = verify(path, expect=expect)
    except SigningKeyError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps({**report.as_dict(), **({"repair": repaired.as_dict()} if repaired else {})}, sort_keys=True))
    else:
        if repaired is not None:
            print(f"{path}: {repaired.describe()}")
        print(f"{path}: {describe_verify(report)}")
    return EXIT_OK if report.ok else EXIT_CHECK_FAILED


def describe_verify(report: Any) -> str:
    """verify's verdict in one line: ok (with what else it proved) or DAMAGED."""
    if not report.ok:
        return f"DAMAGED: {report.message}"
    text = f"ok, {plural(report.events, 'event')}, head {report.head}"
    if report.live:
        text += ", being written (verified as far as it is committed)"
    elif not report.sealed:
        text += f", unsealed ({report.status}: its writer stopped without sealing; tidemark verify --repair)"
    else:
        text += f", {report.status}"
    if report.anchor_seq is not None:
        text += f"; passes through the expected head at seq {report.anchor_seq}"
    if report.signed_through is not None:
        text += f"; {report.checkpoints} signed checkpoints verify, the last covering seq {report.signed_through}"
    return text


def _describe(event: Any) -> str:
    if event is None:
        return "(nothing)"
    return msgspec.json.encode(msgspec.to_builtins(event)).decode() + f"  [{type(event).__name__}]"


def cmd_replay(args: argparse.Namespace) -> int:
    from tidemark.adapters.backtest import replay_verified

    path = _existing(args.journal)
    checked = replay_verified(path)
    report = checked.replay
    if report is None:
        message = checked.integrity.message
        print(f"{path}: refusing to replay a damaged journal: {message}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    if args.json:
        d = report.divergence
        print(
            json.dumps(
                {
                    "ok": report.ok,
                    "events": report.events,
                    "inputs": report.inputs,
                    "outputs": report.outputs,
                    "first_divergent_seq": d.seq if d else None,
                    "reason": d.reason if d else None,
                },
                sort_keys=True,
            )
        )
    elif report.ok:
        inputs, outputs = plural(report.inputs, "input"), plural(report.outputs, "output")
        print(f"{path}: replay identical: {inputs} regenerated {outputs} byte for byte")
    else:
        d = report.divergence
        assert d is not None
        print(f"{path}: replay DIVERGES at seq {d.seq}: {d.reason}")
        print(f"  journal: {_describe(d.recorded)}")
        print(f"  replay:  {_describe(d.replayed)}")
    return EXIT_OK if report.ok else EXIT_CHECK_FAILED


def cmd_audit(args: argparse.Namespace) -> int:
    from tidemark.adapters.backtest import replay_verified
    from tidemark.journal.signing import SigningKeyError

    if _is_sweep(args.journal):
        from tidemark.adapters.cli_sweep import cmd_sweep_proof

        return cmd_sweep_proof(args, audit=True)
    path = _existing(args.journal)
    try:
        checked = replay_verified(path, full_verify=True, expect=_expectations(args))
    except SigningKeyError as exc:
        raise UsageError(str(exc)) from None
    integrity = checked.integrity
    result: dict[str, Any] = {"verify": integrity.as_dict()}
    ok = integrity.ok
    report = checked.replay
    if report is not None:
        d = report.divergence
        result["replay"] = {
            "ok": report.ok,
            "inputs": report.inputs,
            "outputs": report.outputs,
            "first_divergent_seq": d.seq if d else None,
        }
        ok = report.ok
    result["ok"] = ok
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(f"verify: {describe_verify(integrity) if integrity.ok else integrity.message}")
        if "replay" in result:
            r = result["replay"]
            verdict = "identical" if r["ok"] else f"diverges at seq {r['first_divergent_seq']}"
            print(f"replay: {verdict} ({plural(r['inputs'], 'input')}, {plural(r['outputs'], 'output')})")
        print("audit: PASS" if ok else "audit: FAIL")
    return EXIT_OK if ok else EXIT_CHECK_FAILED


def cmd_journal_show(args: argparse.Namespace) -> int:
    from tidemark.journal.checked import ReadCheck, verified
    from tidemark.journal.meta import FILE_KEYS, HEADER_KEYS, header_meta
    from tidemark.journal.reader import JournalReader

    path = _existing(args.journal)
    check = ReadCheck(path, args.trust, None if args.trust else verified(path))
    with JournalReader(path) as reader:
        file_facts = {k: v for k, v in reader.meta.items() if k in FILE_KEYS and k != "status"}
        counts = reader.counts_by_kind()
        seq, head = reader.head()
        header = reader.header()
        final = reader.final()
    # What the run was and how it ended come from the chain, never from meta.
    run = header_meta(header) if header is not None else dict.fromkeys(HEADER_KEYS, "")
    config = json.loads(run.pop("config") or "{}")
    for strategy in config.get("strategies", []):
        strategy["source"] = f"<{len(strategy.get('source', ''))} chars>"
    status = final.status if final is not None else reader.meta.get("status", "") + " (no final record)"
    if args.json:
        meta = {**file_facts, **run, "status": status}
        out = {"meta": meta, "config": config, "counts": counts, "events": seq, "head": head, **check.as_dict()}
        print(json.dumps(out, sort_keys=True))
        return EXIT_OK
    from tidemark.core.clock import iso_utc

    rows = {**run, "status": status, **file_facts}
    width = max(len(k) for k in rows)
    for key, value in rows.items():
        if key.endswith("_ts") and str(value).isdigit() and int(value):
            value = f"{value} ({iso_utc(int(value))})"
        print(f"{key:<{width}}  {value}")
    print(f"{'config':<{width}}  {json.dumps(config, sort_keys=True)}")
    print(f"\nevents: {seq}   head: {head}")
    for kind, count in counts.items():
        print(f"  {kind:<8} {count:>10,}")
    print(check.describe())
    return EXIT_OK


def cmd_journal_share(args: argparse.Namespace) -> int:
    """Each journal keeps its records, chain and head; stretches of market
    inputs it shares with the first journal become references to one input
    journal (made from the first; a journal whose inputs differ keeps them)."""
    from tidemark.journal.errors import JournalError
    from tidemark.journal.shared import INPUTS_FOLDER, extract_inputs, share_inputs

    paths = [_existing(path) for path in args.journals]
    folder = Path(args.into) if args.into else paths[0].parent / INPUTS_FOLDER
    try:
        inputs = extract_inputs(paths[0], folder)
        done = [share_inputs(path, inputs) for path in paths]
    except JournalError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        rows = [
            {
                "journal": str(d.journal),
                "shared": d.records,
                "records": d.total,
                "bytes_before": d.bytes_before,
                "bytes_after": d.bytes_after,
            }
            for d in done
        ]
        print(json.dumps({"inputs": str(inputs), "journals": rows}, sort_keys=True))
        return EXIT_OK
    print(f"input journal: {inputs} ({inputs.stat().st_size:,} bytes)")
    for d in done:
        print(
            f"{d.journal}: {d.records:,} of {d.total:,} records read from it; "
            f"{d.bytes_before:,} -> {d.bytes_after:,} bytes; head unchanged"
        )
    return EXIT_OK


def cmd_journal_export(args: argparse.Namespace) -> int:
    from tidemark.adapters.backtest import Result
    from tidemark.adapters.results_export import export_results
    from tidemark.journal.export import export

    journal = _existing(args.journal)
    for path in export(journal, args.out, args.format, trust=args.trust):
        print(path)
    for path in export_results(Result.from_journal(journal, trust=True), Path(args.out) / "results", args.format):
        print(path)
    if args.trust:
        print("UNVERIFIED: exported with --trust, not checked against its hash chain", file=sys.stderr)
    return EXIT_OK


def _rerun(args: argparse.Namespace) -> int:
    from tidemark.adapters.backtest import Result
    from tidemark.adapters.rerun import rerun_async

    parent = _existing(args.from_journal)
    strategy = args.strategy
    if strategy is not None and Path(strategy).is_file():
        strategy = str(Path(strategy))
    path = asyncio.run(
        rerun_async(
            parent,
            strategy=strategy,
            params=_params(args.param),
            timeframe=args.timeframe,
            journal=args.journal,
            overwrite=args.force,
            trust=args.trust,
        )
    )
    result = Result.from_journal(path)
    report_path = None
    if not args.no_report:
        from tidemark.adapters.report_html import write_report

        report_path = Path(args.report) if args.report else path.with_suffix(".html")
        write_report(result, report_path)
    facts = {"journal": str(path), "run_id": result.run_id, "head": result.head, "parent_trusted": args.trust}
    if args.json:
        print(json.dumps(_jsonable({**result.metrics, **facts}), sort_keys=True))
    else:
        print(summary_table(result))
        trusted = " (UNVERIFIED: read with --trust)" if args.trust else " (verified)"
        print(f"parent:  {result.header.parent_run_id} ({parent}){trusted}")
        print(f"journal: {path}")
        print(f"head:    {result.head}")
        if report_path is not None:
            print(f"report:  {report_path}")
    return EXIT_OK


def _ccxt_options(args: argparse.Namespace) -> dict[str, Any]:
    """ccxt options from --credentials, --ccxt-options and --ccxt-option (in
    that order of precedence, lowest first; the environment's credentials
    come below them all, see ``adapters.secrets``). A secret on the command
    line, or in an options file others can read, gets a warning."""
    from tidemark.adapters.fetch import merge_options, set_option
    from tidemark.adapters.secrets import (
        CredentialsError,
        command_line_secrets,
        open_to_others,
        read_credentials,
        secret_values,
    )

    options: dict[str, Any] = {}
    if getattr(args, "credentials", None):
        try:
            options = read_credentials(args.credentials)
        except CredentialsError as exc:
            raise UsageError(str(exc)) from None
    if args.ccxt_options:
        try:
            from_file = json.loads(Path(args.ccxt_options).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UsageError(f"{args.ccxt_options}: cannot read ccxt options: {exc}") from None
        if secret_values(from_file) and open_to_others(args.ccxt_options):
            _warn(f"{args.ccxt_options} holds credentials and other users can read it: chmod 600 it")
        options = merge_options(options, from_file)
    for pair in args.ccxt_option:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--ccxt-option {pair!r}: expected KEY=VALUE")
        set_option(options, key, value)
    for key in command_line_secrets(args.ccxt_option):
        _warn(
            f"--ccxt-option {key}=... puts a secret on the command line, where every local user can read it (ps);"
            " use $TIDEMARK_API_KEY / $TIDEMARK_API_SECRET ... or --credentials FILE"
        )
    return options


def _warn(message: str) -> None:
    print(f"tidemark: warning: {message}", file=sys.stderr)


def cmd_paper(args: argparse.Namespace) -> int:
    from tidemark.adapters.backtest import Result
    from tidemark.adapters.live_feed import FeedSettings
    from tidemark.adapters.paper import run_paper
    from tidemark.core.config import duration_ns

    duration = duration_ns(args.duration) / 1e9 if args.duration else None
    settings = FeedSettings(
        depth=args.book_depth,
        max_book_age=args.max_book_age,
        funding_poll=args.funding_poll,
        ticker_poll=args.ticker_poll,
        websocket=not args.rest,
    )
    status = None if args.no_status else sys.stderr
    if args.resume:
        from tidemark.adapters.paper_resume import resume_paper

        fixed = [f"--{name}" for name in ("exchange", "symbol", "config") if getattr(args, name)]
        if fixed:
            raise UsageError(f"--resume takes the session's {', '.join(fixed)} from its journal; leave them out")
        path = asyncio.run(
            resume_paper(
                _existing(args.resume),
                duration=duration,
                ccxt_options=_ccxt_options(args),
                watch=args.watch,
                status=status,
                settings=settings,
                signing_key=args.signing_key,
                checkpoint_every=args.checkpoint_every,
            )
        )
    else:
        if not args.exchange or not args.symbol:
            raise UsageError("paper needs --exchange and --symbol (or --resume JOURNAL)")
        path = asyncio.run(run_paper(_paper_options(args, duration, settings, status)))
    result = Result.from_journal(path)
    print(summary_table(result))
    print(f"journal: {path}")
    print(f"head:    {result.head}")
    return EXIT_OK


def _paper_options(
    args: argparse.Namespace, duration: float | None, settings: FeedSettings, status: TextIO | None
) -> PaperOptions:
    from tidemark.adapters.paper import PaperOptions

    return PaperOptions(
        exchange=args.exchange,
        symbols=list(args.symbol),
        strategy=args.strategy,
        params=_params(args.param),
        duration=duration,
        journal=args.journal,
        overwrite=args.force,
        ccxt_options=_ccxt_options(args),
        config=args.config,
        initial_cash=args.cash,
        bar_interval=args.bar,
        latency_ms=args.latency_ms,
        funding_fallback=args.funding_fallback,
        watch=args.watch,
        status=status,
        settings=settings,
        signing_key=args.signing_key,
        checkpoint_every=args.checkpoint_every,
    )


def cmd_diff(args: argparse.Namespace) -> int:
    from tidemark.adapters.rerun import describe_diff, diff_runs

    a, b = _existing(args.run_a), _existing(args.run_b)
    diff = diff_runs(a, b, trust=args.trust)
    assert diff.checks is not None
    if args.json:
        print(
            json.dumps(
                {
                    "same_inputs": diff.same_inputs,
                    "first_input_difference": diff.first_input_difference,
                    "decisions": list(diff.decisions),
                    "first_divergence": diff.first_divergence,
                    "pnl": {k: {"a": x, "b": y, "diff": y - x} for k, (x, y) in diff.pnl.items()},
                    "a": diff.checks[0].as_dict(),
                    "b": diff.checks[1].as_dict(),
                },
                sort_keys=True,
            )
        )
    else:
        print(describe_diff(diff, str(a), str(b)))
        print(f"A {diff.checks[0].describe()}")
        print(f"B {diff.checks[1].describe()}")
    return EXIT_OK


def cmd_fetch(args: argparse.Namespace) -> int:
    from tidemark.adapters.backtest import parse_time_ns
    from tidemark.adapters.fetch import fetch

    options = _ccxt_options(args)
    since = parse_time_ns(args.since, "since")
    until = parse_time_ns(args.until, "until") if args.until else None
    assert since is not None
    reports = asyncio.run(
        fetch(
            args.exchange,
            args.symbol,
            timeframe=args.timeframe,
            since=since // 1_000_000,
            until=until // 1_000_000 if until is not None else None,
            cache=Path(args.cache),
            funding=args.funding,
            mark=args.mark,
            options=options,
        )
    )
    if args.json:
        print(json.dumps([{**r.__dict__, "path": str(r.path)} for r in reports], sort_keys=True))
        return EXIT_OK
    for r in reports:
        print(
            f"{r.kind:<7} {r.path}  rows {r.rows:,} (+{r.added:,})  requests {r.requests} retries {r.retries}"
            f"  duplicates {r.duplicates} gaps {r.gaps}  {r.first} .. {r.last}"
        )
        for note in r.notes:
            print(f"        note: {note}")
    return EXIT_OK


def cmd_keygen(args: argparse.Namespace) -> int:
    from tidemark.journal.signing import new_key

    private_path = Path(args.out)
    public_path = private_path.with_name(private_path.name + ".pub")
    for target in (private_path, public_path):
        if target.exists():
            raise UsageError(f"{target}: exists; keys are never overwritten")
    private, public, fingerprint = new_key()
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private)
    public_path.write_bytes(public)
    print(f"private key: {private_path} (mode 600: keep it secret)")
    print(f"public key:  {public_path} (give it to whoever verifies: tidemark verify --pubkey)")
    print(f"fingerprint: {fingerprint}")
    return EXIT_OK


def cmd_strategies(args: argparse.Namespace) -> int:
    from tidemark.adapters.strategy_loader import catalogue

    items = [s.schema for s in catalogue()]
    if args.json:
        print(json.dumps(items, sort_keys=True))
        return EXIT_OK
    for schema in items:
        print(f"{schema['id']}: {schema.get('name', '')}")
        for name, spec in schema.get("inputs", {}).items():
            bounds = "".join(f" {k}={spec[k]}" for k in ("min", "max", "options") if k in spec)
            print(f"    {name} ({spec['type']}, default {spec['default']}){bounds}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
