"""Paper sessions against the local USD-M stand-in, through the real ccxt
client (REST + websocket on 127.0.0.1): record, replay, rerun, faults,
funding, secrets, the CLI, SIGINT and hot reload."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ccxt
import pytest

from tests.standin.usdm_live import UsdmLiveStandIn
from tidemark.adapters.backtest import replay
from tidemark.adapters.ccxt_errors import FATAL, RESUBSCRIBE, RETRY, classify
from tidemark.adapters.live_feed import FeedSettings
from tidemark.adapters.paper import PaperOptions, mask_options, run_paper
from tidemark.adapters.rerun import diff_runs, rerun_async
from tidemark.core.events import (
    BookDelta,
    BookSnapshot,
    FeedGap,
    FundingApplied,
    FundingUnavailable,
    InstrumentDefinition,
    Log,
    MarkPrice,
    OrderFilled,
    RunFinished,
    StrategyReloaded,
    Ticker,
    Timer,
    Trade,
)
from tidemark.journal.reader import JournalReader

SYMBOL = "BTC/USDT:USDT"
ROOT = Path(__file__).resolve().parents[2]

FAST_CROSS = """
def schema():
    return {"id": "fast_cross", "name": "Fast cross", "inputs": {
        "fast": {"type": "int", "default": 3, "min": 1, "max": 100},
        "slow": {"type": "int", "default": 8, "min": 2, "max": 400},
        "size": {"type": "float", "default": 0.05, "min": 0.0, "max": 100.0}}}


def on_bar(ctx, i):
    p = ctx.params
    if i < p["slow"]:
        return
    fast = ctx.ind.ema(ctx.close, p["fast"])
    slow = ctx.ind.ema(ctx.close, p["slow"])
    pos = ctx.position.size
    if fast[i] > slow[i] and fast[i - 1] <= slow[i - 1] and pos <= 0:
        ctx.buy(p["size"] - pos)
    elif fast[i] < slow[i] and fast[i - 1] >= slow[i - 1] and pos >= 0:
        ctx.sell(p["size"] + pos)
"""

HOLD_LONG = """
def schema():
    return {"id": "hold_long", "name": "Hold long", "inputs": {
        "size": {"type": "float", "default": 0.02, "min": 0.0, "max": 10.0}}}


def on_bar(ctx, i):
    if i >= 1 and not ctx.state.get("sent"):
        ctx.state["sent"] = True
        ctx.buy(ctx.params["size"])
"""


QUOTE_FLIP = """
def schema():
    return {"id": "quote_flip", "name": "Quote flip", "inputs": {
        "every": {"type": "int", "default": 150, "min": 1, "max": 100000}}}


def on_quote(ctx, q):
    n = ctx.state["n"] = ctx.state.get("n", 0) + 1
    if n % ctx.params["every"] == 0:
        ticker = ctx.ticker()
        if ticker is not None:
            ctx.log.info(f"ticker last {ticker.last} volume {ticker.base_volume}")
        if ctx.position.size == 0:
            ctx.buy(0.01)
        else:
            ctx.flatten()
"""


@pytest.fixture
def standin(shared_data: Path) -> Iterator[UsdmLiveStandIn]:
    server = UsdmLiveStandIn(shared_data, speed=30)  # the 5.75-minute capture lasts 11.5 s
    server.start()
    yield server
    server.stop()


@pytest.fixture
def near_funding(shared_data: Path) -> Iterator[UsdmLiveStandIn]:
    """The stand-in started 75 s (exchange time) before the 00:00 funding time."""
    server = UsdmLiveStandIn(shared_data, speed=30)
    server.clock_start = (server.t0 // (8 * 3_600_000) + 1) * 8 * 3_600_000 - 75_000
    server.start()
    yield server
    server.stop()


@pytest.fixture
def strategy_file(tmp_path: Path) -> Path:
    path = tmp_path / "fast_cross.py"
    path.write_text(FAST_CROSS)
    return path


def funding_may_lag(tmp_path: Path, **more: Any) -> Path:
    """A run config for tests not about funding. The stand-in's clock runs
    30x real time, so on a loaded machine the funding poll can fall minutes
    of exchange time behind the marks; with the default fallback ('error')
    that fail-stops a session whose test is about something else. 'skip'
    still journals the FundingUnavailable."""
    path = tmp_path / "funding-may-lag.json"
    path.write_text(json.dumps({"funding": {"fallback": "skip"}, **more}))
    return path


def session(standin: UsdmLiveStandIn, tmp_path: Path, strategy: Path, duration: float, **kwargs: Any) -> Path:
    settings = kwargs.pop("settings", FeedSettings(funding_poll=0.2, ticker_poll=0.5, max_book_age=5.0))
    options = PaperOptions(
        "binanceusdm",
        [SYMBOL],
        str(strategy),
        duration=duration,
        journal=tmp_path / kwargs.pop("name", "paper.journal"),
        overwrite=True,
        ccxt_options=kwargs.pop("ccxt_options", standin.ccxt_options()),
        bar_interval="1s",
        settings=settings,
        **kwargs,
    )
    return asyncio.run(run_paper(options))


def events_of(path: Path) -> list[Any]:
    with JournalReader(path) as reader:
        return [r.event for r in reader.records()]


def test_session_fills_on_the_book_replays_identically_and_reruns_with_the_same_decisions(
    standin: UsdmLiveStandIn, tmp_path: Path, strategy_file: Path
) -> None:
    path = session(standin, tmp_path, strategy_file, 5.0, config=funding_may_lag(tmp_path))
    events = events_of(path)
    (inst,) = [e for e in events if isinstance(e, InstrumentDefinition)]
    # From the recorded exchangeInfo, through ccxt's market parser.
    assert (inst.kind, inst.settle, inst.tick_size, inst.lot_size, inst.min_notional) == (
        "perpetual",
        "USDT",
        0.1,
        0.001,
        100.0,
    )
    assert (inst.maker_fee, inst.taker_fee) == (0.0002, 0.0005)
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert len(fills) >= 4, "the fast cross trades on 1s bars"
    for fill in fills:
        source = events[fill.source_seq - 1]  # seq n is the n-th record
        assert isinstance(source, (BookSnapshot, BookDelta, Trade)), f"fill {fill.fill_id} matched {source!r}"
        assert fill.levels >= 1 and fill.fee_model == "exchange@0.0005"
        assert fill.fee == pytest.approx(fill.quantity * fill.price * 0.0005)
    assert isinstance(events[-1], RunFinished) and events[-1].status == "finished"

    report = replay(path)
    assert report.ok, report.divergence
    assert report.outputs > 0

    child = asyncio.run(rerun_async(path, journal=tmp_path / "child.journal"))
    diff = diff_runs(path, child)
    assert diff.same_inputs and diff.first_divergence is None
    assert diff.decisions[0] == diff.decisions[1] == len({f.order_id for f in fills})
    assert all(a == b for a, b in diff.pnl.values())
    with JournalReader(child) as reader:
        header = next(reader.records()).event
    assert header.parent_run_id == events[0].run_id and header.mode == "rerun"

    other = asyncio.run(rerun_async(path, params={"slow": 12}, journal=tmp_path / "other.journal"))
    changed = diff_runs(path, other)
    assert changed.same_inputs and changed.first_divergence is not None


def test_a_book_driven_strategy_trades_on_quotes_and_replays_identically(
    standin: UsdmLiveStandIn, tmp_path: Path
) -> None:
    strategy = tmp_path / "quote_flip.py"
    strategy.write_text(QUOTE_FLIP)
    path = session(standin, tmp_path, strategy, 4.0, config=funding_may_lag(tmp_path))
    events = events_of(path)
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert len(fills) >= 2, "on_quote placed orders that filled"
    tickers = [e for e in events if isinstance(e, Ticker)]
    assert tickers and tickers[-1].last > 0 and tickers[-1].base_volume > 0
    assert any(isinstance(e, Log) and e.message.startswith("ticker last") for e in events), "ctx.ticker() read"
    for fill in fills:
        assert isinstance(events[fill.source_seq - 1], (BookSnapshot, BookDelta)), "a market order walks the book"
    assert replay(path).ok
    child = asyncio.run(rerun_async(path, journal=tmp_path / "child.journal"))
    diff = diff_runs(path, child)
    assert diff.same_inputs and diff.first_divergence is None


@pytest.mark.parametrize(
    ("fault", "reasons"),
    [
        ({"drop_depth": 300}, {"book:sequence_gap"}),
        ({"cross_depth": 600}, {"book:crossed_book"}),
        ({"pause_depth": (300, 1.5)}, {"book:stale_age"}),
        # One websocket carries both streams: whichever stream sees the close
        # first, the book is reported and resynchronised.
        ({"disconnect_after": 300}, {"book:disconnect", "book:connection_lost"}),
    ],
    ids=["sequence_gap", "crossed", "silent", "disconnect"],
)
def test_feed_faults_are_journaled_and_the_book_resyncs_without_stale_fills(
    standin: UsdmLiveStandIn, tmp_path: Path, strategy_file: Path, fault: dict[str, Any], reasons: set[str]
) -> None:
    for key, value in fault.items():
        setattr(standin, key, value)
    settings = FeedSettings(funding_poll=0.2, max_book_age=0.4)
    path = session(standin, tmp_path, strategy_file, 4.0, settings=settings, config=funding_may_lag(tmp_path))
    events = events_of(path)
    gaps = [(k, e) for k, e in enumerate(events) if isinstance(e, FeedGap) and e.reason in reasons]
    assert gaps, f"no {reasons} FeedGap; faults done: {standin.faults_done}"
    k, _ = gaps[0]
    resync = next((j for j in range(k + 1, len(events)) if isinstance(events[j], BookSnapshot)), None)
    assert resync is not None, "the book was resynchronised from a fresh snapshot"
    assert not any(isinstance(e, OrderFilled) for e in events[k:resync]), "no fill from a stale book"
    assert replay(path).ok


def test_rest_rate_limits_are_retried_and_journaled_and_ccxt_options_come_from_the_config(
    standin: UsdmLiveStandIn, tmp_path: Path, strategy_file: Path
) -> None:
    standin.fail_next = 2  # load_markets meets two 429s
    config = funding_may_lag(tmp_path, paper={"ccxt_options": standin.ccxt_options()})
    path = session(standin, tmp_path, strategy_file, 4.0, config=config, ccxt_options={})
    assert standin.faults_done.get("429") == 2
    events = events_of(path)
    limited = [e for e in events if isinstance(e, FeedGap) and e.reason == "markets:rate_limit"]
    assert len(limited) == 2, [e.reason for e in events if isinstance(e, FeedGap)]
    assert any(isinstance(e, OrderFilled) for e in events)


def test_rest_timeouts_are_journaled_and_retried(standin: UsdmLiveStandIn, tmp_path: Path, strategy_file: Path) -> None:
    standin.delay_next, standin.delay_path, standin.delay = 2, "/fapi/v1/premiumIndex", 1.0
    options = {**standin.ccxt_options(), "timeout": 300}  # ms: the delayed answers time out
    path = session(standin, tmp_path, strategy_file, 5.0, ccxt_options=options, config=funding_may_lag(tmp_path))
    events = events_of(path)
    timeouts = [k for k, e in enumerate(events) if isinstance(e, FeedGap) and e.reason == "funding:timeout"]
    assert timeouts, f"no funding:timeout FeedGap; faults done: {standin.faults_done}"
    assert any(isinstance(e, MarkPrice) for e in events[timeouts[-1] :]), "the poll recovered after its retries"
    assert replay(path).ok


def test_funding_is_charged_at_the_mark_with_the_right_sign(near_funding: UsdmLiveStandIn, tmp_path: Path) -> None:
    standin = near_funding
    funding_ms = (standin.t0 // (8 * 3_600_000) + 1) * 8 * 3_600_000
    assert standin.t0 < funding_ms < standin.t_end + 120_000, "the capture spans a funding time"
    standin.funding_prints = {funding_ms + 3: 0.000125}
    strategy = tmp_path / "hold_long.py"
    strategy.write_text(HOLD_LONG)
    path = session(standin, tmp_path, strategy, 4.5)
    events = events_of(path)
    (applied,) = [e for e in events if isinstance(e, FundingApplied)]
    # The position and mark at the funding time pay: a timer records them then.
    (at_t,) = [k for k, e in enumerate(events) if isinstance(e, Timer) and e.name == f"funding:{SYMBOL}"]
    assert events[at_t].ts == funding_ms * 1_000_000 < applied.ts
    mark = [e for e in events[:at_t] if isinstance(e, MarkPrice)][-1]
    assert applied.rate == 0.000125 and applied.mark == mark.price and applied.quantity == 0.02
    assert applied.amount == pytest.approx(-0.02 * mark.price * 0.000125, rel=1e-12)
    assert applied.amount < 0, "longs pay when the rate is positive"
    assert replay(path).ok


def test_a_missing_funding_rate_is_reported_and_the_fallback_applied(
    near_funding: UsdmLiveStandIn, tmp_path: Path
) -> None:
    standin = near_funding
    strategy = tmp_path / "hold_long.py"
    strategy.write_text(HOLD_LONG)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"paper": {"funding_grace": "20s"}, "funding": {"fallback": "rate", "rate": 0.0001}}))
    path = session(standin, tmp_path, strategy, 4.5, config=config)
    events = events_of(path)
    (missing,) = [e for e in events if isinstance(e, FundingUnavailable)]
    assert missing.fallback == "rate:0.0001"
    (applied,) = [e for e in events if isinstance(e, FundingApplied)]
    assert applied.source.startswith("fallback") and applied.rate == 0.0001
    assert replay(path).ok


def test_secrets_never_reach_the_journal_or_the_logs(
    standin: UsdmLiveStandIn, tmp_path: Path, strategy_file: Path
) -> None:
    key, secret = "TMK-KEY-5d1e0c77", "TMK-SECRET-90af33b2"
    options = {**standin.ccxt_options(), "apiKey": key, "secret": secret}
    assert mask_options(options)["apiKey"] == "***"
    opts_file = tmp_path / "ccxt.json"
    opts_file.write_text(json.dumps(options))
    standin.fail_next = 1
    journal = tmp_path / "s.journal"
    proc = cli(
        "--log-json",
        "-v",
        "paper",
        "--exchange",
        "binanceusdm",
        "--symbol",
        SYMBOL,
        "--strategy",
        str(strategy_file),
        "--bar",
        "1s",
        "--duration",
        "3s",
        "--journal",
        str(journal),
        "--ccxt-options",
        str(opts_file),
        "--ccxt-option",
        f"password={secret}",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "load_markets_retry" in proc.stderr
    blob = journal.read_bytes()
    for text in (key, secret):
        assert text.encode() not in blob
        assert text not in proc.stderr and text not in proc.stdout


def cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "tidemark", *args], capture_output=True, text=True, env=env, cwd=ROOT, **kwargs
    )


def start_cli_session(
    standin: UsdmLiveStandIn, strategy: Path, journal: Path, run_for: float, *extra: str, **popen: Any
) -> subprocess.Popen[bytes]:
    """``tidemark paper`` in a child process, running ``run_for`` s past the
    moment its journal appears (these tests are not about funding)."""
    opts_file = journal.with_suffix(".ccxt.json")
    opts_file.write_text(json.dumps(standin.ccxt_options()))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = ["paper", "--exchange", "binanceusdm", "--symbol", SYMBOL, "--strategy", str(strategy)]
    args += ["--bar", "1s", "--journal", str(journal), "--ccxt-options", str(opts_file)]
    args += ["--config", str(funding_may_lag(journal.parent)), *extra]
    proc = subprocess.Popen([sys.executable, "-m", "tidemark", *args], env=env, cwd=ROOT, **popen)
    deadline = time.monotonic() + 30
    while not journal.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(run_for)
    return proc


def test_cli_paper_stops_cleanly_on_sigint_and_seals_the_journal(
    standin: UsdmLiveStandIn, tmp_path: Path, strategy_file: Path
) -> None:
    journal = tmp_path / "sig.journal"
    proc = start_cli_session(standin, strategy_file, journal, 2.0, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"final equity" in out
    with JournalReader(journal) as reader:
        assert reader.meta["status"] == "finished"
        assert reader.meta["synchronous"] == "2"
    assert isinstance(events_of(journal)[-1], RunFinished)
    check = cli("replay", str(journal), "--check")
    assert check.returncode == 0 and "replay identical" in check.stdout


def test_a_killed_session_resumes_in_its_own_journal_and_replays_as_one_run(
    standin: UsdmLiveStandIn, tmp_path: Path, strategy_file: Path
) -> None:
    journal = tmp_path / "killed.journal"
    proc = start_cli_session(standin, strategy_file, journal, 2.5, "--no-status")
    proc.kill()  # SIGKILL: no chance to seal anything
    proc.wait(timeout=10)
    with JournalReader(journal) as reader:
        assert reader.meta["status"] == "running"
    before = events_of(journal)
    assert not isinstance(before[-1], RunFinished)

    # No ccxt options given: the URLs come from the journal's header.
    resumed = cli("paper", "--resume", str(journal), "--duration", "3s", "--no-status")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "final equity" in resumed.stdout
    with JournalReader(journal) as reader:
        assert reader.meta["status"] == "finished"
    after = events_of(journal)
    for old, new in zip(before, after, strict=False):  # everything committed before the crash is kept as it was
        assert old == new
    gaps = [k for k, e in enumerate(after) if isinstance(e, FeedGap) and e.reason == "book:session_resumed"]
    assert len(gaps) == 1 and gaps[0] >= len(before)
    resync = next(j for j in range(gaps[0], len(after)) if isinstance(after[j], BookSnapshot))
    assert not any(isinstance(e, OrderFilled) for e in after[gaps[0] : resync]), "no fill from the pre-crash book"
    assert any(isinstance(e, Trade) for e in after[resync:]), "live data flowed again after the resume"
    check = cli("replay", str(journal), "--check")
    assert check.returncode == 0 and "replay identical" in check.stdout, check.stdout + check.stderr
    again = cli("paper", "--resume", str(journal))
    assert again.returncode != 0 and "only an unfinished session can be resumed" in again.stderr


def test_watch_reloads_an_edited_strategy_and_keeps_the_last_good_one_on_a_broken_edit(
    standin: UsdmLiveStandIn, tmp_path: Path, strategy_file: Path
) -> None:
    async def edit() -> None:
        await asyncio.sleep(1.2)
        strategy_file.write_text("def schema(:\n")  # broken: the running version stays
        await asyncio.sleep(1.0)
        strategy_file.write_text(FAST_CROSS.replace('"default": 0.05', '"default": 0.07'))

    async def main() -> Path:
        options = PaperOptions(
            "binanceusdm",
            [SYMBOL],
            str(strategy_file),
            duration=4.0,
            journal=tmp_path / "watch.journal",
            ccxt_options=standin.ccxt_options(),
            bar_interval="1s",
            watch=True,
            settings=FeedSettings(funding_poll=0.2),
            config=funding_may_lag(tmp_path),
        )
        editor = asyncio.ensure_future(edit())
        path = await run_paper(options)
        await editor
        return path

    path = asyncio.run(main())
    events = events_of(path)
    reloads = [e for e in events if isinstance(e, StrategyReloaded)]
    assert len(reloads) == 1 and '"default": 0.07' in reloads[0].source
    assert replay(path).ok


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ccxt.ChecksumError("x"), RESUBSCRIBE),
        (ccxt.InvalidNonce("x"), RESUBSCRIBE),
        (ccxt.RateLimitExceeded("x"), RETRY),
        (ccxt.DDoSProtection("x"), RETRY),
        (ccxt.RequestTimeout("x"), RETRY),
        (ccxt.ExchangeNotAvailable("x"), RETRY),
        (ccxt.OnMaintenance("x"), RETRY),
        (ccxt.NetworkError("x"), RETRY),
        (TimeoutError(), RETRY),
        (ConnectionResetError(), RETRY),
        (ccxt.BadSymbol("x"), FATAL),
        (ccxt.AuthenticationError("x"), FATAL),
        (ccxt.NotSupported("x"), FATAL),
        (ccxt.ExchangeError("x"), FATAL),
        (ValueError("x"), FATAL),
    ],
)
def test_ccxt_errors_are_classified(error: BaseException, kind: str) -> None:
    assert classify(error) == kind


def test_inputs_received_before_the_session_ends_are_all_handed_out() -> None:
    """A machine that fell behind the feed still journals what it was sent:
    at the deadline the queue is drained, then the session ends."""
    from tidemark.adapters.paper import _next

    async def drain() -> list[object]:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        for k in range(3):
            queue.put_nowait(Log(k, "feed", "info", str(k)))
        feed_task = asyncio.ensure_future(asyncio.sleep(60))
        stop = asyncio.Event()
        got = []
        while (event := await _next(queue, feed_task, stop, deadline=time.monotonic() - 1.0)) is not None:
            got.append(event)
        feed_task.cancel()
        return got

    assert [e.message for e in asyncio.run(drain())] == ["0", "1", "2"]  # type: ignore[attr-defined]
