"""One point of a sweep, run where a worker runs it.

A worker gets the sweep's :class:`Setup` once (the base config and its data)
and loads the market once per setup; each :class:`PointTask` then runs one
parameter set as an ordinary journaled backtest into ``runs_dir`` and sends
back a small :class:`PointRow`. A point whose journal already exists (same
data, config and code: the same content-addressed run id), sealed
``finished`` and verified, is read back instead of run again: that is how
an interrupted sweep resumes and how two sweeps share their common points.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pandas as pd

from tidemark.core.ids import canonical_json

STATUS_OK = "ok"
STATUS_INVALID = "invalid"
STATUS_FAILED = "failed"


@dataclass(frozen=True)
class Setup:
    """What every point of a sweep shares: the base run config (builtins,
    data paths as the user gave them), the data (paths, or DataFrames for a
    notebook sweep) and the timezone for naive times. ``key`` identifies it
    in a worker's cache."""

    key: str
    config: dict[str, Any]
    data: list[Any] | None
    tz: str | None = None


@dataclass(frozen=True)
class PointTask:
    """Run ``params`` over the setup into ``runs_dir``."""

    index: int
    params: dict[str, Any]
    runs_dir: str


@dataclass
class PointRow:
    """A point's outcome: its status, run id, head and journal (a path
    relative to the sweep folder when it is under it), the summary metrics
    (NaN as None) and one line of error."""

    index: int
    params: dict[str, Any]
    status: str
    run_id: str = ""
    head: str = ""
    journal: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    cached: bool = False
    """Read back from an existing journal rather than run (not journaled)."""


_MARKETS: dict[str, tuple[Any, Any, dict[str, Any]]] = {}
"""The markets this process has loaded, by setup key (one per sweep)."""


def prepared(setup: Setup) -> tuple[Any, Any, dict[str, Any]]:
    """The setup's journaled base config, market and fingerprints, loaded
    once in this process."""
    from tidemark.adapters.backtest import build_config, open_market

    hit = _MARKETS.get(setup.key)
    if hit is None:
        _MARKETS.clear()  # one sweep's market at a time per worker
        hit = open_market(build_config(setup.config), setup.data, tz=setup.tz)
        _MARKETS[setup.key] = hit
    return hit


def run_point(setup: Setup, task: PointTask) -> PointRow:
    """Run (or read back) one point; never raises for the point's own
    failure: it is the row's status and error."""
    from tidemark.adapters.backtest import Result, build_config, execute, plan_run, result_of
    from tidemark.core.strategy.params import ParamError

    base, market, prints = prepared(setup)
    runs = Path(task.runs_dir)
    try:
        if base.strategies:  # a strategy given as source (a notebook class): its params are its own
            (spec,) = base.strategies
            spec = msgspec.structs.replace(spec, params={**spec.params, **task.params})
            config = build_config(base, strategies=[spec])
        else:
            config = build_config(base, params={**base.params, **task.params})
        planned = plan_run(config, market, prints)
    except (ParamError, ValueError) as exc:
        return PointRow(task.index, task.params, STATUS_INVALID, error=_one_line(exc))
    path = runs / planned.default_journal
    row = PointRow(task.index, task.params, STATUS_OK, planned.header.run_id, journal=str(path))
    if path.exists():
        try:
            result = Result.from_journal(path)
            if result.header.run_id == row.run_id and _sealed_finished(path):
                return _filled(row, result, cached=True)
        except Exception:  # a damaged or unfinished journal of this point: run it again
            pass
    try:
        inline = multiprocessing.current_process().daemon  # e.g. a Dask worker: no child processes
        writer = asyncio.run(execute(planned, market, path, overwrite=True, inline=inline))
        result = result_of(writer)
    except Exception as exc:
        from tidemark.core.engine import started_nothing

        status = STATUS_INVALID if started_nothing(exc) else STATUS_FAILED
        journal = str(path) if path.exists() else ""
        return PointRow(task.index, task.params, status, row.run_id, journal=journal, error=_one_line(exc))
    return _filled(row, result, cached=False)


def _sealed_finished(path: Path) -> bool:
    from tidemark.journal.reader import JournalReader

    with JournalReader(path) as reader:
        return reader.meta.get("status") == "finished"


def _filled(row: PointRow, result: Any, *, cached: bool) -> PointRow:
    row.head = result.head
    row.metrics = summary_metrics(result.metrics)
    row.cached = cached
    return row


def summary_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """A run's metrics as a JSON-safe summary row: numbers as floats (NaN
    and infinities as None), text kept, anything else dropped."""
    out: dict[str, Any] = {}
    for key in sorted(metrics):
        value = metrics[key]
        if isinstance(value, bool):
            out[key] = value
        elif isinstance(value, (int, float)):
            number = float(value)
            out[key] = number if math.isfinite(number) else None
        elif isinstance(value, str):
            out[key] = value
        elif isinstance(value, pd.Timestamp):
            out[key] = value.isoformat()
    return out


def params_key(params: dict[str, Any]) -> str:
    """The canonical text of a parameter set (points with equal keys are
    the same run)."""
    return canonical_json(params)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def relative(path: str, folder: Path) -> str:
    """``path`` relative to ``folder`` when it is under it (POSIX slashes)."""
    if not path:
        return ""
    try:
        return Path(os.path.relpath(Path(path).resolve(), folder.resolve())).as_posix()
    except ValueError:
        return path
