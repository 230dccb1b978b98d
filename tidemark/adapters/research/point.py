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
import shutil
import tempfile
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
    collect: bool = False
    inputs: str = ""
    """The sweep's input journal: the point's journal then reads its market
    inputs from it (see :mod:`tidemark.journal.shared`)."""


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
    payload: bytes = b""
    """The journal's bytes, from a worker that collects (not journaled)."""


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
    failure: it is the row's status and error. With ``task.collect`` the
    journal is written to a temporary folder here and sent back in
    ``row.payload`` (workers that do not share the sweep's filesystem)."""
    from tidemark.adapters.backtest import execute, result_of

    planned, row = plan_point(setup, task)
    if planned is None:
        return row
    if not task.collect:
        done = read_back(Path(row.journal), row)
        if done is not None:
            return done
    _, market, _ = prepared(setup)
    folder = Path(tempfile.mkdtemp(prefix="tidemark-point-")) if task.collect else None
    path = folder / planned.default_journal if folder is not None else Path(row.journal)
    try:
        inline = multiprocessing.current_process().daemon  # e.g. a Dask worker: no child processes
        inputs = task.inputs if task.inputs and not task.collect else None
        writer = asyncio.run(execute(planned, market, path, overwrite=True, inline=inline, inputs=inputs))
        result = result_of(writer)
        row = _filled(row, result, cached=False)
        if folder is not None:
            row.payload = path.read_bytes()
    except Exception as exc:
        from tidemark.core.engine import started_nothing

        status = STATUS_INVALID if started_nothing(exc) else STATUS_FAILED
        journal = row.journal if folder is None and path.exists() else ""
        return PointRow(task.index, task.params, status, row.run_id, journal=journal, error=_one_line(exc))
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    return row


def plan_point(setup: Setup, task: PointTask) -> tuple[Any, PointRow]:
    """The point's planned run and its row (journal path under
    ``task.runs_dir``); (None, an ``invalid`` row) if its parameters are
    refused."""
    from tidemark.adapters.backtest import build_config, plan_run
    from tidemark.core.strategy.params import ParamError

    base, market, prints = prepared(setup)
    try:
        if base.strategies:  # a strategy given as source (a notebook class): its params are its own
            (spec,) = base.strategies
            spec = msgspec.structs.replace(spec, params={**spec.params, **task.params})
            config = build_config(base, strategies=[spec])
        else:
            config = build_config(base, params={**base.params, **task.params})
        planned = plan_run(config, market, prints)
    except (ParamError, ValueError) as exc:
        return None, PointRow(task.index, task.params, STATUS_INVALID, error=_one_line(exc))
    path = Path(task.runs_dir) / planned.default_journal
    return planned, PointRow(task.index, task.params, STATUS_OK, planned.header.run_id, journal=str(path))


def read_back(path: Path, row: PointRow) -> PointRow | None:
    """The row of a point whose journal at ``path`` exists, verifies, is
    its run and is sealed finished; else None (run it)."""
    from tidemark.adapters.backtest import Result

    if not path.exists():
        return None
    try:
        result = Result.from_journal(path)
        if result.header.run_id == row.run_id and _sealed_finished(path):
            return _filled(row, result, cached=True)
    except Exception:  # a damaged or unfinished journal of this point: run it again
        pass
    return None


def store_collected(row: PointRow, runs: Path) -> PointRow:
    """Write a collected journal (``row.payload``) under ``runs`` and check
    it: it must verify and end at the head the worker reported."""
    from tidemark.journal.verify import verify

    if not row.payload:
        return row
    path = runs / Path(row.journal).name
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(row.payload)
    os.replace(partial, path)
    row.payload = b""
    row.journal = str(path)
    report = verify(path)
    if not report.ok or report.head != row.head:
        row.status = STATUS_FAILED
        row.error = f"{path}: the collected journal does not verify to the head its worker reported ({report.problem})"
    return row


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
