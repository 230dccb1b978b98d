"""The on-disk layout: records grouped in blocks, and the chain hash.

A *record* is one sequenced event: ``(seq, ts, kind, input, cause, payload,
hash)``. Its hash is::

    hash[n] = BLAKE2b-256(hash[n-1] || le64(seq) || le64(cause) || u8(input) || payload)

with ``hash[0]`` = 32 zero bytes. ``kind`` and ``ts`` live in the payload (tag
and first field), so every field is covered.

Records are stored in *blocks*: one SQLite row holds a run of consecutive
records, column by column. Measured on the 2-core development machine, a
SQLite row insert from Python costs ~4.7 us whatever the pragmas, which caps a
row-per-event table near 200k events/s before any hashing, and a writer
thread binding rows starves on the GIL while the simulation runs. Blocks cost
one insert per few thousand records, and the ``payloads`` column is a
msgpack array that decodes in one call. Verification is still per record and
names the exact seq of the first bad record.

Block columns:

* ``first_seq`` (primary key), ``n``: the block holds seqs
  ``first_seq .. first_seq + n - 1``;
* ``first_ts``/``last_ts``, ``kinds`` (``kind=count`` pairs, sorted,
  comma-separated): for skipping blocks and counting without decoding;
* ``payloads``: msgpack array32 header + the n payloads back to back;
* ``lengths``: n little-endian u32 payload lengths;
* ``causes``: n little-endian i64 (seq of the event whose handler published
  this one; 0 for inputs);
* ``inputs``: n bytes, 1 = input, 0 = output;
* ``hashes``: n * 32 bytes, the chain hash of each record.
"""

from __future__ import annotations

import struct
from array import array
from collections import Counter
from collections.abc import Sequence
from hashlib import blake2b
from typing import Final

import msgspec

from tidemark.journal.errors import JournalDecodeError

FORMAT_VERSION: Final = 3
"""Format of new journals. 3: every status a journal claims is a chained
record (a run that did not finish ends with ``RunFailed``), signed
checkpoints, the writer lock beside the file. The records and the chain are
as in 2, which stays readable (its ``failed`` status may lack a record)."""
READABLE_FORMATS: Final = frozenset({"2", "3", "4"})
"""``meta.format_version`` values this code reads, verifies and replays. 4:
a run journal whose market inputs are in an input journal (format 3
otherwise; see :mod:`journal.shared`)."""
GENESIS: Final = bytes(32)
HASH_SIZE: Final = 32
PAGE_SIZE: Final = 16_384
"""SQLite page size of new journals (bytes). Blocks are blobs of hundreds of
KB stored in overflow pages; at 16 KB rather than the default 4 KB, writing
them took about a third less CPU (user + system: fewer write calls) and
reading them ~20% less time. Readers need nothing: the page size is in the
file's header."""

pack_header = struct.Struct("<qqB").pack
"""``(seq, cause, input)`` as hashed before the payload."""

DDL: Final = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS blocks (
    first_seq INTEGER PRIMARY KEY,
    n         INTEGER NOT NULL,
    first_ts  INTEGER NOT NULL,
    last_ts   INTEGER NOT NULL,
    kinds     TEXT    NOT NULL,
    payloads  BLOB    NOT NULL,
    lengths   BLOB    NOT NULL,
    causes    BLOB    NOT NULL,
    inputs    BLOB    NOT NULL,
    hashes    BLOB    NOT NULL
);
"""

INSERT_BLOCK: Final = (
    "INSERT INTO blocks (first_seq, n, first_ts, last_ts, kinds, payloads, lengths, causes, inputs, hashes)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
UPSERT_META: Final = "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"
BLOCK_COLUMNS: Final = "first_seq, n, first_ts, last_ts, kinds, payloads, lengths, causes, inputs, hashes"

BlockRow = tuple[int, int, int, int, str, bytes, bytes, bytes, bytes, bytes]


def msgpack_array_header(n: int) -> bytes:
    """msgpack array32 header: payloads behind it decode as one list."""
    return b"\xdd" + n.to_bytes(4, "big")


def msgpack_array_header_size(n: int) -> int:
    """Bytes of the (smallest) msgpack array header msgspec writes for ``n`` items."""
    return 1 if n < 16 else 3 if n < 1 << 16 else 5


def build_block(
    first_seq: int,
    timestamps: list[int],
    kinds: list[str],
    payloads: list[bytes],
    causes: list[int],
    inputs: bytearray,
    hashes: list[bytes],
) -> BlockRow:
    n = len(payloads)
    return (
        first_seq,
        n,
        timestamps[0],
        timestamps[-1],
        kind_counts(kinds),
        msgpack_array_header(n) + b"".join(payloads),
        array("I", map(len, payloads)).tobytes(),
        array("q", causes).tobytes(),
        bytes(inputs),
        b"".join(hashes),
    )


def kind_counts(kinds: list[str]) -> str:
    counts = Counter(kinds)
    return ",".join(f"{k}={counts[k]}" for k in sorted(counts))


def parse_kind_counts(text: object, first_seq: int | None = None) -> dict[str, int]:
    """A block's ``kinds`` column as ``{kind: count}``; anything else than
    ``kind=count`` pairs (counts non-negative integers) is a
    :class:`JournalDecodeError` naming the block."""
    if not isinstance(text, str):
        raise JournalDecodeError(f"{_block(first_seq)}: kind counts are {_sql_type(text)}, not TEXT", first_seq)
    out: dict[str, int] = {}
    for item in text.split(","):
        if item:
            kind, sep, count = item.partition("=")
            if not (sep and kind and count.isascii() and count.isdigit()) or kind in out:
                raise JournalDecodeError(f"{_block(first_seq)}: malformed kind counts {text[:80]!r}", first_seq)
            out[kind] = int(count)
    return out


def _block(first_seq: int | None) -> str:
    return "block" if first_seq is None else f"block at seq {first_seq}"


def _sql_type(value: object) -> str:
    """How SQLite stored a value, as its type name."""
    if value is None:
        return "NULL"
    return {bytes: "a BLOB", str: "TEXT", int: "an INTEGER", float: "a REAL"}.get(type(value), type(value).__name__)


assert array("I").itemsize == 4 and array("q").itemsize == 8


def split_block(row: tuple[object, ...]) -> tuple[int, int, memoryview, array[int], array[int], bytes, bytes]:
    """``(first_seq, n, payload bytes without header, lengths, causes, inputs, hashes)``.

    Checks only what splitting needs (column types, whole items); a column
    of the wrong SQLite type or size is a :class:`JournalDecodeError` naming
    the block (verify checks the rest)."""
    if len(row) != 10:
        raise JournalDecodeError(f"block row has {len(row)} columns, not 10")
    first_seq, n, _, _, _, payloads, lengths, causes, inputs, hashes = row
    if type(first_seq) is not int or not -(2**63) <= first_seq < 2**63:
        raise JournalDecodeError(f"block with first_seq {_sql_type(first_seq)} {str(first_seq)[:40]!r}")
    if type(n) is not int:
        raise JournalDecodeError(f"block at seq {first_seq}: n is {_sql_type(n)}", first_seq)
    for name, value in (("payloads", payloads), ("lengths", lengths), ("causes", causes), ("inputs", inputs)):
        if not isinstance(value, bytes):
            raise JournalDecodeError(f"block at seq {first_seq}: {name} is {_sql_type(value)}, not a BLOB", first_seq)
    if not isinstance(hashes, bytes):
        raise JournalDecodeError(f"block at seq {first_seq}: hashes is {_sql_type(hashes)}, not a BLOB", first_seq)
    assert isinstance(payloads, bytes) and isinstance(lengths, bytes) and isinstance(causes, bytes)
    assert isinstance(inputs, bytes)
    if len(lengths) % 4 or len(causes) % 8:
        raise JournalDecodeError(f"block at seq {first_seq}: lengths or causes is not whole items", first_seq)
    lens = array("I")
    lens.frombytes(lengths)
    cause_arr = array("q")
    cause_arr.frombytes(causes)
    return first_seq, n, memoryview(payloads)[5:], lens, cause_arr, inputs, hashes


_PAYLOADS = msgspec.msgpack.Decoder(list[msgspec.Raw])


class PayloadHead(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """An event payload's tag and time; the rest of it is skipped."""

    t: str
    ts: int


PAYLOAD_HEADS: Final = msgspec.msgpack.Decoder(list[PayloadHead])
"""Tag and time of every payload of a block's ``payloads`` array."""


def split_payloads(buffer: bytes | memoryview, first_seq: int | None = None) -> list[msgspec.Raw]:
    """A msgpack array of payloads (a block's ``payloads``, a writer batch) as
    its payloads, views into the buffer, without decoding them. Bytes that
    are not such an array (nested too deep included) are a
    :class:`JournalDecodeError` naming the block."""
    try:
        return _PAYLOADS.decode(buffer)
    except (msgspec.MsgspecError, RecursionError, ValueError) as exc:
        raise JournalDecodeError(f"{_block(first_seq)}: payloads are not a msgpack array: {exc}", first_seq) from None


def chain_hashes(
    prev: bytes, first: int, payloads: Sequence[msgspec.Raw | bytes | memoryview], causes: array[int], flags: bytes
) -> list[bytes]:
    """The chain hash of each of the records ``first, first + 1, ...`` after
    the record whose hash is ``prev`` (see the module docstring).

    Hot (the writer and verify run it for every record): under 1 us per
    record. Copying a prepared BLAKE2b state is cheaper than constructing
    one (the constructor parses its parameters each time)."""
    hashes: list[bytes] = []
    append = hashes.append
    fresh = blake2b(digest_size=HASH_SIZE).copy
    pack = pack_header
    for seq, payload, cause, flag in zip(range(first, first + len(payloads)), payloads, causes, flags, strict=True):
        state = fresh()
        state.update(prev + pack(seq, cause, flag) + payload)
        prev = state.digest()
        append(prev)
    return hashes
