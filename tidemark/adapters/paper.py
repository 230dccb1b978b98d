"""``tidemark paper``: run strategies on a live exchange feed, filling on its books.

Python API::

    from tidemark.adapters.paper import PaperOptions, run_paper
    path = asyncio.run(run_paper(PaperOptions("binanceusdm", ["BTC/USDT:USDT"], "ema_cross", duration=1800)))

A session loads the exchange's markets (instrument definitions from ccxt
metadata), starts the feed (:mod:`adapters.live_feed`) and feeds every event,
in arrival order, into the same actor graph a backtest uses, with the book
venue (:mod:`tidemark.core.execution.book_venue`) and bars built from trades. The journal is
written with ``synchronous=FULL``: its header is committed at once, then
everything is committed every ``commit_every`` seconds (0.25) whether or not
new data arrives, so a killed session loses at most the data received in the
last commit interval (under 1 s while the session keeps up with its feed).
Its header holds the full config (ccxt options with secrets masked) and the
strategies' source, so ``tidemark replay --check`` reproduces every order,
fill and funding event, and ``tidemark backtest --from-journal`` reruns any
strategy on exactly this market data. With a signing key (``signing_key``,
or ``$TIDEMARK_SIGNING_KEY``) the header names the key's fingerprint and a
signed :class:`Checkpoint` of the chain head is journaled every
``checkpoint_every`` seconds and before the session ends
(:mod:`journal.signing`).

Times: inputs carry exchange time; an input stamped before the bus clock
(streams interleave) is restamped to the bus clock, which never goes back.
The session starts at the first market event. SIGINT, SIGTERM or SIGHUP (or
``duration``) stops cleanly: working orders are canceled, the account is
snapshotted and the journal sealed ``finished``. An error seals it
``failed`` with the error in its last record. A crash leaves it ``running``;
the next writer to open it verifies and seals it ``crashed-recovered``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import msgspec

from tidemark.adapters import logs
from tidemark.adapters.backtest import DEFAULT_RUNS_DIR, build_config, make_header, slots_for, strategy_configs
from tidemark.adapters.ccxt_errors import RETRY, ExchangeUnreachable, backoff, classify, one_line, reason, unreachable
from tidemark.adapters.fetch import merge_options
from tidemark.adapters.live_feed import FeedError, FeedSettings, LiveFeed, wall_ns
from tidemark.adapters.markets import instruments_for_symbols
from tidemark.adapters.secrets import credentials_from_env, mask_options, secret_values
from tidemark.adapters.stop import LoopStopSignals
from tidemark.core import config as cfg
from tidemark.core.bus import BusFault
from tidemark.core.engine import Engine
from tidemark.core.events import Event, FeedGap, InstrumentDefinition, StrategyReloaded
from tidemark.core.ids import canonical_json, sha256_hex
from tidemark.core.series import MarketSeries
from tidemark.core.strategy import StrategyError, load_source
from tidemark.core.strategy.params import resolve
from tidemark.journal.signing import Signer, SigningKeyError
from tidemark.journal.terminal import seal_after
from tidemark.journal.writer import STATUS_FINISHED, JournalWriter

__all__ = ["LiveInputs", "PaperError", "PaperOptions", "live_loop", "mask_options", "run_paper", "secret_values"]


class PaperError(RuntimeError):
    """The session could not start or had to stop; one line says why."""


def make_exchange(exchange_id: str, options: dict[str, Any]) -> Any:
    """A ccxt.pro client when the exchange has one, else ccxt's async REST client."""
    import ccxt.async_support as ccxt_async
    import ccxt.pro as ccxt_pro

    # Currencies need keys on some exchanges and paper sessions never use them.
    settings = merge_options({"enableRateLimit": True, "options": {"fetchCurrencies": False}}, options)
    cls = getattr(ccxt_pro, exchange_id, None) or getattr(ccxt_async, exchange_id, None)
    if cls is None or not isinstance(cls, type):
        raise PaperError(f"--exchange {exchange_id!r}: not a ccxt exchange id")
    return cls(settings)


@dataclass
class PaperOptions:
    exchange: str
    symbols: list[str]
    strategy: str = "ema_cross"
    params: dict[str, Any] = field(default_factory=dict)
    duration: float | None = None
    journal: str | os.PathLike[str] | None = None
    overwrite: bool = False
    ccxt_options: dict[str, Any] = field(default_factory=dict)
    config: str | os.PathLike[str] | None = None
    initial_cash: float | None = None
    bar_interval: str | None = None
    latency_ms: float | None = None
    funding_fallback: str | None = None
    watch: bool = False
    commit_every: float = 0.25
    status: TextIO | None = None
    settings: FeedSettings = field(default_factory=FeedSettings)
    signing_key: str | os.PathLike[str] | None = None
    """Ed25519 private key file for signed checkpoints (else ``$TIDEMARK_SIGNING_KEY``, else none)."""
    checkpoint_every: float = 5.0
    """Seconds between signed checkpoints."""


async def _markets(exchange: Any, retries: int, log: Any, faults: list[Event] | None = None) -> dict[str, Any]:
    """``load_markets`` with bounded retries; each retried fault is logged and,
    as a ``FeedGap`` (reason ``markets:<cause>``, ts 0), added to ``faults``
    for the journal once it exists."""
    for attempt in range(1, retries + 2):
        try:
            return dict(await exchange.load_markets())
        except Exception as exc:
            cause = unreachable(exc, first_contact=attempt == 1)
            if cause is not None:
                raise ExchangeUnreachable(f"cannot load markets: {cause}") from None
            if classify(exc) != RETRY or attempt > retries:
                raise PaperError(f"cannot load markets: {one_line(exc)}") from None
            log.warning("load_markets_retry", attempt=attempt, error=one_line(exc))
            if faults is not None:
                faults.append(FeedGap(0, "", f"markets:{reason(exc)}", one_line(exc), False, wall_ns()))
            await asyncio.sleep(backoff(attempt))
    raise PaperError("cannot load markets")


def session_config(options: PaperOptions, instruments: list[InstrumentDefinition]) -> cfg.RunConfig:
    """The run config of a session: everything replay needs, secrets masked."""
    base = build_config(options.config, strategy=options.strategy, initial_cash=options.initial_cash)
    paper = base.paper or cfg.PaperConfig()
    paper = msgspec.structs.replace(
        paper,
        exchange=options.exchange,
        bar_interval=options.bar_interval or paper.bar_interval,
        latency_ms=paper.latency_ms if options.latency_ms is None else options.latency_ms,
        book_depth=options.settings.depth,
        websocket=options.settings.websocket,
        session_start=wall_ns(),
        ccxt_options=mask_options(options.ccxt_options),
    )
    perps = [i.instrument for i in instruments if i.kind == "perpetual"]
    funding = base.funding
    if perps:
        funding = msgspec.structs.replace(funding, enabled=True, fallback=options.funding_fallback or funding.fallback)
    currency = instruments[0].settle or instruments[0].quote
    config = build_config(
        base,
        symbols=list(options.symbols),
        symbol=None,
        timeframe=paper.bar_interval,
        currency=currency if base.currency == "USD" else base.currency,
    )
    config = msgspec.structs.replace(config, paper=paper, funding=funding)
    if options.params:
        config = msgspec.structs.replace(config, params={**config.params, **options.params})
    return msgspec.structs.replace(
        config, strategies=strategy_configs(config, list(options.symbols)), strategy=None, params={}
    )


def live_market(config: cfg.RunConfig) -> MarketSeries:
    paper = config.paper
    assert paper is not None
    return MarketSeries.live_series(config.all_symbols(), cfg.duration_ns(paper.bar_interval), paper.max_bars)


class StatusLine:
    """One self-overwriting line: positions, PnL, fees, funding, book age, rate."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream
        self.started = time.monotonic()
        self.last = 0.0

    def show(self, engine: Engine, feed: LiveFeed, force: bool = False) -> None:
        now = time.monotonic()
        if self.stream is None or (now - self.last < 1.0 and not force):
            return
        self.last = now
        pf = engine.portfolio
        snap = pf.snapshot(engine.bus.now())
        positions = " ".join(f"{p.instrument}={p.quantity:+g}" for p in pf.positions.values() if p.quantity) or "flat"
        ages = [now - seen for seen in feed.book_seen.values()]
        age = f"{max(ages):.1f}s" if ages else "n/a"
        rate = engine.bus.seq / max(now - self.started, 1e-9)
        self.stream.write(
            f"\r{positions} | equity {snap.equity:,.2f} | pnl {snap.realized + snap.unrealized:+,.2f} "
            f"| fees {snap.fees:,.2f} | funding {snap.funding:+,.4f} | book age {age} "
            f"| faults {feed.faults} | {rate:,.0f} ev/s   "
        )
        self.stream.flush()


class _Reloader:
    """``--watch``: reload the strategy file when it changes; keep the last
    good version when the edit is broken."""

    def __init__(self, path: Path | None, strategy_id: str, params: dict[str, Any], log: Any) -> None:
        self.path = path
        self.strategy_id = strategy_id
        self.params = params
        self.log = log
        self.mtime = path.stat().st_mtime_ns if path is not None else 0
        self.last_check = 0.0

    def poll(self) -> StrategyReloaded | None:
        now = time.monotonic()
        if self.path is None or now - self.last_check < 0.5:
            return None
        self.last_check = now
        try:
            mtime = self.path.stat().st_mtime_ns
        except OSError as exc:
            self.log.warning("reload_failed", path=str(self.path), error=str(exc))
            return None
        if mtime == self.mtime:
            return None
        self.mtime = mtime
        source = self.path.read_text()
        try:
            loaded = load_source(source, str(self.path))
            resolve(loaded.schema, self.params)
        except (StrategyError, ValueError) as exc:
            self.log.warning("reload_failed_keeping_last_good", path=str(self.path), error=str(exc))
            return None
        self.log.warning("strategy_reloaded", path=str(self.path), sha256=sha256_hex(source)[:16])
        return StrategyReloaded(0, self.strategy_id, source, str(self.path))


async def run_paper(
    options: PaperOptions,
    *,
    stop: asyncio.Event | None = None,
    exchange: Any = None,
    on_ready: Callable[[Path], None] | None = None,
) -> Path:
    """Run one paper session until ``duration``, ``stop`` or SIGINT; returns the journal."""
    log = logs.get("paper")
    stop = stop or asyncio.Event()
    # ccxt options from the run config's paper section, with the caller's on top.
    base = build_config(options.config, strategy=options.strategy, initial_cash=options.initial_cash)
    ccxt_options = merge_options(credentials_from_env(), (base.paper.ccxt_options if base.paper else None) or {})
    options = replace(options, ccxt_options=merge_options(ccxt_options, options.ccxt_options))
    for value in secret_values(options.ccxt_options):
        logs.register_secret(value)
    signer = load_signer(options.signing_key)
    own_exchange = exchange is None
    exchange = exchange if exchange is not None else make_exchange(options.exchange, options.ccxt_options)
    try:
        with LoopStopSignals(asyncio.get_running_loop(), stop):
            faults: list[Event] = []
            markets = await _markets(exchange, options.settings.retries, log, faults)
            instruments = instruments_for_symbols(markets, list(options.symbols), 0)
            config = session_config(options, instruments)
            slots = slots_for(config)
            return await _session(options, config, slots, instruments, exchange, stop, log, on_ready, faults, signer)
    finally:
        if own_exchange:
            await exchange.close()


def load_signer(path: str | os.PathLike[str] | None) -> Signer | None:
    """The session's signing key (a file, else the environment), or None."""
    try:
        return Signer.load(path)
    except SigningKeyError as exc:
        raise PaperError(str(exc)) from None


async def _session(
    options: PaperOptions,
    config: cfg.RunConfig,
    slots: list[Any],
    instruments: list[InstrumentDefinition],
    exchange: Any,
    stop: asyncio.Event,
    log: Any,
    on_ready: Callable[[Path], None] | None,
    faults: list[Event],
    signer: Signer | None = None,
) -> Path:
    queue: asyncio.Queue[Event] = asyncio.Queue()
    perps = [i.instrument for i in instruments if i.kind == "perpetual"]
    feed = LiveFeed(exchange, list(options.symbols), perps, options.settings, queue.put_nowait, log)
    feed_task = asyncio.ensure_future(feed.run())
    deadline = time.monotonic() + options.duration if options.duration else None
    writer: JournalWriter | None = None
    try:
        early: list[Event] = list(faults)  # journaled at the session's first exchange time
        first = await _next(queue, feed_task, stop, deadline)
        while first is not None and first.ts == 0:  # the session starts at the first exchange time
            early.append(first)
            first = await _next(queue, feed_task, stop, deadline)
        if first is None:
            raise PaperError("no market data arrived before the session ended")
        prints = {
            "exchange": options.exchange,
            "markets": sha256_hex(canonical_json([msgspec.to_builtins(i) for i in instruments])),
        }
        if signer is not None:
            prints["signing_key"] = signer.fingerprint
        header = make_header(config, prints, first.ts, mode="paper")
        path = (
            Path(options.journal)
            if options.journal is not None
            else DEFAULT_RUNS_DIR / f"paper-{config.strategies[0].id}-{header.run_id}.journal"
        )
        writer = await JournalWriter.create(path, durability="full", overwrite=options.overwrite)
        if on_ready is not None:
            on_ready(path)
        engine = Engine(config, slots, live_market(config), sink=writer)
        engine.feed(header)
        for inst in instruments:
            engine.feed(msgspec.structs.replace(inst, ts=first.ts))
        for event in early:
            engine.feed(msgspec.structs.replace(event, ts=first.ts))
        await writer.flush()  # the header is durable before anything else arrives
        inputs = LiveInputs(queue, feed_task, stop, deadline)
        await live_loop(engine, writer, feed, first, inputs, options, log, signer, header.run_id)
        return path
    except (FeedError, BusFault, PaperError) as exc:
        if writer is not None:
            await seal_after(writer, exc)
        raise PaperError(str(exc)) from exc
    except BaseException as exc:
        if writer is not None:
            await seal_after(writer, exc)
        raise
    finally:
        feed_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):  # its error was handled above
            await feed_task


@dataclass
class LiveInputs:
    """Where a session's inputs come from, and when it ends."""

    queue: asyncio.Queue[Event]
    feed_task: asyncio.Future[None]
    stop: asyncio.Event
    deadline: float | None

    async def next(self, idle: Callable[[], Awaitable[None]] | None = None) -> Event | None:
        return await _next(self.queue, self.feed_task, self.stop, self.deadline, idle)


async def live_loop(
    engine: Engine,
    writer: JournalWriter,
    feed: LiveFeed,
    first: Event | None,
    inputs: LiveInputs,
    options: PaperOptions,
    log: Any,
    signer: Signer | None = None,
    run_id: str = "",
) -> None:
    """Feed live inputs (``first``, then the queue's) until the session ends,
    committing and showing the status every ``commit_every`` s (also while
    no input arrives) and journaling a signed checkpoint every
    ``checkpoint_every`` s and at the end; then finish the run and seal the
    journal ``finished``."""
    status = StatusLine(options.status)
    spec = engine.config.strategies[0]
    watch_path = Path(spec.strategy) if options.watch and Path(spec.strategy).is_file() else None
    reloader = _Reloader(watch_path, spec.id, dict(spec.params), log)
    bus = engine.bus
    last_commit = last_checkpoint = time.monotonic()

    def checkpoint() -> None:
        if signer is not None:
            engine.feed(signer.checkpoint(bus.now(), run_id, writer.last_seq, writer.head))

    async def housekeeping() -> None:
        nonlocal last_commit, last_checkpoint
        now = time.monotonic()
        if now - last_commit < options.commit_every:
            return
        last_commit = now
        if signer is not None and now - last_checkpoint >= options.checkpoint_every:
            last_checkpoint = now
            checkpoint()
        await writer.flush()
        status.show(engine, feed)
        reload = reloader.poll()
        if reload is not None:
            engine.feed(msgspec.structs.replace(reload, ts=bus.now()))

    event = first
    while event is not None:
        if event.ts < bus.now():
            event = msgspec.structs.replace(event, ts=bus.now())
        engine.feed(event)
        await housekeeping()
        event = await inputs.next(housekeeping)
    checkpoint()  # every input is signed; the outputs after it follow from them (replay proves it)
    engine.finish(STATUS_FINISHED)
    status.show(engine, feed, force=True)
    if options.status is not None:
        options.status.write("\n")
    await writer.close()


async def _next(
    queue: asyncio.Queue[Event],
    feed_task: asyncio.Future[None],
    stop: asyncio.Event,
    deadline: float | None,
    idle: Callable[[], Awaitable[None]] | None = None,
) -> Event | None:
    """The next input, or None when the session should end. Raises the
    feed's fatal error. At the end, inputs already received are still handed
    out (and so journaled) until the queue is empty: a loaded machine that
    fell behind the feed loses nothing it was sent. ``idle`` is awaited
    about every 0.1 s while no input arrives (the commit timer)."""
    while True:
        if idle is not None:
            await idle()
        if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
            return queue.get_nowait() if not queue.empty() else None
        if not queue.empty():
            return queue.get_nowait()
        if feed_task.done():
            error = feed_task.exception()
            if error is not None:
                raise error
            return None
        timeout = 0.1 if deadline is None else max(0.0, min(0.1, deadline - time.monotonic()))
        try:
            return await asyncio.wait_for(queue.get(), timeout)
        except TimeoutError:
            continue
