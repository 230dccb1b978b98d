"""The ``meta`` table: a cache of what the chain says, checked against it.

Every claim a journal makes about its run is a chained record: the run
header (:class:`RunStarted`, seq 1: config, run id, data fingerprints, code
through the strategies' source and the package version, seed) and the final
record (:class:`RunFinished` or :class:`RunFailed`: the status, and for a
failure the error and a traceback summary). ``meta`` mirrors them for quick
queries, plus facts about the file (format, SQLite settings, head) that are
not claims about the run. :func:`meta_problem` is how ``verify`` holds the
cache to the chain: any header field or status that differs, and any key it
does not know, is reported by name.
"""

from __future__ import annotations

from typing import Final

from tidemark.core.events import Event, RunFailed, RunFinished, RunStarted

STATUS_RUNNING: Final = "running"
STATUS_FINISHED: Final = "finished"
STATUS_FAILED: Final = "failed"
STATUS_INTERRUPTED: Final = "interrupted"
STATUS_RECOVERED: Final = "crashed-recovered"
STATUS_QUARANTINED: Final = "quarantined"

UNSEALED: Final = frozenset({STATUS_RUNNING, STATUS_RECOVERED, STATUS_QUARANTINED})
"""Statuses of a journal whose run has no final record (yet)."""

FILE_KEYS: Final = frozenset(
    {
        "format_version",
        "schema_version",
        "status",
        "durability",
        "head_seq",
        "head_hash",
        "journal_mode",
        "synchronous",
        "busy_timeout",
        "sqlite_version",
        "writer",
        "inputs_head",
    }
)
"""Keys about the file and how it was written (not claims about the run)."""

HEADER_KEYS: Final = (
    "run_id",
    "parent_run_id",
    "config",
    "config_hash",
    "fingerprints",
    "package_version",
    "seed",
    "mode",
    "started_ts",
)


def header_meta(event: RunStarted) -> dict[str, str]:
    """The run header fields mirrored into the ``meta`` table for queries."""
    values = (
        event.run_id,
        event.parent_run_id,
        event.config,
        event.config_hash,
        event.fingerprints,
        event.package_version,
        str(event.seed),
        event.mode,
        str(event.ts),
    )
    return dict(zip(HEADER_KEYS, values, strict=True))


def final_status(last: Event | None) -> str | None:
    """The status a journal's last record seals it with (None: not sealed)."""
    if isinstance(last, (RunFinished, RunFailed)):
        return last.status
    return None


def meta_problem(meta: dict[str, str], header: Event | None, last: Event | None, last_seq: int, fmt: int) -> str:
    """What in ``meta`` disagrees with the chain ('' if nothing): ``header``
    is record 1, ``last`` record ``last_seq`` (None for an empty journal);
    ``fmt`` the journal's format version (2 allowed a ``failed`` status with
    no final record)."""
    unknown = sorted(set(meta) - FILE_KEYS - set(HEADER_KEYS))
    if unknown:
        return f"meta has keys the writer never writes: {', '.join(unknown)}"
    status = meta.get("status", "")
    if header is None:
        if any(key in meta for key in HEADER_KEYS):
            return "meta describes a run but the journal has no records"
        return ""
    if not isinstance(header, RunStarted):
        return f"seq 1 is a {type(header).__name__}, not the run header"
    for key, value in header_meta(header).items():
        if meta.get(key) != value:
            stored = _short(meta.get(key))
            return f"meta.{key} disagrees with the run header (seq 1): {stored} in meta, {_short(value)} in the chain"
    sealed = final_status(last)
    if sealed is not None:
        if status != sealed:
            return (
                f"meta.status is {status!r} but the chain ends with {type(last).__name__} "
                f"(status {sealed!r}) at seq {last_seq}"
            )
        return ""
    allowed = UNSEALED | ({STATUS_FAILED} if fmt < 3 else frozenset())
    if status not in allowed:
        return f"meta.status is {status!r} but the chain has no final record (the run did not end) after seq {last_seq}"
    return ""


def _short(value: str | None) -> str:
    if value is None:
        return "nothing"
    return repr(value if len(value) <= 40 else value[:37] + "...")
