"""verify reports, never raises, on bytes the writer never wrote: columns of
the wrong SQLite type or size, times beyond 64 bits, arrays nested deeper
than Python recurses, malformed kind counts; and ``tidemark verify`` says
damaged (exit 1) apart from unusable arguments (exit 2)."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from tests.journal.forge import set_meta, set_payload
from tests.journal.helpers import write_journal
from tidemark.adapters.cli import main
from tidemark.journal.errors import JournalDecodeError
from tidemark.journal.reader import JournalReader
from tidemark.journal.records import parse_kind_counts, split_payloads
from tidemark.journal.verify import verify

DEEP = b"\x91" * 200_000 + b"\xc0"
"""A msgpack array nested 200,000 deep: beyond any recursion limit."""


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bytes") / "pristine.journal"
    asyncio.run(write_journal(path, 40, block_size=8))
    assert verify(path).ok
    return path


@pytest.fixture
def journal(pristine: Path, tmp_path: Path) -> Path:
    path = tmp_path / "j.journal"
    shutil.copyfile(pristine, path)
    return path


def sql(path: Path, statement: str, *args: object) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(statement, args)


def log_payload(ts: int) -> bytes:
    return msgspec.msgpack.encode(["log", ts, "t", "info", "x"])


DAMAGE: dict[str, tuple[Callable[[Path], None], int | None, str]] = {
    "lengths stored as TEXT": (
        lambda p: sql(p, "UPDATE blocks SET lengths='abc' WHERE first_seq=17"),
        17,
        "lengths is TEXT, not a BLOB",
    ),
    "hashes stored as NULL-like integer": (
        lambda p: sql(p, "UPDATE blocks SET hashes=7 WHERE first_seq=9"),
        9,
        "hashes is an INTEGER",
    ),
    "lengths not whole u32s": (
        lambda p: sql(p, "UPDATE blocks SET lengths=x'0102030405' WHERE first_seq=25"),
        25,
        "not whole items",
    ),
    "n stored as TEXT": (
        lambda p: sql(p, "UPDATE blocks SET n='eight' WHERE first_seq=33"),
        33,
        "n is TEXT",
    ),
    "kind counts malformed": (
        lambda p: sql(p, "UPDATE blocks SET kinds='bar=4=4,log=z' WHERE first_seq=41"),
        41,
        "malformed kind counts",
    ),
    "kind counts not UTF-8": (
        lambda p: sql(p, "UPDATE blocks SET kinds=CAST(x'6261723d80' AS TEXT) WHERE first_seq=41"),
        41,
        "malformed kind counts",
    ),
    "meta value not UTF-8": (  # found by the slow fuzz tier: a flipped byte in meta (raised UnicodeDecodeError)
        lambda p: sql(p, "UPDATE meta SET value=CAST(x'80' AS TEXT) WHERE key='status'"),
        None,  # not a record's problem: meta's (see VerifyReport)
        "meta.status is '\ufffd' but the chain ends with RunFinished",
    ),
    "time beyond 64 bits, re-chained": (lambda p: set_payload(p, 12, log_payload(2**64 - 1)), 12, "out of range"),
    "array nested too deep, re-chained": (lambda p: set_payload(p, 20, DEEP), 20, "does not decode"),
    "payloads too deep to split": (
        lambda p: sql(p, "UPDATE blocks SET payloads=? WHERE first_seq=9", b"\xdd\x00\x00\x00\x08" + DEEP),
        9,
        "",
    ),
}


@pytest.mark.parametrize("decode", [True, False], ids=["decoded", "heads"])
@pytest.mark.parametrize("name", list(DAMAGE))
def test_verify_names_the_damaged_block_and_never_raises(journal: Path, name: str, decode: bool) -> None:
    damage, seq, problem = DAMAGE[name]
    damage(journal)
    report = verify(journal, decode=decode)
    assert not report.ok and report.first_bad_seq == seq, report.message
    assert problem in report.problem


def test_a_head_seq_that_is_not_a_number_is_damage(journal: Path) -> None:
    set_meta(journal, "head_seq", "eighty-one")
    report = verify(journal)
    assert not report.ok and "head_seq" in report.problem


def test_the_splitters_raise_the_journals_own_error() -> None:
    with pytest.raises(JournalDecodeError, match="block at seq 5: payloads are not a msgpack array"):
        split_payloads(b"\xdd\x00\x00\x00\x01" + DEEP, 5)
    with pytest.raises(JournalDecodeError, match="block at seq 9: malformed kind counts"):
        parse_kind_counts("bar=x", 9)
    with pytest.raises(JournalDecodeError, match="not TEXT"):
        parse_kind_counts(b"bar=1", 9)
    assert parse_kind_counts("bar=2,log=2") == {"bar": 2, "log": 2}


def test_the_reader_names_a_malformed_last_block(journal: Path) -> None:
    sql(journal, "UPDATE blocks SET hashes='x' WHERE first_seq=(SELECT MAX(first_seq) FROM blocks)")
    with JournalReader(journal) as reader, pytest.raises(JournalDecodeError, match="last block is malformed"):
        reader.head()


@pytest.mark.parametrize("name", ["lengths stored as TEXT", "time beyond 64 bits, re-chained"])
def test_cli_verify_exits_1_with_one_line_on_damage(
    journal: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    DAMAGE[name][0](journal)
    assert main(["verify", str(journal)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "DAMAGED" in out[0] and f"seq {DAMAGE[name][1]}" in out[0]


def test_cli_verify_exits_2_on_unusable_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(tmp_path / "absent.journal")]) == 2
    assert main(["verify", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"tidemark: error: {tmp_path / 'absent.journal'}: no such journal",
        f"tidemark: error: {tmp_path}: is a directory, not a journal",
    ]


def test_cli_verify_of_a_file_that_is_not_a_journal_says_damaged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "noise.journal"
    path.write_bytes(bytes(range(256)) * 64)
    assert main(["verify", str(path)]) == 1
    assert "DAMAGED" in capsys.readouterr().out
