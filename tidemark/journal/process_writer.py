"""A journal writer whose hashing and disk writes run in a child process.

The simulation thread only buffers events (and runs of bars already encoded
from their columns). A full batch goes to the child as a few byte blobs: its
events in one msgpack call, with their causes, input flags, times and kind
codes, and the bar runs apart, each marked with where it goes. The child
(a reader thread drains the pipe as batches arrive) splices the runs back in
seq order, computes the chain hash of every record, writes blocks and
commits. On the 2-core development machine this takes BLAKE2b chaining and
SQLite off the simulation's core (a thread cannot: the hashing holds the
GIL). The records, chain and file are identical to
:class:`journal.writer.JournalWriter`'s; backtests use this writer, paper
sessions (low rates, durability FULL) use the in-process aiosqlite one.

Acknowledgement: :meth:`flush` returns once the child has committed every
record sent so far.

Lifetimes: the run's process takes the writer lock (:mod:`journal.lock`)
before the child starts; a forked child shares it. The child closes the
pipe ends it inherited but does not use, so the run's death reaches it as
the end of its input (it also checks that its parent still lives): it then
commits what it received, makes the journal one file and exits, leaving the
run unsealed for recovery. It ignores SIGINT, SIGHUP and SIGTERM, which a
terminal or a CI cancel send to the whole process group: the run decides
how to stop and asks it to seal (SIGKILL still ends it; the run then seals
the journal itself). A write that fails (a full disk) is reported to the run at its
next batch in one line; the child then only seals. If the child dies, the
run seals the journal itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import queue
import signal
import sqlite3
import threading
from array import array
from collections.abc import Sequence
from itertools import accumulate, repeat
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

import numpy as np

try:
    import fcntl
except ImportError:  # not on Windows
    fcntl = None  # type: ignore[assignment]

from tidemark.core.codec import DEFAULT_CODEC
from tidemark.core.events import SCHEMA_VERSION, TAGS, Event, RunFailed, RunStarted
from tidemark.core.series import BarBlock
from tidemark.journal.blocks import DecodedBlock
from tidemark.journal.child import child_context
from tidemark.journal.errors import JournalConfigError, JournalError, JournalWriteError, SequenceError
from tidemark.journal.lock import Placement, put_in_place, remove_journal_files, staging_path
from tidemark.journal.meta import STATUS_FAILED, STATUS_FINISHED, STATUS_RUNNING, header_meta
from tidemark.journal.projections import Projections, Projector
from tidemark.journal.records import (
    DDL,
    FORMAT_VERSION,
    GENESIS,
    INSERT_BLOCK,
    PAGE_SIZE,
    UPSERT_META,
    BlockRow,
    chain_hashes,
    msgpack_array_header,
    msgpack_array_header_size,
    split_payloads,
)
from tidemark.journal.seal import Sealed, append_final, consolidate, seal_file
from tidemark.journal.shared import SHARED_FORMAT, SHARED_KINDS, InputRecords, Stretches, head_of, market_inputs
from tidemark.journal.terminal import run_failed
from tidemark.journal.writer import DURABILITY, place_new_journal

BLOCK = 4096
INBOX_BATCHES = 16
"""Batches the writer process may hold read but not yet written (~1 MB each)."""
WAL_CHECKPOINT_PAGES = (16 << 20) // PAGE_SIZE
PARENT_CHECK: Final = 0.5
"""Seconds between the child's checks that the run's process still lives."""


class ProcessJournalWriter:
    """Bus sink; see the module docstring. Create with :meth:`create`."""

    def __init__(
        self, placement: Placement, process: Any, outbox: Connection, inbox: Connection, batch_size: int
    ) -> None:
        self.path = placement.path
        self._placement = placement
        self._process = process
        self._outbox = outbox
        self._inbox = inbox
        self._batch_size = batch_size
        self._encode = DEFAULT_CODEC.encoder.encode
        self._seq = 0
        self._first = 1
        # The batch being gathered: every event, with its cause and input
        # flag, in _events/_causes/_inputs; runs of bars already encoded in
        # _bar_runs as (events before the run, payloads, close times). Events
        # are encoded in one msgpack call when the batch is sent, and the
        # child splices the runs back in seq order (see _Batch).
        self._events: list[Event] = []
        self._causes: list[int] = []
        self._inputs: list[bool] = []
        self._bar_runs: list[tuple[int, bytes | memoryview, np.ndarray]] = []
        self._records = 0  # in the batch
        self._committed = 0
        self._head = GENESIS.hex()
        self._closed = False
        self._project = False
        self.sealed: Sealed | None = None
        self.projections: Projections | None = None
        """A finished run's read models, built by the child (``project=True``)."""
        self.projection_error = ""
        """Why the child could not build them (then read the file back)."""

    @classmethod
    async def create(
        cls,
        path: str | os.PathLike[str],
        *,
        durability: str = "normal",
        overwrite: bool = False,
        batch_size: int = 8_192,
        project: bool = False,
        inputs: str | os.PathLike[str] | None = None,
    ) -> ProcessJournalWriter:
        """``project``: the child also builds the run's read models
        (:class:`journal.projections.Projector`) from each block as it
        commits it, on its own core while the run goes on; a finished run's
        :attr:`projections` are then what reading the file back would give.
        ``inputs``: an input journal (:mod:`journal.shared`): each stretch of
        market inputs that are its next records is stored as a reference to
        them (the records, chain and head are the same)."""
        placement = place_new_journal(path, durability, overwrite)
        try:
            ctx = child_context()
            to_child_r, to_child_w = ctx.Pipe(duplex=False)
            _widen(to_child_w)
            from_child_r, from_child_w = ctx.Pipe(duplex=False)
            # A forked child holds copies of every pipe end: it closes the two it
            # does not use, or the run's death would never reach it as EOF.
            unused = (to_child_w, from_child_r) if ctx.get_start_method() == "fork" else ()
            process = ctx.Process(
                target=_child,
                args=(
                    str(placement.write_path),
                    durability,
                    to_child_r,
                    from_child_w,
                    unused,
                    os.getpid(),
                    project,
                    str(inputs) if inputs is not None else "",
                ),
                daemon=True,
            )
            process.start()
            to_child_r.close()
            from_child_w.close()
            try:
                reply = await asyncio.to_thread(from_child_r.recv)
            except (EOFError, OSError):
                reply = ("error", "open", f"{placement.path}: the journal writer process died at start")
            if reply[0] != "ready":
                process.join(5)
                raise _error(reply)
        except BaseException:
            placement.lock.release()
            raise
        writer = cls(placement, process, to_child_w, from_child_r, batch_size)
        writer._project = project
        return writer

    def record(self, seq: int, event: Event, is_input: bool, cause: int) -> None:
        """Buffer one event (the hot path: no encoding or hashing here).

        Events are immutable, so encoding them when the batch is sent gives
        the same bytes as encoding them now."""
        if seq != self._seq + 1:
            raise SequenceError(f"{self.path}: append of seq {seq} after {self._seq}")
        self._seq = seq
        self._events.append(event)
        self._causes.append(cause)
        self._inputs.append(is_input)

    def record_inputs(self, first: int, events: Sequence[Event]) -> None:
        """Buffer consecutive inputs ``first, first + 1, ...`` (a quiet stretch)."""
        if first != self._seq + 1:
            raise SequenceError(f"{self.path}: append of seq {first} after {self._seq}")
        n = len(events)
        self._seq = first + n - 1
        self._events.extend(events)
        self._causes.extend(repeat(0, n))
        self._inputs.extend(repeat(True, n))

    def record_bars(self, first: int, block: BarBlock, start: int, stop: int) -> None:
        """Buffer bars ``block[start:stop]`` as inputs ``first, first + 1, ...``,
        encoded straight from the block's columns (no Bar is built)."""
        payloads = block.encoded(start, stop)
        if payloads is None:
            self.record_inputs(first, block[start:stop])
            return
        if first != self._seq + 1:
            raise SequenceError(f"{self.path}: append of seq {first} after {self._seq}")
        self._seq = first + stop - start - 1
        self._bar_runs.append((len(self._events), payloads, block.times[start:stop]))
        self._records += stop - start

    @property
    def last_seq(self) -> int:
        return self._seq

    @property
    def committed_seq(self) -> int:
        return self._committed

    @property
    def head(self) -> bytes:
        return bytes.fromhex(self._head)

    async def pump(self) -> None:
        if self._records + len(self._events) >= self._batch_size:
            self._send()
            if self._inbox.poll():  # the child speaks unasked only to report a failed write
                raise self._gone()

    def _send(self) -> None:
        events, runs = self._events, self._bar_runs
        n = self._records + len(events)
        if not n:
            return
        try:
            encoded = self._encode(events)
        except Exception:
            self._send_until_unencodable()
            raise
        message = (
            "batch",
            self._first,
            n,
            encoded,
            array("q", self._causes).tobytes(),
            bytes(self._inputs),
            array("q", [event.ts for event in events]).tobytes(),
            bytes(map(_TYPE_CODES.__getitem__, map(type, events))),
            array("q", [x for before, payloads, times in runs for x in (before, len(times), len(payloads))]).tobytes(),
            b"".join([payloads for _, payloads, _ in runs]),
            b"".join([times.tobytes() for _, _, times in runs]),
        )
        self._first = self._seq + 1
        self._events, self._causes, self._inputs, self._bar_runs, self._records = [], [], [], [], 0
        try:
            self._outbox.send(message)
        except OSError:
            raise self._gone() from None

    def _gone(self) -> JournalWriteError:
        """Why the child stopped taking records: the error it reported if it
        did, else how its process ended."""
        with contextlib.suppress(EOFError, OSError):
            if self._inbox.poll(1.0):
                reply = self._inbox.recv()
                if reply[0] == "error":
                    return JournalWriteError(reply[2])
        self._process.join(1.0)
        code = self._process.exitcode
        how = "is gone" if code is None else f"died (signal {-code})" if code < 0 else f"exited ({code})"
        return JournalWriteError(f"{self.path}: the journal writer process {how}")

    def _send_until_unencodable(self) -> None:
        """Send the records before the first event that cannot be encoded and
        drop the rest (the run fails on the raise that follows: fail-stop)."""
        events = self._events
        for k, event in enumerate(events):
            try:
                self._encode(event)
            except Exception as exc:
                runs = [run for run in self._bar_runs if run[0] <= k]  # the bar runs before event k
                bars = sum(len(run[2]) for run in runs)
                seq = self._first + k + bars
                self._events, self._causes, self._inputs = events[:k], self._causes[:k], self._inputs[:k]
                self._bar_runs, self._records = runs, bars
                self._seq = seq - 1
                self._send()
                raise JournalError(f"{self.path}: seq {seq} ({type(event).__name__}) cannot be encoded: {exc}") from exc

    async def _ask(self, verb: str, *args: Any) -> tuple[Any, ...]:
        self._send()
        try:
            self._outbox.send((verb, *args))
            reply: tuple[Any, ...] = await asyncio.to_thread(self._inbox.recv)
        except (EOFError, OSError):
            raise self._gone() from None
        if reply[0] == "error":
            raise _error(reply)
        self._committed, self._head = reply[1], reply[2]
        return reply

    async def flush(self) -> int:
        await self._ask("flush")
        return self._committed

    async def close(self, status: str = STATUS_FINISHED, error: BaseException | None = None) -> Sealed:
        """Seal with ``status`` (a run that did not finish ends with a chained
        :class:`RunFailed` naming ``error``), one file, in place; the child
        does it, or this process if the child is gone (then the records it
        had not committed are lost, and the seal follows the last committed
        one)."""
        if self.sealed is not None or self._closed:
            if self.sealed is None:
                raise JournalWriteError(f"{self.path}: the writer was aborted")
            return self.sealed
        self._closed = True
        final = None if status == STATUS_FINISHED else run_failed(0, status, error)
        write_error: JournalWriteError | None = None
        try:
            try:
                reply = await self._ask("close", status, final)
                sealed = Sealed(self._placement.write_path, status, reply[1], reply[2], reply[3])
                if self._project:  # read before joining: the child waits until its reply is taken
                    try:
                        _, self.projections, self.projection_error = await asyncio.to_thread(self._inbox.recv)
                    except (EOFError, OSError):
                        self.projection_error = "the journal writer process died before sending the results"
            except JournalError as exc:
                if status == STATUS_FINISHED or error is None:
                    write_error = exc if isinstance(exc, JournalWriteError) else JournalWriteError(str(exc))
                    status, final = STATUS_FAILED, run_failed(0, STATUS_FAILED, write_error)
                await asyncio.to_thread(self._process.join, 10)
                if self._process.is_alive():
                    self._process.kill()
                    await asyncio.to_thread(self._process.join, 10)
                sealed = await asyncio.to_thread(seal_file, self._placement.write_path, status, final)
            else:
                await asyncio.to_thread(self._process.join, 30)
        except BaseException:
            self._placement.lock.release()
            raise
        finally:
            self._outbox.close()
            self._inbox.close()
        self.sealed = Sealed(self._placement.finish(ok=status == STATUS_FINISHED), *_fields(sealed)[1:])
        if write_error is not None:
            raise write_error
        return self.sealed

    async def abort(self) -> None:
        """Stop without sealing: the run stays ``running`` until recovered."""
        if self._closed:
            return
        self._closed = True
        self._process.kill()
        await asyncio.to_thread(self._process.join, 10)
        self._outbox.close()
        self._inbox.close()
        self._placement.lock.release()

    async def discard(self) -> None:
        """Stop and remove the journal: a run that failed before it started
        (bad parameters, a strategy whose ``on_init`` raised) leaves no
        journal, and a journal it would have replaced stays as it was."""
        if self._closed:
            return
        self._closed = True
        self._process.kill()
        await asyncio.to_thread(self._process.join, 10)
        self._outbox.close()
        self._inbox.close()
        self._placement.discard()


def _fields(sealed: Sealed) -> tuple[Any, ...]:
    return (sealed.path, sealed.status, sealed.events, sealed.head, sealed.one_file)


def _widen(conn: Connection) -> None:
    """Give the batch pipe a 1 MB buffer where Linux allows (default 64 KB):
    a batch then crosses in a few writes instead of dozens of context
    switches between the two processes."""
    setter = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl is not None else None
    if setter is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(conn.fileno(), setter, 1 << 20)


def _error(reply: tuple[Any, ...]) -> Exception:
    kind, message = reply[1], reply[2]
    if kind == "open":
        return JournalError(message)
    return JournalWriteError(message)


# -- the child ------------------------------------------------------------------------------------


def _child(
    path_text: str,
    durability: str,
    inbox: Connection,
    outbox: Connection,
    unused: tuple[Connection, ...],
    parent: int,
    project: bool = False,
    inputs: str = "",
) -> None:
    for end in unused:
        end.close()
    # The stop signals (a terminal's Ctrl-C and hang-up, a CI cancel's
    # SIGTERM) reach the whole process group: the run handles them and asks
    # for the seal, so nothing it sent is lost. (A forked child would
    # otherwise inherit the run's handlers, which only take a note.)
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    # A forked child inherits the run's heap: keep the collector off it (a
    # full collection would walk every inherited object and dirty its page).
    gc.freeze()
    path = Path(path_text)
    try:
        stretches = _stretches(inputs) if inputs else None
        conn = _create(path, durability)
        if stretches is not None:  # a run journal that refers to an input journal (staged: not in place yet)
            shared = {"format_version": SHARED_FORMAT, "inputs_head": stretches.records.head}
            conn.executemany(UPSERT_META, list(shared.items()))
        chain = _ChildChain(conn, path, durability, stretches)
    except Exception as exc:  # report, never hang the parent
        outbox.send(("error", "open", f"{path}: cannot create the journal: {_one_line(exc)}"))
        return
    outbox.send(("ready",))
    messages = _drained(inbox, parent)
    failed = ""
    projector = Projector(path) if project else None
    projection_error = ""
    try:
        while True:
            message = messages.get()
            if message is None:  # the run died: keep what was committed, as one file
                chain.close()
                _status_from_chain(path)
                consolidate(path)
                return
            verb = message[0]
            if verb == "batch":
                if not failed:
                    try:
                        rows = chain.write(*message[1:])
                    except (sqlite3.Error, OSError, JournalError) as exc:
                        failed = f"{path}: cannot write the journal: {_one_line(exc)}"
                        with contextlib.suppress(sqlite3.Error):
                            chain.conn.execute("ROLLBACK")
                        outbox.send(("error", "write", failed))
                    else:
                        if projector is not None:
                            try:
                                for row in rows:
                                    projector.feed(DecodedBlock(row))
                            except Exception as exc:  # the run goes on; its results are read back instead
                                projector, projection_error = None, _one_line(exc)
            elif verb == "flush":
                outbox.send(("error", "write", failed) if failed else ("ok", chain.committed, chain.prev.hex()))
            elif verb == "close":
                finished = not failed and message[1] == STATUS_FINISHED
                # The read models are finished in a thread while the seal
                # checkpoints the file (SQLite releases the GIL on its I/O).
                results = _Finishing(projector if project and finished else None, projection_error)
                seq, head, one_file = chain.seal(path, message[1], message[2])
                outbox.send(("ok", seq, head, one_file))
                if project:
                    results.send(outbox)
                return
    except Exception as exc:
        with contextlib.suppress(OSError):
            outbox.send(("error", "write", f"{path}: journal writer failed: {_one_line(exc)}"))
    finally:
        chain.close()


def _status_from_chain(path: Path) -> None:
    """The run died after its final record was committed but before the
    seal: meta's status follows the chain (else it stays ``running``)."""
    from tidemark.journal.repair import chain_status

    status = chain_status(path)
    if status is None:
        return
    with contextlib.suppress(sqlite3.Error):
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute(UPSERT_META, ("status", status))
        finally:
            conn.close()


class _Finishing:
    """The read models of everything committed, finished in a thread; then
    sent to the run (or None and why not)."""

    def __init__(self, projector: Projector | None, error: str) -> None:
        self.projections: Projections | None = None
        self.error = error
        self._thread: threading.Thread | None = None
        if projector is not None:
            self._thread = threading.Thread(target=self._finish, args=(projector,), name="journal-results", daemon=True)
            self._thread.start()

    def _finish(self, projector: Projector) -> None:
        try:
            self.projections = projector.finish()
        except Exception as exc:
            self.error = _one_line(exc)

    def send(self, outbox: Connection) -> None:
        if self._thread is not None:
            self._thread.join()
        projections, error = self.projections, self.error
        try:
            outbox.send(("projections", projections, error or ("" if projections is not None else "not built")))
        except Exception as exc:  # not picklable, or the pipe broke: the run reads its file back
            with contextlib.suppress(OSError):
                outbox.send(("projections", None, _one_line(exc)))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _drained(inbox: Connection, parent: int) -> queue.Queue[tuple[Any, ...] | None]:
    """Messages from the parent, read by a thread as soon as they arrive.

    The pipe holds about one batch; read only between batches, a commit that
    waits on the disk would stall the simulation's next send. None: the
    parent is gone (its end of the pipe closed, or it is no longer this
    process's parent). The queue is bounded, so a writer that cannot keep
    up still holds the parent back (its memory stays bounded)."""
    messages: queue.Queue[tuple[Any, ...] | None] = queue.Queue(INBOX_BATCHES)

    def read() -> None:
        while True:
            try:
                if not inbox.poll(PARENT_CHECK):
                    if os.getppid() != parent:
                        messages.put(None)
                        return
                    continue
                message = inbox.recv()
            except (EOFError, OSError):
                messages.put(None)
                return
            messages.put(message)
            if message[0] == "close":
                return

    threading.Thread(target=read, name="journal-inbox", daemon=True).start()
    return messages


def _stretches(inputs: str) -> Stretches:
    """The input journal at ``inputs``, to store references to (its head as
    its meta says; the run journal's verify checks its chain)."""
    path = Path(inputs)
    return Stretches(InputRecords(path, head_of(path)), BLOCK)


def _create(path: Path, durability: str) -> sqlite3.Connection:
    """A new journal for ``path`` (placed and locked by the parent), made at
    its staging path (:func:`~tidemark.journal.lock.staging_path`): tables
    and meta committed. :meth:`_ChildChain.write` puts it in place once the
    first batch, which starts with the run's header, is committed, so
    ``path`` never holds a half-made or headerless journal (seen once in the
    crash loop: killed between the tables and meta, the file had no format
    and verify called it damaged)."""
    staging = staging_path(path)
    remove_journal_files(staging)  # a creation that was killed (the path is locked: nobody else's)
    conn = sqlite3.connect(staging, isolation_level=None)
    conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # a new file: before WAL, which fixes it
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={DURABILITY[durability]}")
    conn.execute("PRAGMA busy_timeout=5000")
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    sync = conn.execute("PRAGMA synchronous").fetchone()[0]
    busy = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    if mode != "wal" or str(sync) != str(DURABILITY[durability]):
        conn.close()
        remove_journal_files(staging)
        raise JournalConfigError(f"SQLite gave journal_mode={mode} synchronous={sync}")
    meta = {
        "format_version": str(FORMAT_VERSION),
        "schema_version": str(SCHEMA_VERSION),
        "status": STATUS_RUNNING,
        "durability": durability,
        "head_seq": "0",
        "head_hash": GENESIS.hex(),
        "journal_mode": str(mode),
        "synchronous": str(sync),
        "busy_timeout": str(busy),
        "sqlite_version": sqlite3.sqlite_version,
        "writer": "process",
    }
    conn.execute("BEGIN")
    for statement in DDL.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.executemany(UPSERT_META, list(meta.items()))
    conn.execute("COMMIT")
    _checkpoint_every_16_mb(conn)
    return conn


def _checkpoint_every_16_mb(conn: sqlite3.Connection) -> None:
    """Checkpoint every ~16 MB of WAL rather than SQLite's default ~4 MB:
    each checkpoint syncs, and at the default they cost ~0.3 us per record of
    a backtest; much larger leaves a long checkpoint for the seal, which the
    run waits for. Durability is unchanged."""
    conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")


def _reopen(path: Path, durability: str) -> sqlite3.Connection:
    """The journal just put in place, opened again to append."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute(f"PRAGMA synchronous={DURABILITY[durability]}")
    _checkpoint_every_16_mb(conn)
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":  # WAL is the file's own setting
        raise JournalConfigError(f"{path}: not in WAL mode after creation")
    return conn


class _ChildChain:
    """The child's end of one journal: chains and commits batches, puts a
    new journal in place after its first commit, seals it."""

    def __init__(
        self, conn: sqlite3.Connection, path: Path, durability: str, stretches: Stretches | None = None
    ) -> None:
        self.conn = conn
        self.path = path
        self.durability = durability
        self.stretches = stretches
        self.staged = True
        self.prev = GENESIS
        self.committed = 0

    def put_in_place(self) -> None:
        """Close the staged journal (SQLite folds its WAL), move it to its
        path and reopen it there; nothing if it is in place already."""
        if not self.staged:
            return
        self.conn.close()
        put_in_place(self.path)
        self.staged = False
        self.conn = _reopen(self.path, self.durability)

    def close(self) -> None:
        """Close the connection, leaving the journal in place (a run that
        died before its first batch leaves its header-less journal there,
        as verify and resume expect of a run that wrote nothing)."""
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()
        if self.staged:
            with contextlib.suppress(OSError):
                put_in_place(self.path)
            self.staged = False

    def write(self, first: int, n: int, *parts: bytes) -> list[BlockRow]:
        """Chain and commit one batch; returns its block rows."""
        batch = _Batch(n, *parts)
        encoded = batch.payloads()
        payloads = split_payloads(encoded)  # views into ``encoded``, one per record
        if len(payloads) != n:
            raise JournalError(f"batch at seq {first}: {len(payloads)} payloads for {n} records")
        lengths = array("I", map(len, payloads))
        body = encoded[len(encoded) - sum(lengths) :]
        causes, flags, stamps, kind_codes = batch.columns()
        prev = self.prev
        hashes = chain_hashes(prev, first, payloads, causes, flags)
        if hashes:
            prev = hashes[-1]
        meta: dict[str, str] = {}
        if first == 1 and kind_codes[:1] == _KIND_CODE_BYTE["start"]:
            header = DEFAULT_CODEC.decode(body[: lengths[0]])
            if isinstance(header, RunStarted):
                meta.update(header_meta(header))
        rows = []
        offset = 0
        for start in range(0, n, BLOCK):
            stop = min(start + BLOCK, n)
            size = sum(lengths[start:stop])
            rows.append(
                (
                    first + start,
                    stop - start,
                    int(stamps[start]),
                    int(stamps[stop - 1]),
                    _kind_counts(kind_codes[start:stop]),
                    msgpack_array_header(stop - start) + body[offset : offset + size],
                    lengths[start:stop].tobytes(),
                    causes[start:stop].tobytes(),
                    flags[start:stop],
                    b"".join(hashes[start:stop]),
                )
            )
            offset += size
        meta["head_seq"] = str(first + n - 1)
        meta["head_hash"] = prev.hex()
        stored = (
            rows
            if self.stretches is None
            else self._with_references(first, body, lengths, causes, flags, hashes, stamps, kind_codes)
        )
        conn = self.conn
        conn.execute("BEGIN")
        conn.executemany(INSERT_BLOCK, stored)
        conn.executemany(UPSERT_META, list(meta.items()))
        conn.execute("COMMIT")
        self.prev = prev
        self.committed = first + n - 1
        self.put_in_place()
        return rows

    def _with_references(
        self,
        first: int,
        body: bytes | memoryview,
        lengths: array[int],
        causes: array[int],
        flags: bytes,
        hashes: list[bytes],
        stamps: np.ndarray,
        kind_codes: bytes,
    ) -> list[BlockRow]:
        """The batch's rows as stored with an input journal: its market inputs
        that are the input journal's next records as references to them."""
        assert self.stretches is not None
        cause = np.frombuffer(causes, dtype=np.int64)
        market = market_inputs(flags, cause, np.isin(np.frombuffer(kind_codes, dtype=np.uint8), _SHARED_CODES), first)
        return self.stretches.rows(
            first,
            body,
            np.frombuffer(lengths, dtype=np.uint32),
            cause,
            flags,
            b"".join(hashes),
            stamps,
            lambda i, j: _kind_counts(kind_codes[i:j]),
            market,
        )

    def seal(self, path: Path, status: str, final: RunFailed | None) -> tuple[int, str, bool]:
        """The final record and status, then one file: ``(last seq, head, one file)``."""
        self.put_in_place()
        seq, head = append_final(self.conn, status, final)
        self.conn.close()
        if self.stretches is not None:
            self.stretches.close()
        return seq, head, consolidate(path)


KIND_CODES: Final = tuple(sorted(TAGS.values()))
"""Kinds as they cross the pipe: one byte per record, the kind's index here."""
assert len(KIND_CODES) <= 256
_KIND_CODE_BYTE = {kind: bytes([code]) for code, kind in enumerate(KIND_CODES)}
_TYPE_CODES = {cls: KIND_CODES.index(kind) for cls, kind in TAGS.items()}


def _kind_counts(codes: bytes) -> str:
    """``kind=count`` pairs of a block's records, as :func:`kind_counts` writes them."""
    counts = np.bincount(np.frombuffer(codes, dtype=np.uint8), minlength=len(KIND_CODES))
    return ",".join(f"{KIND_CODES[code]}={counts[code]}" for code in np.flatnonzero(counts).tolist())


_BAR_CODE = _KIND_CODE_BYTE["bar"]
_SHARED_CODES = np.array([KIND_CODES.index(kind) for kind in sorted(SHARED_KINDS)], dtype=np.uint8)


class _Batch:
    """One batch as the parent sends it: its events (a msgpack array) with
    their causes, input flags, times and kind codes; and the runs of bars
    encoded apart, each as (events recorded before it, bars, payload bytes),
    with their payloads and close times back to back."""

    def __init__(
        self,
        n: int,
        events: bytes,
        causes: bytes,
        inputs: bytes,
        times: bytes,
        kinds: bytes,
        runs: bytes,
        bar_payloads: bytes,
        bar_times: bytes,
    ) -> None:
        self.n = n
        self.events = events
        self.causes = np.frombuffer(causes, dtype=np.int64)
        self.inputs = np.frombuffer(inputs, dtype=np.uint8)
        self.times = np.frombuffer(times, dtype=np.int64)
        self.kinds = np.frombuffer(kinds, dtype=np.uint8)
        self.runs = np.frombuffer(runs, dtype=np.int64).reshape(-1, 3)
        self.bar_payloads = bar_payloads
        self.bar_times = np.frombuffer(bar_times, dtype=np.int64)
        count = len(self.kinds)
        if count + len(self.bar_times) != n or int(self.runs[:, 1].sum()) != len(self.bar_times):
            raise JournalError(f"batch of {n} records holds {count} events and {len(self.bar_times)} bars")
        # an event's place in seq order: its index plus the bars of the runs ahead of it
        ahead = np.bincount(self.runs[:, 0], weights=self.runs[:, 1], minlength=count + 1).cumsum()
        self.at = np.arange(count, dtype=np.int64) + ahead[:count].astype(np.int64)

    def payloads(self) -> bytes:
        """The ``n`` payloads in seq order, as one msgpack array."""
        if not len(self.runs):
            return self.events
        events = split_payloads(self.events)
        cuts = list(accumulate(map(len, events), initial=msgpack_array_header_size(len(events))))
        view, bars = memoryview(self.events), memoryview(self.bar_payloads)
        parts: list[bytes | memoryview] = [msgpack_array_header(self.n)]
        done = used = 0
        for k, _, size in self.runs.tolist():
            parts.append(view[cuts[done] : cuts[k]])
            parts.append(bars[used : used + size])
            done, used = k, used + size
        parts.append(view[cuts[done] :])
        return b"".join(parts)

    def columns(self) -> tuple[array[int], bytes, np.ndarray, bytes]:
        """Per record in seq order: causes, input flags, times, kind codes
        (bars: cause 0, input, their close time, kind bar)."""
        at = self.at
        is_bar = np.ones(self.n, dtype=bool)
        is_bar[at] = False
        causes = np.zeros(self.n, dtype=np.int64)
        causes[at] = self.causes
        flags = np.ones(self.n, dtype=np.uint8)
        flags[at] = self.inputs
        times = np.empty(self.n, dtype=np.int64)
        times[at] = self.times
        times[is_bar] = self.bar_times
        kinds = np.full(self.n, _BAR_CODE[0], dtype=np.uint8)
        kinds[at] = self.kinds
        cause_array = array("q")
        cause_array.frombytes(causes.tobytes())
        return cause_array, flags.tobytes(), times, kinds.tobytes()
