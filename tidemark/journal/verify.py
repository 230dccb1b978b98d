"""Verify a journal: SQLite integrity, seq continuity 1..N, the whole chain,
and that everything the ``meta`` table says is what the chain says.

The first problem found is reported with the exact seq of the first bad
record. Checks, in order: SQLite ``integrity_check``; each block starts at the
expected seq and its columns agree in length; every payload decodes; every
record's chain hash recomputes; event times never go backwards and agree with
the block's time range and kind counts; the records reach the head recorded
in ``meta`` (detects a truncated tail); ``meta``'s run header fields and
status are those of the chain's first and last records
(:func:`journal.meta.meta_problem`).

Beyond the chain (what each proves: the README's journal section):

* an *anchor* (``expect_head``): a chain hash taken earlier, from the
  writer's output or a copy; the chain must pass through it, which no
  rewrite of a record at or before it can keep;
* *signed checkpoints* (``public_key``): every :class:`Checkpoint` record
  must carry a valid signature of the key the run header names over the
  hash of the record before it.

Verify never raises on the file's contents: the report says what is wrong.
A journal whose writer is still running (its lock is held) is reported as
being written, never as damaged for lacking what is not committed yet.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
from array import array
from collections import Counter
from dataclasses import asdict, dataclass
from hashlib import blake2b
from multiprocessing.connection import Connection
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from tidemark.core.codec import DEFAULT_CODEC, EventDecodeError
from tidemark.core.events import TAGS, Checkpoint, Event, RunStarted
from tidemark.core.text import plural
from tidemark.journal.child import child_context
from tidemark.journal.errors import JournalDecodeError
from tidemark.journal.lock import being_written
from tidemark.journal.meta import UNSEALED, meta_problem
from tidemark.journal.records import (
    BLOCK_COLUMNS,
    GENESIS,
    HASH_SIZE,
    PAYLOAD_HEADS,
    READABLE_FORMATS,
    PayloadHead,
    chain_hashes,
    pack_header,
    parse_kind_counts,
    split_block,
    split_payloads,
)
from tidemark.journal.shared import InputRecords, JournalInputsError, find_inputs, full_row, is_reference, meta_value

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

BEING_WRITTEN = "being written"


@dataclass(frozen=True)
class VerifyReport:
    """What verify found. ``events``: records verified (all of them if
    ``ok``); ``head``: the chain hash of the last one; ``first_bad_seq``:
    the first bad record (None if the problem is not a record's, e.g. the
    meta table's); ``status``: meta's status, or ``being written``;
    ``anchor_seq``: where the chain passes through ``expect_head``;
    ``signed_through``: the last seq a valid signed checkpoint covers."""

    ok: bool
    events: int
    head: str
    first_bad_seq: int | None = None
    problem: str = ""
    status: str = ""
    live: bool = False
    anchor_seq: int | None = None
    checkpoints: int = 0
    signed_through: int | None = None

    @property
    def message(self) -> str:
        if self.ok:
            return f"ok: {plural(self.events, 'event')}, head {self.head}"
        problem = "; ".join(line.strip() for line in self.problem.splitlines() if line.strip())
        if self.first_bad_seq is None:
            return problem
        return f"first bad seq {self.first_bad_seq}: {problem}"

    @property
    def sealed(self) -> bool:
        """The run's last record ends it (finished, failed, interrupted)."""
        return self.status not in UNSEALED and self.status != BEING_WRITTEN

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["problem"] = self.problem or None
        out["sealed"] = self.sealed
        return out


@dataclass(frozen=True)
class Expectations:
    """What a verify is asked to prove beyond the chain (see the module docstring)."""

    expect_head: str | None = None
    public_key: str | None = None
    """Path of the public key file."""


class BackgroundVerify:
    """:func:`verify` in a child process, so a caller can read the journal
    on this core meanwhile (replay --check, and every read command: the two
    together take about as long as the longer of the two)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        integrity_check: bool = True,
        decode: bool = True,
        expect: Expectations | None = None,
    ) -> None:
        # A run journal's input journal is found here, where --inputs named it
        # (a spawned child would not know).
        self._args = (str(path), integrity_check, decode, expect, _inputs_named(Path(path)))
        self._process: Any = None
        if multiprocessing.current_process().daemon:
            return  # a daemon (a Dask worker) may not start a child: verify here, in result()
        ctx = child_context()
        self._reply, reply_to = ctx.Pipe(duplex=False)
        self._process = ctx.Process(target=_verify_child, args=(*self._args, reply_to), daemon=True)
        self._process.start()
        reply_to.close()

    def result(self) -> VerifyReport:
        """The child's report (it may raise as :func:`verify` does); if the
        child died without one, the journal is verified here instead."""
        if self._process is None:
            path, integrity_check, decode, expect, inputs = self._args
            return verify(path, integrity_check=integrity_check, decode=decode, expect=expect, inputs=inputs)
        try:
            reply = self._reply.recv()
        except (EOFError, OSError):
            reply = None
        finally:
            self.close()
        if reply is None:
            path, integrity_check, decode, expect, inputs = self._args
            return verify(path, integrity_check=integrity_check, decode=decode, expect=expect, inputs=inputs)
        if isinstance(reply, BaseException):
            raise reply
        assert isinstance(reply, VerifyReport)
        return reply

    def close(self) -> None:
        """Stop the child if it still runs (idempotent)."""
        if self._process is None:
            return
        self._reply.close()
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()


def _inputs_named(path: Path) -> Path | None:
    """The input journal a run journal at ``path`` would read (None: none, or not found)."""
    try:
        head = meta_value(path, "inputs_head")
        return None if head is None else find_inputs(path, head)
    except (JournalInputsError, OSError):
        return None  # verify reports it


def _verify_child(
    path: str,
    integrity_check: bool,
    decode: bool,
    expect: Expectations | None,
    inputs: Path | None,
    reply_to: Connection,
) -> None:
    try:
        reply: VerifyReport | Exception = verify(
            path, integrity_check=integrity_check, decode=decode, expect=expect, inputs=inputs
        )
    except Exception as exc:  # FileNotFoundError, or a bug: the parent raises it
        reply = exc
    try:
        reply_to.send(reply)
    except Exception as exc:  # an exception that does not pickle
        reply_to.send(RuntimeError(f"{path}: verify failed: {exc!r}"))
    finally:
        reply_to.close()


class _Bad(Exception):
    def __init__(self, seq: int, problem: str) -> None:
        self.seq = seq
        self.problem = problem


def verify(
    path: str | os.PathLike[str],
    *,
    integrity_check: bool = True,
    decode: bool = True,
    expect: Expectations | None = None,
    inputs: str | os.PathLike[str] | None = None,
) -> VerifyReport:
    """Check one journal end to end (``inputs``: a run journal's input
    journal, when it is not beside it; see :mod:`journal.shared`). A damaged journal never raises: the
    report says what is wrong. A missing file raises FileNotFoundError; a
    public key that cannot be read, :class:`SigningKeyError`.

    ``decode=False`` reads only each payload's tag and time instead of
    decoding it, for a caller that decodes every payload itself (replay
    --check: a payload that does not decode cannot replay identical)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such journal")
    expect = expect or Expectations()
    public = None
    if expect.public_key is not None:
        from tidemark.journal.signing import load_public_key

        public = load_public_key(expect.public_key)
    live = being_written(path)
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return VerifyReport(False, 0, GENESIS.hex(), 1, f"cannot open: {exc}")
    # Text that is not UTF-8 (a flipped byte in meta or in a block's kinds)
    # reads with U+FFFD in place of the bad bytes, so the check that reads
    # it reports the damage where it is (sqlite3 would raise, and on some
    # rows raised UnicodeDecodeError rather than a DatabaseError).
    conn.text_factory = _lenient_text
    records: InputRecords | None = None
    try:
        conn.execute("BEGIN")  # one snapshot of meta and blocks while a writer appends
        records, problem = _inputs_of(path, conn, integrity_check, Path(inputs) if inputs is not None else None)
        if problem:
            report = VerifyReport(False, 0, GENESIS.hex(), None, problem, _status(conn), live)
        else:
            report = _verify(conn, integrity_check, decode, expect.expect_head, public, live, records)
    except SQLITE_FAULTS as exc:
        report = VerifyReport(False, 0, GENESIS.hex(), 1, f"SQLite error: {_said(exc)}")
    finally:
        conn.close()
        if records is not None:
            records.close()
    if live and not report.ok and report.events == 0 and report.first_bad_seq == 1 and "journal" in report.problem:
        # created, but its tables or meta not committed yet: being written, not damaged
        return VerifyReport(True, 0, GENESIS.hex(), status=BEING_WRITTEN, live=True)
    if live and report.ok:
        return VerifyReport(**{**asdict(report), "status": BEING_WRITTEN, "live": True})
    return report


SQLITE_FAULTS = (sqlite3.DatabaseError, UnicodeDecodeError)
"""What reading a damaged file raises. A damaged schema can put bytes that
are not UTF-8 into SQLite's own error message, which sqlite3 decodes
strictly (UnicodeDecodeError instead of a DatabaseError)."""


def _said(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"its message is not UTF-8 ({exc.object[:80]!r})"
    return str(exc)


def _lenient_text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _status(conn: sqlite3.Connection) -> str:
    row = conn.execute("SELECT value FROM meta WHERE key = 'status'").fetchone()
    return "" if row is None else str(row[0])


def _inputs_of(
    path: Path, conn: sqlite3.Connection, integrity_check: bool, given: Path | None
) -> tuple[InputRecords | None, str]:
    """A run journal's input journal, verified and the one it names:
    ``(its records, '')``, or ``(None, the problem)``; ``(None, '')`` for a
    journal that holds all its records."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'inputs_head'").fetchone()
    except SQLITE_FAULTS:
        return None, ""  # _verify reports the damaged meta
    if row is None:
        return None, ""
    head = str(row[0])
    try:
        found = find_inputs(path, head, given)
    except JournalInputsError as exc:
        return None, str(exc).removeprefix(f"{path}: ")
    stat = found.stat()
    key = (str(found.resolve()), stat.st_mtime_ns, stat.st_size, head)
    if key not in _VERIFIED_INPUTS:
        inner = verify(found, integrity_check=integrity_check)
        if not inner.ok or inner.status != "finished":
            return None, f"its input journal {found}: {inner.message or inner.status}"
        if inner.head != head:
            return None, f"its input journal {found} has head {inner.head[:16]}..., not {head[:16]}... as the run read"
        _VERIFIED_INPUTS.add(key)
    return InputRecords(found, head), ""


_VERIFIED_INPUTS: set[tuple[str, int, int, str]] = set()
"""Input journals verified by this process, by path, modification time,
size and head: the runs of a sweep share one, verified once."""


def _verify(
    conn: sqlite3.Connection,
    integrity_check: bool,
    decode: bool,
    expect_head: str | None,
    public: Ed25519PublicKey | None,
    live: bool,
    inputs: InputRecords | None = None,
) -> VerifyReport:
    try:
        meta = {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}
    except SQLITE_FAULTS as exc:
        return VerifyReport(False, 0, GENESIS.hex(), 1, f"not a tidemark journal ({_said(exc)})", live=live)
    status = meta.get("status", "")
    fmt = meta.get("format_version")
    if fmt not in READABLE_FORMATS:
        problem = f"not a tidemark journal of a known format (format_version {fmt!r})"
        return VerifyReport(False, 0, GENESIS.hex(), 1, problem, status, live)
    if integrity_check:
        result = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
        if result != ["ok"]:
            found = "; ".join(line for text in result[:3] for line in text.splitlines() if line.strip())
            return VerifyReport(False, 0, GENESIS.hex(), 1, f"SQLite integrity_check: {found}", status, live)
    anchor = _anchor(expect_head)
    if expect_head is not None and anchor is None:
        return VerifyReport(False, 0, GENESIS.hex(), None, f"--expect-head {expect_head[:80]!r} is not a chain hash")
    state = _Chain(decode, anchor, public)
    try:
        rows = conn.execute(f"SELECT {BLOCK_COLUMNS} FROM blocks ORDER BY first_seq")
        while True:
            try:
                row = rows.fetchone()
            except SQLITE_FAULTS as exc:  # a damaged page met while reading on
                raise _Bad(state.expected, f"SQLite error: {_said(exc)}") from None
            if row is None:
                break
            if inputs is not None and is_reference(row):
                state.check_block(_referenced(row, inputs, state), chained=True)
            else:
                state.check_block(row)
        count = state.expected - 1
        header, last = state.ends()
    except _Bad as bad:
        return VerifyReport(False, bad.seq - 1, state.prev.hex(), bad.seq, bad.problem, status, live)
    found = state.report(count, status, live)
    head_text = meta.get("head_seq", "0") or "0"
    if not (head_text.isascii() and head_text.isdigit()):
        problem = f"head_seq in meta is not a seq: {head_text[:40]!r}"
        return found(False, count + 1, problem)
    head_seq = int(head_text)
    if count < head_seq:
        return found(False, count + 1, f"truncated: records end at {count}, head is {head_seq}")
    if count > head_seq:
        # Verified as far as meta's head: the report ends there, at that record's hash.
        return VerifyReport(
            False,
            head_seq,
            _hash_of(conn, head_seq).hex(),
            head_seq + 1,
            f"records beyond the recorded head {head_seq}",
            status,
            live,
            state.anchor_seq if state.anchor_seq is None or state.anchor_seq <= head_seq else None,
            state.checkpoints,
            state.signed_through,
        )
    if meta.get("head_hash", GENESIS.hex()) != state.prev.hex():
        return found(False, count, "head hash in meta disagrees with the chain")
    problem = meta_problem(meta, header, last, count, int(fmt or 0))
    if problem:
        return found(False, None, problem)
    if anchor is not None and state.anchor_seq is None:
        return found(False, None, f"the chain does not pass through the expected head {anchor.hex()}")
    if public is not None and not state.checkpoints:
        return found(False, None, "no signed checkpoints in the journal")
    return found(True, None, "")


def _referenced(row: tuple[Any, ...], inputs: InputRecords, state: _Chain) -> tuple[Any, ...]:
    """The records a reference row stands for, chained from the verified
    ones: the chain must end at the row's one stored hash (else the
    reference, or its hash, was altered: the input journal verified)."""
    first = row[0]
    if first != state.expected:
        state.check_block(row)  # names the gap or the misplaced row
    stored = row[9]
    if not isinstance(stored, bytes) or len(stored) != HASH_SIZE:
        raise _Bad(int(first), "a reference to the input journal without its one chain hash")
    try:
        full = full_row(row, inputs, state.prev)
    except JournalInputsError as exc:
        raise _Bad(int(first), f"reference to the input journal: {exc}") from None
    if full[9][-HASH_SIZE:] != stored:
        raise _Bad(
            int(first),
            f"hash chain broken: the input journal's records {int.from_bytes(row[7], 'little')}.. "
            f"do not chain to the hash stored for seqs {first}..{first + row[1] - 1}",
        )
    return full


def _hash_of(conn: sqlite3.Connection, seq: int) -> bytes:
    """The stored chain hash of record ``seq`` (the chain verified through it)."""
    if seq < 1:
        return GENESIS
    row = conn.execute(
        "SELECT first_seq, hashes FROM blocks WHERE first_seq <= ? ORDER BY first_seq DESC LIMIT 1", (seq,)
    ).fetchone()
    first, hashes = int(row[0]), bytes(row[1])
    return hashes[HASH_SIZE * (seq - first) : HASH_SIZE * (seq - first + 1)]


def _anchor(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        anchor = bytes.fromhex(text.strip())
    except ValueError:
        return None
    return anchor if len(anchor) == HASH_SIZE else None


_HEAD = msgspec.msgpack.Decoder(PayloadHead)
_KNOWN_TAGS = frozenset(TAGS.values())
_UNDECODABLE = (EventDecodeError, msgspec.MsgspecError, UnicodeDecodeError, RecursionError, ValueError)
_TS_MIN, _TS_MAX = -(2**63), 2**63 - 1
"""Event times are signed 64-bit nanoseconds; msgspec decodes larger ints."""
_TS = attrgetter("ts")
_TAG = attrgetter("t")


class _Chain:
    """Running verification state across blocks. ``decode``: decode every
    payload as an event (else read only each payload's tag and time);
    ``anchor``: a chain hash to find; ``public``: the key checkpoints must
    be signed with."""

    def __init__(self, decode: bool, anchor: bytes | None = None, public: Ed25519PublicKey | None = None) -> None:
        self.prev = GENESIS
        self.before_last = GENESIS  # the chain hash of the record before the last one
        self.expected = 1
        self.last_ts = -(2**63)
        self.decode = decode
        self.anchor = anchor
        self.anchor_seq: int | None = None
        self.public = public
        self.first_payload = b""  # record 1's
        self.last_payload = b""  # the last record's so far
        self.run_id = ""
        self.checkpoints = 0
        self.signed_through: int | None = None

    def report(self, count: int, status: str, live: bool) -> Any:
        """A report builder for the records verified: ``(ok, first bad seq, problem)``."""

        def build(ok: bool, first_bad: int | None, problem: str) -> VerifyReport:
            return VerifyReport(
                ok,
                count,
                self.prev.hex(),
                first_bad,
                problem,
                status,
                live,
                self.anchor_seq,
                self.checkpoints,
                self.signed_through,
            )

        return build

    def ends(self) -> tuple[Event | None, Event | None]:
        """Records 1 and the last one, decoded (None for an empty journal)."""
        if self.expected == 1:
            return None, None
        try:
            header = DEFAULT_CODEC.decode(self.first_payload)
        except EventDecodeError as exc:
            self.prev = GENESIS
            raise _Bad(1, f"payload does not decode: {exc}") from None
        try:
            last = DEFAULT_CODEC.decode(self.last_payload)
        except EventDecodeError as exc:
            self.prev = self.before_last
            raise _Bad(self.expected - 1, f"payload does not decode: {exc}") from None
        return header, last

    def _check_signing_key(self, header: Event | None) -> None:
        """With a public key: the run header names it."""
        if self.public is None:
            return
        from tidemark.journal.signing import fingerprint

        named = _signing_key(header)
        given = fingerprint(self.public)
        if named != given:
            raise _Bad(1, f"the run header names signing key {named or 'none'}, not the given key ({given})")

    def check_block(self, row: tuple[object, ...], *, chained: bool = False) -> None:
        """Check the next stored row (``chained``: its hashes were computed
        from its records here, chained from the verified ones)."""
        try:
            first, n, body, lengths, causes, flags, hashes = split_block(row)
        except JournalDecodeError as exc:
            raise _Bad(exc.seq if exc.seq == self.expected else self.expected, str(exc)) from None
        if first != self.expected:
            if first > self.expected:
                raise _Bad(self.expected, f"missing records (next stored seq is {first})")
            # Records up to ``expected - 1`` verified; what is stored next is not ``expected``.
            raise _Bad(self.expected, f"records out of place (seq {first} after {self.expected - 1})")
        if not (len(lengths) == len(causes) == len(flags) == n and len(hashes) == n * HASH_SIZE and n > 0):
            raise _Bad(first, "block columns disagree in length")
        heads = self._heads(row)
        if heads is None or not self._block_is_sound(
            row, first, *heads, len(body), lengths, causes, flags, hashes, chained
        ):
            self._locate(row, first, body, lengths, causes, flags, hashes)  # raises
            raise _Bad(first, "block inconsistent with its records")
        if first == 1:
            self.first_payload = bytes(body[: lengths[0]])
            header = _decoded(self.first_payload)
            self.run_id = header.run_id if isinstance(header, RunStarted) else ""
            self._check_signing_key(header)
        if self.anchor is not None and self.anchor_seq is None:
            self._find_anchor(first, hashes)
        if "ckpt" in heads[1]:
            self._check_checkpoints(first, body, lengths, hashes, heads[1])
        self.before_last = hashes[-2 * HASH_SIZE : -HASH_SIZE] if n > 1 else self.prev
        self.prev = hashes[-HASH_SIZE:]
        self.expected = first + n
        self.last_ts = heads[0][-1]
        self.last_payload = bytes(body[len(body) - lengths[-1] :])

    def _find_anchor(self, first: int, hashes: bytes) -> None:
        assert self.anchor is not None
        at = hashes.find(self.anchor)
        while at >= 0:
            if at % HASH_SIZE == 0:
                self.anchor_seq = first + at // HASH_SIZE
                return
            at = hashes.find(self.anchor, at + 1)

    def _check_checkpoints(
        self, first: int, body: memoryview, lengths: array[int], hashes: bytes, tags: list[str]
    ) -> None:
        """Each checkpoint names the record before it and its chain hash;
        with a public key, its signature holds."""
        offsets = [0, *np.cumsum(np.frombuffer(lengths, dtype=np.uint32), dtype=np.int64).tolist()]
        for i, tag in enumerate(tags):
            if tag != "ckpt":
                continue
            seq = first + i
            try:
                checkpoint = DEFAULT_CODEC.decode(body[offsets[i] : offsets[i + 1]])
            except EventDecodeError as exc:
                raise _Bad(seq, f"payload does not decode: {exc}") from None
            assert isinstance(checkpoint, Checkpoint)
            before = hashes[HASH_SIZE * (i - 1) : HASH_SIZE * i] if i else self.prev
            self.prev = before  # the report's head, if this checkpoint is bad
            if checkpoint.seq != seq - 1 or checkpoint.head != before.hex():
                raise _Bad(
                    seq, f"checkpoint names seq {checkpoint.seq} head {checkpoint.head[:16]}, not the record before it"
                )
            if self.public is not None:
                from tidemark.journal.signing import fingerprint, signature_holds

                if checkpoint.key != fingerprint(self.public) or not signature_holds(
                    self.public, self.run_id, checkpoint
                ):
                    raise _Bad(seq, "checkpoint signature does not verify with the given public key")
                self.signed_through = seq - 1
            self.checkpoints += 1

    def _block_is_sound(
        self,
        row: tuple[object, ...],
        first: int,
        times: list[int],
        tags: list[str],
        body_size: int,
        lengths: array[int],
        causes: array[int],
        flags: bytes,
        hashes: bytes,
        chained: bool = False,
    ) -> bool:
        """Every check of the block at once (a few calls per block, no
        Python work per record but the hash); False: :meth:`_locate` finds
        the first bad record."""
        try:
            payloads = split_payloads(row[5])  # type: ignore[arg-type]  # it decoded already: this splits
        except JournalDecodeError:
            return False
        if array("I", map(len, payloads)) != lengths or sum(lengths) != body_size:
            return False
        if not chained and b"".join(chain_hashes(self.prev, first, payloads, causes, flags)) != hashes:
            return False
        if times[0] < self.last_ts or times[0] != row[2] or times[-1] != row[3]:
            return False
        ts = np.array(times, dtype=np.int64)
        if bool((ts[1:] < ts[:-1]).any()):
            return False
        try:
            return dict(Counter(tags)) == parse_kind_counts(row[4], first)
        except JournalDecodeError:
            return False

    def _locate(
        self,
        row: tuple[object, ...],
        first: int,
        body: memoryview,
        lengths: array[int],
        causes: array[int],
        flags: bytes,
        hashes: bytes,
    ) -> None:
        """Check the block record by record, every check in seq order, and
        raise the first problem; the chain head then is the last good
        record's hash."""
        prev = self.prev
        last = self.last_ts
        offset = 0
        times: list[int] = []
        counts: dict[str, int] = {}
        for i, size in enumerate(lengths):
            seq = first + i
            payload = body[offset : offset + size]
            offset += size
            digest = blake2b(prev + pack_header(seq, causes[i], flags[i]) + payload, digest_size=HASH_SIZE).digest()
            if digest != hashes[HASH_SIZE * i : HASH_SIZE * (i + 1)]:
                self.prev = prev
                raise _Bad(seq, "hash chain broken (record altered or out of place)")
            try:
                ts, tag = self._head(bytes(payload))
            except _UNDECODABLE as exc:
                self.prev = prev
                raise _Bad(seq, f"payload does not decode: {exc}") from None
            if not _TS_MIN <= ts <= _TS_MAX:
                self.prev = prev
                raise _Bad(seq, f"event time {ts} is out of range")
            if ts < last:
                self.prev = prev
                raise _Bad(seq, f"event time goes backwards ({ts} < {last})")
            last = ts
            times.append(ts)
            counts[tag] = counts.get(tag, 0) + 1
            prev = digest
        if offset != len(body):
            self.prev = hashes[-2 * HASH_SIZE : -HASH_SIZE] if len(lengths) > 1 else self.prev
            raise _Bad(first + len(lengths) - 1, "payload bytes beyond the recorded lengths")
        if self._heads(row) is None:
            raise _Bad(first, "block payload array is malformed")
        if times[0] != row[2] or times[-1] != row[3]:
            raise _Bad(first, "block time range disagrees with its events")
        try:
            stated = parse_kind_counts(row[4], first)
        except JournalDecodeError as exc:
            raise _Bad(first, str(exc)) from None
        if counts != stated:
            raise _Bad(first, "block kind counts disagree with its events")

    def _heads(self, row: tuple[object, ...]) -> tuple[list[int], list[str]] | None:
        """Time and kind of every record of the block, after decoding every
        payload (or, without ``decode``, its tag and time, the tag checked
        known); None if any of that fails."""
        try:
            if self.decode:
                events = DEFAULT_CODEC.decode_array(row[5])  # type: ignore[arg-type]
                times, tags = list(map(_TS, events)), list(map(TAGS.__getitem__, map(type, events)))
            else:
                heads = PAYLOAD_HEADS.decode(row[5])  # type: ignore[arg-type]
                times, tags = list(map(_TS, heads)), list(map(_TAG, heads))
        except _UNDECODABLE:
            return None
        if len(times) != row[1] or not (self.decode or _KNOWN_TAGS.issuperset(tags)):
            return None
        if times and (min(times) < _TS_MIN or max(times) > _TS_MAX):
            return None
        return times, tags

    def _head(self, payload: bytes) -> tuple[int, str]:
        """Time and kind of one payload (decoded whole with ``decode``)."""
        if self.decode:
            event = DEFAULT_CODEC.decode(payload)
            return event.ts, TAGS[type(event)]
        head = _HEAD.decode(payload)
        if head.t not in _KNOWN_TAGS:
            raise EventDecodeError(f"unknown event tag {head.t!r}")
        return head.ts, head.t


def _decoded(payload: bytes) -> Event | None:
    try:
        return DEFAULT_CODEC.decode(payload)
    except EventDecodeError:
        return None


def _signing_key(header: Event | None) -> str:
    """The signing key fingerprint a run header names ('' if none)."""
    if not isinstance(header, RunStarted):
        return ""
    try:
        prints = json.loads(header.fingerprints)
    except ValueError:
        return ""
    value = prints.get("signing_key", "") if isinstance(prints, dict) else ""
    return value if isinstance(value, str) else ""
