"""Journals written by earlier versions replay byte for byte and report."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from tidemark.adapters.backtest import Result, replay_verified

JOURNALS = Path(__file__).resolve().parents[1] / "data" / "journals"


@pytest.mark.parametrize("name", ["legacy-ema", "legacy-funding", "legacy-multi"])
def test_earlier_journals_replay_identically(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.journal"
    with gzip.open(JOURNALS / f"{name}.journal.gz") as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    checked = replay_verified(path)
    assert checked.integrity.ok, checked.integrity.message
    assert checked.replay is not None and checked.replay.ok, checked.replay
    result = Result.from_journal(path)
    assert result.metrics["trades"] > 10
