"""``tidemark paper --resume JOURNAL``: continue a paper session that crashed.

A session killed mid-run (power loss, SIGKILL, OOM) leaves its journal
``running``. Resuming it:

1. reopens the journal for appending (:meth:`JournalWriter.resume` verifies
   the hash chain and seals it ``crashed-recovered``; a journal that fails
   verification is quarantined and not resumed);
2. rebuilds the actor graph from the header and feeds it every journaled
   input, checking each regenerated output against the journal byte for
   byte, so positions, orders, strategy state and bars are exactly what they
   were. Outputs the crash cut off (an input was committed but not all of
   its consequences) are regenerated and appended;
3. journals a ``FeedGap`` (reason :data:`~core.bars.SESSION_RESUMED`) per
   instrument: books are stale until a fresh snapshot arrives, and bar
   building starts over rather than invent flat bars for the outage;
4. goes live again, appending to the same journal with the seq numbering
   unbroken, until ``duration``, ``stop`` or SIGINT, and seals it.

Replay of the resumed journal is one run: ``tidemark replay --check`` covers
the session before and after the crash. A funding time missed during the
outage is reported ``FundingUnavailable`` (and its fallback applied) like any
other missing rate. ccxt options come from the journal's header (secrets were
masked there, so give them again if needed) with the caller's on top.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from tidemark.adapters import logs
from tidemark.adapters.backtest import engine_from_journal
from tidemark.adapters.fetch import merge_options
from tidemark.adapters.live_feed import FeedError, FeedSettings, LiveFeed, wall_ns
from tidemark.adapters.paper import (
    LiveInputs,
    PaperError,
    PaperOptions,
    _markets,
    live_loop,
    load_signer,
    make_exchange,
    secret_values,
)
from tidemark.adapters.secrets import credentials_from_env
from tidemark.adapters.stop import LoopStopSignals
from tidemark.core import config as cfg
from tidemark.core.bars import SESSION_RESUMED
from tidemark.core.bus import BusFault
from tidemark.core.engine import Engine
from tidemark.core.events import Event, FeedGap, InstrumentDefinition, RunFailed, RunFinished, RunStarted
from tidemark.journal.blocks import DecodedBlock, decode_blocks
from tidemark.journal.reader import JournalReader
from tidemark.journal.replay import Divergence, ReplayComparer
from tidemark.journal.signing import Signer
from tidemark.journal.terminal import seal_after
from tidemark.journal.writer import JournalIntegrityError, JournalWriter


class _CatchUp(ReplayComparer):
    """Checks regenerated events against the journal while it has them, then
    appends what comes after (the outputs a crash cut off, then live data)."""

    def __init__(self, blocks: list[DecodedBlock], writer: JournalWriter) -> None:
        super().__init__(blocks)
        self.writer = writer

    def record(self, seq: int, event: Event, is_input: bool, cause: int) -> None:
        if seq > self.last_seq:
            if not self.exhausted:
                self.finish()  # everything the journal holds matched before anything is appended
            self.writer.record(seq, event, is_input, cause)
        else:
            super().record(seq, event, is_input, cause)


def unmasked(options: dict[str, Any]) -> dict[str, Any]:
    """Recorded ccxt options without the masked (``***``) credentials."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, dict):
            out[key] = unmasked(value)
        elif value != "***":
            out[key] = value
    return out


def _catch_up(
    path: Path, writer: JournalWriter
) -> tuple[Engine, cfg.RunConfig, list[InstrumentDefinition], RunStarted]:
    """The session's graph, rebuilt from its journal up to the crash."""
    with JournalReader(path) as reader:
        blocks = decode_blocks(reader)
        if not blocks or not isinstance(blocks[0].event(0), RunStarted):
            raise PaperError(f"{path}: seq 1 is not a run header")
        header = blocks[0].event(0)
        last = blocks[-1].event(-1)
        if isinstance(last, (RunFinished, RunFailed)):
            raise PaperError(f"{path}: the session ended ({last.status}); only an unfinished session can be resumed")
        config = cfg.parse_stored(json.loads(header.config))
        if config.paper is None:
            raise PaperError(f"{path}: not a paper session (mode {header.mode!r})")
        sink = _CatchUp(blocks, writer)
        engine = engine_from_journal(reader, blocks, sink)
    instruments = []
    try:
        for block in blocks:
            flags, events = block.flags, block.events
            for i in range(len(events)):
                if flags[i]:
                    engine.feed(events[i])
                    if type(events[i]) is InstrumentDefinition:
                        instruments.append(events[i])
    except (BusFault, Divergence) as exc:
        error = exc.error if isinstance(exc, BusFault) else exc
        raise PaperError(f"{path}: the journal does not replay, cannot resume: {error}") from None
    try:
        sink.check()
    except Divergence as exc:
        raise PaperError(f"{path}: the journal does not replay, cannot resume: {exc}") from None
    if not sink.exhausted:
        seq, _ = sink.next_record()
        raise PaperError(f"{path}: the journal does not replay, cannot resume: seq {seq} was not regenerated")
    return engine, config, instruments, header


async def resume_paper(
    path: str | os.PathLike[str],
    *,
    duration: float | None = None,
    ccxt_options: dict[str, Any] | None = None,
    watch: bool = False,
    status: TextIO | None = None,
    settings: FeedSettings | None = None,
    commit_every: float = 0.25,
    stop: asyncio.Event | None = None,
    exchange: Any = None,
    on_ready: Callable[[Path], None] | None = None,
    signing_key: str | os.PathLike[str] | None = None,
    checkpoint_every: float = 5.0,
) -> Path:
    """Continue the crashed paper session journaled at ``path``; returns it.
    A session that signed checkpoints goes on signing them, with its key."""
    path = Path(path)
    log = logs.get("paper")
    signer = load_signer(signing_key)
    try:
        writer = await JournalWriter.resume(path)
    except (JournalIntegrityError, FileNotFoundError) as exc:
        raise PaperError(str(exc)) from None
    except OSError as exc:
        raise PaperError(f"{path}: {exc}") from None
    try:
        recovered_after = writer.last_seq
        engine, config, instruments, header = _catch_up(path, writer)
        _check_signer(path, header, signer)
    except BaseException:
        await writer.abort()
        raise
    paper = config.paper
    assert paper is not None
    options = merge_options(merge_options(credentials_from_env(), unmasked(paper.ccxt_options)), ccxt_options or {})
    for value in secret_values(options):
        logs.register_secret(value)
    # Depth and transport are the session's own (the journal holds that depth).
    settings = replace(settings or FeedSettings(), depth=paper.book_depth, websocket=paper.websocket)
    symbols = config.all_symbols()
    session = PaperOptions(
        paper.exchange,
        symbols,
        duration=duration,
        journal=path,
        watch=watch,
        commit_every=commit_every,
        status=status,
        checkpoint_every=checkpoint_every,
    )
    log.warning("session_resumed", journal=str(path), after_seq=recovered_after, replayed_to=engine.bus.seq)
    stop = stop or asyncio.Event()
    own_exchange = exchange is None
    signals = LoopStopSignals(asyncio.get_running_loop(), stop)
    feed_task: asyncio.Future[None] | None = None
    try:
        exchange = exchange if exchange is not None else make_exchange(paper.exchange, options)
        signals.__enter__()
        await _markets(exchange, settings.retries, log)
        if on_ready is not None:
            on_ready(path)
        bus = engine.bus
        for symbol in symbols:
            detail = f"session resumed after a crash; journal recovered at seq {recovered_after}"
            engine.feed(FeedGap(bus.now(), symbol, SESSION_RESUMED, detail, False, wall_ns()))
        await writer.flush()
        queue: asyncio.Queue[Event] = asyncio.Queue()
        perps = [i.instrument for i in instruments if i.kind == "perpetual"]
        feed = LiveFeed(exchange, symbols, perps, settings, queue.put_nowait, log)
        feed_task = asyncio.ensure_future(feed.run())
        deadline = time.monotonic() + duration if duration else None
        inputs = LiveInputs(queue, feed_task, stop, deadline)
        first = await inputs.next()
        await live_loop(engine, writer, feed, first, inputs, session, log, signer, header.run_id)
        return path
    except (FeedError, BusFault, PaperError) as exc:
        await seal_after(writer, exc)
        raise PaperError(str(exc)) from exc
    except BaseException as exc:
        await seal_after(writer, exc)
        raise
    finally:
        if feed_task is not None:
            feed_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await feed_task
        signals.__exit__()
        if own_exchange and exchange is not None:
            await exchange.close()


def _check_signer(path: Path, header: RunStarted, signer: Signer | None) -> None:
    """A session that signs goes on signing with the same key."""
    named = json.loads(header.fingerprints).get("signing_key")
    if named is None:
        return
    if signer is None:
        raise PaperError(f"{path}: the session signs checkpoints with {named}: give its key (--signing-key)")
    if signer.fingerprint != named:
        raise PaperError(f"{path}: the session signs with {named}, not with the key given ({signer.fingerprint})")
