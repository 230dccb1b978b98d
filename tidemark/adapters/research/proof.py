"""Proving a sweep: its manifest's chain, and every point against it.

``verify_sweep`` checks the manifest (a journal: its chain, its seal) and,
for every point the manifest records as run, that the point's journal
verifies, is the run the manifest names (run id) and ends exactly at the
head the manifest recorded. With ``audit=True`` each point is also
replayed (``replay --check``: its outputs follow from its inputs) and its
metrics, rebuilt from its journal, must equal the manifest's summary row.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from tidemark.adapters.research.point import STATUS_OK, summary_metrics
from tidemark.core.events import RunStarted, SweepPoint

MANIFEST = "sweep.journal"


@dataclass
class SweepProof:
    """What a verify (or audit) of a sweep found: ``ok`` only if the
    manifest and every point check out; ``problems``: one line each."""

    manifest: Path
    sweep_id: str = ""
    head: str = ""
    points: int = 0
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def manifest_path(path: str | os.PathLike[str]) -> Path:
    """A sweep folder's manifest, or the manifest itself."""
    given = Path(path)
    return given / MANIFEST if given.is_dir() else given


def is_sweep_manifest(path: str | os.PathLike[str]) -> bool:
    """True for a sweep folder or a journal whose header has mode ``sweep``."""
    from tidemark.journal.reader import JournalReader

    target = manifest_path(path)
    if not target.is_file():
        return False
    try:
        with JournalReader(target) as reader:
            return reader.meta.get("mode") == "sweep"
    except Exception:
        return False


def verify_sweep(
    path: str | os.PathLike[str], *, audit: bool = False, progress: Callable[[int, int], None] | None = None
) -> SweepProof:
    """Check the sweep at ``path`` (its folder or manifest): the manifest
    verifies and is sealed finished, and every point it records as run has
    a journal that verifies, is that run and ends at the recorded head;
    ``audit``: each point is also replayed and its metrics rebuilt and
    compared with the manifest's row. Never raises on damage: ``problems``
    says what is wrong, one line each."""
    from tidemark.journal.reader import JournalReader
    from tidemark.journal.verify import verify

    manifest = manifest_path(path)
    proof = SweepProof(manifest)
    report = verify(manifest)
    proof.head = report.head
    if not report.ok:
        proof.problems.append(f"{manifest}: {report.problem or 'damaged'} (first bad seq {report.first_bad_seq})")
        return proof
    if report.status != "finished":
        proof.problems.append(f"{manifest}: the sweep is {report.status or 'unsealed'}, not finished (resume it)")
    with JournalReader(manifest) as reader:
        header = reader.header()
        if not isinstance(header, RunStarted) or header.mode != "sweep":
            proof.problems.append(f"{manifest}: not a sweep manifest")
            return proof
        proof.sweep_id = header.run_id
        points = [event for _, event in reader.events() if isinstance(event, SweepPoint)]
    proof.points = len(points)
    runs = [p for p in points if p.status == STATUS_OK]
    for k, point in enumerate(runs):
        problem = _check_point(manifest.parent, point, audit)
        if problem:
            proof.problems.append(f"point {point.index} ({point.run_id}): {problem}")
        proof.checked += 1
        if progress is not None:
            progress(k + 1, len(runs))
    return proof


def _check_point(folder: Path, point: SweepPoint, audit: bool) -> str:
    from tidemark.journal.reader import JournalReader
    from tidemark.journal.verify import verify

    journal = folder / point.journal
    if not point.journal or not journal.is_file():
        return f"its journal {point.journal or '(none)'} is missing"
    report = verify(journal)
    if not report.ok:
        return f"{journal}: {report.problem or 'damaged'} (first bad seq {report.first_bad_seq})"
    if report.head != point.head:
        return f"{journal} ends at head {report.head}, the manifest recorded {point.head}"
    with JournalReader(journal) as reader:
        header = reader.header()
    if not isinstance(header, RunStarted) or header.run_id != point.run_id:
        return f"{journal} is run {getattr(header, 'run_id', '?')}, the manifest recorded {point.run_id}"
    if not audit:
        return ""
    from tidemark.adapters.backtest import Result, replay_verified

    replayed = replay_verified(journal)
    if not replayed.ok:
        if replayed.replay is None:
            return f"replay --check refused: {replayed.integrity.problem}"
        divergence = replayed.replay.divergence
        return f"replay --check diverged{f' at seq {divergence.seq}' if divergence is not None else ''}"
    rebuilt = summary_metrics(Result.from_journal(journal).metrics)
    recorded: dict[str, Any] = msgspec.json.decode(point.metrics) if point.metrics else {}
    for key in sorted(set(rebuilt) | set(recorded)):
        if not _same(rebuilt.get(key), recorded.get(key)):
            return f"metric {key}: the journal gives {rebuilt.get(key)!r}, the manifest recorded {recorded.get(key)!r}"
    return ""


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b)
