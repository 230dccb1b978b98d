"""Fuzz: the journal's decoders and ``verify`` meet arbitrary bytes and
answer with the journal's own errors or a report, never anything else.

Three families, each in a fast tier (every run) and a slow tier (CI's
``-m slow``: 10,000 decoder cases and 7,500 corrupted journals):

* the decoders alone (payload splitting, kind counts, block rows, events);
* journal files corrupted byte by byte (flips, overwritten runs, zeroed
  pages, truncation), checked by ``verify`` and by ``tidemark verify``;
* journals edited through SQLite (a column of any type or size, random
  payloads, re-chained or not, meta values), where every edit of chained
  content must also be reported as damage.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.journal.helpers import write_journal
from tidemark.adapters.cli import main
from tidemark.core.codec import DEFAULT_CODEC, EventDecodeError
from tidemark.journal.blocks import DecodedBlock
from tidemark.journal.errors import JournalDecodeError
from tidemark.journal.records import parse_kind_counts, split_block, split_payloads
from tidemark.journal.verify import VerifyReport, verify

FAST = 100
SLOW_DECODERS, SLOW_FILES, SLOW_SQL = 10_000, 5_000, 2_500
"""Slow-tier cases: 10,000 decoder inputs and 7,500 corrupted journals."""


def fuzz_settings(n: int) -> settings:
    return settings(
        max_examples=n,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# -- the decoders ---------------------------------------------------------------------------------

nested = st.one_of(st.integers(1, 64), st.sampled_from([3_000, 100_000])).map(lambda depth: b"\x91" * depth + b"\xc0")
msgpackish = st.one_of(
    st.binary(max_size=300),
    nested,
    st.builds(lambda head, body: b"\xdd" + head + body, st.binary(min_size=4, max_size=4), st.binary(max_size=200)),
    st.lists(st.sampled_from([b"\x92", b"\xa3bar", b"\xcf" + b"\xff" * 8, b"\xc1", b"\x01", b"\xdc\xff\xff"])).map(
        b"".join
    ),
)
sql_value = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.binary(max_size=120),
    msgpackish,
)


def decode_everything(data: bytes, text: str, row: tuple[Any, ...]) -> None:
    """Every decoder of journal bytes on this input: only the journal's errors may come out."""
    for call in (
        lambda: split_payloads(data, 7),
        lambda: parse_kind_counts(text, 7),
        lambda: parse_kind_counts(data, 7),
        lambda: split_block(row),
        lambda: DecodedBlock(row).events,
        lambda: [DecodedBlock(row).event(i) for i in range(min(3, len(DecodedBlock(row))))],
    ):
        with contextlib.suppress(JournalDecodeError):
            call()
    for call in (lambda: DEFAULT_CODEC.decode(data), lambda: DEFAULT_CODEC.decode_array(data)):
        with contextlib.suppress(EventDecodeError):
            call()


decoder_inputs = st.tuples(msgpackish, st.text(max_size=60), st.tuples(*[sql_value] * 10))


@given(decoder_inputs)
@fuzz_settings(FAST * 3)
def test_decoders_raise_only_journal_errors(case: tuple[bytes, str, tuple[Any, ...]]) -> None:
    decode_everything(*case)


@pytest.mark.slow
@given(decoder_inputs)
@fuzz_settings(SLOW_DECODERS)
def test_decoders_raise_only_journal_errors_slow(case: tuple[bytes, str, tuple[Any, ...]]) -> None:
    decode_everything(*case)


# -- corrupted journal files ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / "pristine.journal"
    asyncio.run(write_journal(path, 40, block_size=8))
    assert verify(path).ok and not Path(f"{path}-wal").exists()
    return path


@st.composite
def corruptions(draw: st.DrawFn, size: int) -> list[tuple[str, int, bytes]]:
    """Byte-level edits of a file of ``size`` bytes: (kind, offset, bytes)."""
    edits = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "run", "zero_page", "truncate"]))
        offset = draw(st.integers(0, size - 1))
        if kind == "flip":
            edits.append((kind, offset, bytes([1 << draw(st.integers(0, 7))])))
        elif kind == "run":
            edits.append((kind, offset, draw(st.binary(min_size=1, max_size=64))))
        else:
            edits.append((kind, offset, b""))
    return edits


def corrupt(data: bytearray, edits: list[tuple[str, int, bytes]]) -> bytes:
    for kind, offset, blob in edits:
        offset = min(offset, max(len(data) - 1, 0))
        if kind == "flip" and data:
            data[offset] ^= blob[0]
        elif kind == "run":
            data[offset : offset + len(blob)] = blob
        elif kind == "zero_page":
            page = offset - offset % 16_384
            data[page : page + 16_384] = bytes(len(data[page : page + 16_384]))
        elif kind == "truncate":
            del data[offset:]
    return bytes(data)


def check_file(pristine: Path, path: Path, edits: list[tuple[str, int, bytes]], cli: bool) -> None:
    """verify (and, with ``cli``, ``tidemark verify``; else verify reading
    only tags and times) report on the corrupted file."""
    path.write_bytes(corrupt(bytearray(pristine.read_bytes()), edits))
    for suffix in ("-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    report = verify(path)
    assert isinstance(report, VerifyReport)
    # damage names the first bad record, or is meta's (a cache of the chain, no record)
    assert report.ok or report.first_bad_seq is not None or report.problem.startswith("meta"), report
    if not cli:
        assert isinstance(verify(path, decode=False), VerifyReport)
        return
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(["verify", str(path)])
    assert code == (0 if report.ok else 1), out.getvalue()
    assert len(out.getvalue().splitlines()) == 1


def test_corrupted_files_get_a_report(pristine: Path, tmp_path: Path) -> None:
    size = pristine.stat().st_size

    @given(corruptions(size), st.booleans())
    @fuzz_settings(FAST)
    def run(edits: list[tuple[str, int, bytes]], cli: bool) -> None:
        check_file(pristine, tmp_path / "c.journal", edits, cli)

    run()


@pytest.mark.slow
def test_corrupted_files_get_a_report_slow(pristine: Path, tmp_path: Path) -> None:
    size = pristine.stat().st_size

    @given(corruptions(size), st.booleans())
    @fuzz_settings(SLOW_FILES)
    def run(edits: list[tuple[str, int, bytes]], cli: bool) -> None:
        check_file(pristine, tmp_path / "c.journal", edits, cli)

    run()


# -- journals edited through SQLite -----------------------------------------------------------------

BLOCK_FIELDS = ["n", "first_ts", "last_ts", "kinds", "payloads", "lengths", "causes", "inputs", "hashes"]
CHAINED = {"payloads", "lengths", "causes", "inputs", "hashes"}


@st.composite
def sql_edits(draw: st.DrawFn) -> list[tuple[str, Any, Any, bool]]:
    """(column or 'meta:key' or 'payload', block index or record, value, re-chain after)."""
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["column", "column", "payload", "meta"]))
        if kind == "column":
            edits.append((draw(st.sampled_from(BLOCK_FIELDS)), draw(st.integers(0, 10)), draw(sql_value), False))
        elif kind == "payload":
            edits.append(("payload", draw(st.integers(1, 81)), draw(msgpackish), draw(st.booleans())))
        else:
            key = draw(st.sampled_from(["head_seq", "head_hash", "format_version", "status", "config", "run_id"]))
            value = draw(st.one_of(st.text(max_size=30), st.integers(-(2**63), 2**63 - 1), st.none()))
            edits.append((f"meta:{key}", 0, value, False))
    return edits


def apply_sql(path: Path, edits: list[tuple[str, Any, Any, bool]]) -> bool:
    """Apply the edits; True if chained content (a record) was changed."""
    from tests.journal.forge import set_payload

    changed = False
    for what, where, value, again in edits:
        with sqlite3.connect(path) as conn:
            firsts = [r[0] for r in conn.execute("SELECT first_seq FROM blocks ORDER BY first_seq")]
            if what.startswith("meta:"):
                with contextlib.suppress(sqlite3.IntegrityError):  # NOT NULL
                    conn.execute("UPDATE meta SET value=? WHERE key=?", (value, what[5:]))
                continue
            if what != "payload":
                first = firsts[where % len(firsts)]
                old = conn.execute(f"SELECT {what} FROM blocks WHERE first_seq=?", (first,)).fetchone()[0]
                try:
                    conn.execute(f"UPDATE blocks SET {what}=? WHERE first_seq=?", (value, first))
                except sqlite3.IntegrityError:  # NOT NULL
                    continue
                changed |= what in CHAINED and value != old
                continue
        before = path.read_bytes()
        try:
            set_payload(path, where, value, rechain_after=again)
        except Exception:  # an earlier edit broke the block for the forger's tool: no edit
            path.write_bytes(before)
            continue
        changed = True
    return changed


def check_sql(pristine: Path, path: Path, edits: list[tuple[str, Any, Any, bool]]) -> None:
    shutil.copyfile(pristine, path)
    changed = apply_sql(path, edits)
    report = verify(path, decode=len(edits) % 2 == 1)
    assert isinstance(report, VerifyReport)
    if changed and not any(again for *_, again in edits):
        assert not report.ok, f"an edit of chained content went unnoticed: {edits}"


def test_sql_edits_get_a_report(pristine: Path, tmp_path: Path) -> None:
    @given(sql_edits())
    @fuzz_settings(FAST)
    def run(edits: list[tuple[str, Any, Any, bool]]) -> None:
        check_sql(pristine, tmp_path / "s.journal", edits)

    run()


@pytest.mark.slow
def test_sql_edits_get_a_report_slow(pristine: Path, tmp_path: Path) -> None:
    @given(sql_edits())
    @fuzz_settings(SLOW_SQL)
    def run(edits: list[tuple[str, Any, Any, bool]]) -> None:
        check_sql(pristine, tmp_path / "s.journal", edits)

    run()


def test_a_byte_that_makes_sqlites_own_message_not_utf8_gets_a_report(pristine: Path, tmp_path: Path) -> None:
    """Found by the slow tier: 0x80 written into the schema makes SQLite's
    error message carry the byte, which sqlite3 decoded strictly and raised
    as UnicodeDecodeError out of verify."""
    check_file(pristine, tmp_path / "c.journal", [("run", 16348, b"\x80")], cli=True)
    check_file(pristine, tmp_path / "c.journal", [("run", 16348, b"\x80")], cli=False)
