"""Export a journal to Parquet, CSV (one table per event kind) or JSON Lines.

Every exported row carries ``seq``, ``input`` (bool), ``cause`` and ``hash``
(hex) next to the event's own fields, so an export can be checked against the
journal it came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import msgspec
import pandas as pd

from tidemark.journal.checked import read_checked
from tidemark.journal.reader import JournalReader

FORMATS: Final = ("parquet", "csv", "jsonl")


def _row(record: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "seq": record.seq,
        "input": record.is_input,
        "cause": record.cause,
        "hash": record.hash.hex(),
    }
    fields = msgspec.structs.asdict(record.event)
    for key, value in fields.items():
        row[key] = list(value) if isinstance(value, tuple) else value
    return row


def export(path: str | Path, out_dir: str | Path, fmt: str, *, trust: bool = False) -> list[Path]:
    """Write the export of journal ``path`` into ``out_dir``; returns the
    files. The journal is verified while it is exported: a damaged one is
    refused (:class:`JournalIntegrityError`) and nothing of it is left in
    ``out_dir`` (files are written under temporary names and renamed once
    verify has passed), unless ``trust``."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    staged: list[Path] = []
    try:
        with read_checked(path, trust=trust):
            staged = _export(Path(path), out, fmt)
    except BaseException:
        for partial in staged or out.glob(f".*{PARTIAL}"):
            partial.unlink(missing_ok=True)
        raise
    written = []
    for partial in staged:
        target = partial.with_name(partial.name[1 : -len(PARTIAL)])
        partial.replace(target)
        written.append(target)
    return written


PARTIAL = ".partial"


def _staging(target: Path) -> Path:
    return target.with_name(f".{target.name}{PARTIAL}")


def _export(path: Path, out: Path, fmt: str) -> list[Path]:
    with JournalReader(path) as reader:
        if fmt == "jsonl":
            return [_export_jsonl(reader, out)]
        tables: dict[str, list[dict[str, Any]]] = {}
        for record in reader.records():
            tables.setdefault(record.kind, []).append(_row(record))
    written = []
    for kind in sorted(tables):
        frame = pd.DataFrame(tables[kind])
        target = _staging(out / f"{kind}.{fmt}")
        if fmt == "parquet":
            frame.to_parquet(target, index=False)
        else:
            for column in frame.columns:
                if frame[column].map(lambda v: isinstance(v, list)).any():
                    frame[column] = frame[column].map(lambda v: msgspec.json.encode(v).decode())
            frame.to_csv(target, index=False)
        written.append(target)
    return written


def _export_jsonl(reader: JournalReader, out: Path) -> Path:
    target = _staging(out / "events.jsonl")
    encoder = msgspec.json.Encoder()
    with target.open("wb") as handle:
        for record in reader.records():
            line = {
                "seq": record.seq,
                "kind": record.kind,
                "input": record.is_input,
                "cause": record.cause,
                "hash": record.hash.hex(),
            }
            line["event"] = msgspec.to_builtins(record.event)
            handle.write(encoder.encode(line) + b"\n")
    return target
