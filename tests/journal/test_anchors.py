"""What each level of proof catches: the chain alone (accidents, naive
edits), an anchor (any rewrite at or before it), signed checkpoints (a
rewrite by anyone without the private key)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import msgspec
import pytest

from tests.journal.forge import rechain, set_payload
from tidemark.adapters.cli import main
from tidemark.core.bus import Bus
from tidemark.core.codec import encode
from tidemark.core.events import Bar, Checkpoint, Log, RunStarted
from tidemark.journal.reader import JournalReader
from tidemark.journal.signing import Signer, new_key
from tidemark.journal.verify import Expectations, verify
from tidemark.journal.writer import JournalWriter

BARS = 60
EVERY = 10


def keypair(folder: Path, name: str) -> tuple[Path, Path, Signer]:
    private, public, _ = new_key()
    key, pub = folder / f"{name}.pem", folder / f"{name}.pub"
    key.write_bytes(private)
    pub.write_bytes(public)
    signer = Signer.load(key)
    assert signer is not None
    return key, pub, signer


async def write_signed(path: Path, signer: Signer | None) -> None:
    """A header naming ``signer``'s key, bars with a log each, and a signed
    checkpoint every EVERY bars (none without a signer)."""
    prints = json.dumps({"signing_key": signer.fingerprint} if signer else {})
    writer = await JournalWriter.create(path, overwrite=True)
    bus = Bus(writer)
    bus.subscribe(Bar, lambda e: bus.publish(Log(e.ts, "t", "info", f"bar {e.ts}")))
    bus.feed(RunStarted(0, "signed-run", "{}", "h", prints, "0.0.0"))
    for i in range(BARS):
        bus.feed(Bar(1_000 + i, "X", 1.0 + i, 2.0 + i, 0.5, 1.5 + i, 10.0, 60))
        if signer is not None and i % EVERY == EVERY - 1:
            bus.feed(signer.checkpoint(bus.now(), "signed-run", writer.last_seq, writer.head))
    await writer.close()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path, Signer]]:
    folder = tmp_path_factory.mktemp("keys")
    return {name: keypair(folder, name) for name in ("owner", "forger")}


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, tuple[Path, Path, Signer]]) -> Path:
    path = tmp_path_factory.mktemp("signed") / "signed.journal"
    asyncio.run(write_signed(path, keys["owner"][2]))
    return path


def copy(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / source.name
    shutil.copyfile(source, target)
    return target


def records(path: Path) -> list[tuple[int, object, str]]:
    with JournalReader(path) as reader:
        return [(r.seq, r.event, r.hash.hex()) for r in reader.records()]


def forge_bar(path: Path, near: int, resign: Signer | None = None) -> int:
    """Change the close of the first bar at or after seq ``near`` and
    re-chain; then make every later checkpoint name the new hashes, signed by
    ``resign`` (or keeping the old, now invalid, signatures). Returns the
    bar's seq."""
    seq = next(s for s, e, _ in records(path) if isinstance(e, Bar) and s >= near)
    with JournalReader(path) as reader:
        bar = reader.event(seq)
    assert isinstance(bar, Bar)
    set_payload(path, seq, encode(msgspec.structs.replace(bar, close=bar.close + 1.0)))
    for at, event, _ in records(path):
        if isinstance(event, Checkpoint) and at > seq:
            head = next(h for s, _, h in records(path) if s == at - 1)
            fixed = msgspec.structs.replace(event, head=head)
            if resign is not None:
                fixed = resign.checkpoint(event.ts, "signed-run", event.seq, bytes.fromhex(head))
            set_payload(path, at, encode(fixed))
    rechain(path)
    return seq


# -- anchors -------------------------------------------------------------------------------------


def test_the_chain_alone_does_not_catch_a_rewrite_that_is_rechained(signed: Path, tmp_path: Path) -> None:
    path = copy(signed, tmp_path)
    forge_bar(path, 30)
    assert verify(path).ok


def test_an_anchor_catches_any_rewrite_at_or_before_it(signed: Path, tmp_path: Path) -> None:
    history = records(signed)
    final = history[-1][2]
    middle = next(h for s, _, h in history if s == 50)
    assert verify(signed, expect=Expectations(expect_head=final)).anchor_seq == len(history)
    assert verify(signed, expect=Expectations(expect_head=middle)).anchor_seq == 50
    path = copy(signed, tmp_path)
    forge_bar(path, 30)
    for anchor in (final, middle):
        report = verify(path, expect=Expectations(expect_head=anchor))
        assert not report.ok and report.problem == f"the chain does not pass through the expected head {anchor}"
    early = next(h for s, _, h in history if s == 20)  # taken before the rewrite: still proves what it covers
    assert verify(path, expect=Expectations(expect_head=early)).anchor_seq == 20


def test_verify_and_audit_take_the_anchor_on_the_command_line(
    signed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    final = records(signed)[-1][2]
    assert main(["verify", str(signed), "--expect-head", final]) == 0
    assert "passes through the expected head" in capsys.readouterr().out
    path = copy(signed, tmp_path)
    forge_bar(path, 30)
    assert main(["verify", str(path), "--expect-head", final]) == 1
    assert "does not pass through the expected head" in capsys.readouterr().out
    assert main(["audit", str(path), "--expect-head", final]) == 1
    assert "audit: FAIL" in capsys.readouterr().out
    assert main(["verify", str(path), "--expect-head", "abc"]) == 2
    assert "64 hex characters" in capsys.readouterr().err


# -- signed checkpoints --------------------------------------------------------------------------


def test_signed_checkpoints_verify_with_the_owners_public_key(
    signed: Path, keys: dict[str, tuple[Path, Path, Signer]], capsys: pytest.CaptureFixture[str]
) -> None:
    report = verify(signed, expect=Expectations(public_key=str(keys["owner"][1])))
    checkpoints = [s for s, e, _ in records(signed) if isinstance(e, Checkpoint)]
    assert report.ok and report.checkpoints == len(checkpoints) == BARS // EVERY
    assert report.signed_through == checkpoints[-1] - 1
    assert main(["verify", str(signed), "--pubkey", str(keys["owner"][1])]) == 0
    assert f"{len(checkpoints)} signed checkpoints verify" in capsys.readouterr().out


def test_a_rewrite_without_the_private_key_fails_at_the_first_checkpoint_after_it(
    signed: Path, tmp_path: Path, keys: dict[str, tuple[Path, Path, Signer]]
) -> None:
    path = copy(signed, tmp_path)
    forged = forge_bar(path, 30)  # re-chained, checkpoints renamed to the new hashes, old signatures kept
    assert verify(path).ok  # the chain alone cannot tell
    first_after = min(s for s, e, _ in records(path) if isinstance(e, Checkpoint) and s > forged)
    report = verify(path, expect=Expectations(public_key=str(keys["owner"][1])))
    assert not report.ok and report.first_bad_seq == first_after
    assert report.problem == "checkpoint signature does not verify with the given public key"


def test_a_rewrite_resigned_with_another_key_fails_on_the_headers_key(
    signed: Path, tmp_path: Path, keys: dict[str, tuple[Path, Path, Signer]]
) -> None:
    path = copy(signed, tmp_path)
    forge_bar(path, 30, resign=keys["forger"][2])
    assert not verify(path, expect=Expectations(public_key=str(keys["owner"][1]))).ok
    report = verify(path, expect=Expectations(public_key=str(keys["forger"][1])))
    assert not report.ok and report.first_bad_seq == 1 and "the run header names signing key" in report.problem


def test_a_journal_without_checkpoints_does_not_pass_a_pubkey_check(
    tmp_path: Path, keys: dict[str, tuple[Path, Path, Signer]]
) -> None:
    path = tmp_path / "unsigned.journal"
    asyncio.run(write_signed(path, None))
    report = verify(path, expect=Expectations(public_key=str(keys["owner"][1])))
    assert not report.ok and "names signing key none" in report.problem


def test_a_checkpoint_that_names_another_record_is_damage(signed: Path, tmp_path: Path) -> None:
    path = copy(signed, tmp_path)
    at, event = next((s, e) for s, e, _ in records(path) if isinstance(e, Checkpoint))
    assert isinstance(event, Checkpoint)
    set_payload(path, at, encode(msgspec.structs.replace(event, seq=event.seq - 1)))
    report = verify(path)
    assert not report.ok and report.first_bad_seq == at and "not the record before it" in report.problem


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "session.pem"
    assert main(["keygen", "--out", str(key)]) == 0
    assert key.stat().st_mode & 0o777 == 0o600 and (tmp_path / "session.pem.pub").exists()
    signer = Signer.load(key)
    assert signer is not None and signer.fingerprint in capsys.readouterr().out
    assert main(["keygen", "--out", str(key)]) == 2  # never overwritten
