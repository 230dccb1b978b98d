"""Parameter sweeps: grid, random and Optuna searches over journaled runs.

Every point is an ordinary backtest with its own journal (content-addressed:
the same data, config and code give the same run id and the same bytes as
``tidemark backtest`` with those parameters). The sweep itself is a journal,
its *manifest*: a header (mode ``sweep``) holding the spec, then one
:class:`~tidemark.core.events.SweepPoint` per point in index order, with
the point's parameters, status, run id, head and summary row. The manifest
anchors every point: ``verify_sweep`` checks the manifest's chain and that
each point's journal verifies and ends at the head the manifest names.

Points come back from workers in any order; the manifest is written in
index order, so it is the same bytes on one process, a local pool or a Dask
cluster. An interrupted sweep resumes: points already in the manifest (or
whose journal exists, sealed and verified) are not run again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import operator
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pandas as pd

from tidemark import __version__
from tidemark.adapters.research.executors import DaskExecutor, Executor, LocalPool, SerialExecutor
from tidemark.adapters.research.point import (
    _MARKETS,
    STATUS_INVALID,
    STATUS_OK,
    PointRow,
    PointTask,
    Setup,
    params_key,
    plan_point,
    read_back,
    relative,
    run_point,
    store_collected,
)
from tidemark.adapters.research.space import (
    Dimension,
    SpaceError,
    describe,
    grid_points,
    parse_dimension,
    random_points,
)
from tidemark.core import config as cfg
from tidemark.core.config import RunConfig
from tidemark.core.events import RunStarted, SweepPoint
from tidemark.core.ids import canonical_json, content_id, sha256_hex
from tidemark.journal.shared import INPUTS_FOLDER, extract_inputs, share_inputs

METHODS = ("grid", "random", "optuna")
RANKABLE_METRICS = frozenset(
    {
        "initial_cash",
        "final_equity",
        "total_return",
        "annualized_return",
        "max_drawdown",
        "sharpe",
        "sortino",
        "calmar",
        "trades",
        "open_trades",
        "win_rate",
        "profit_factor",
        "expectancy",
        "avg_mae",
        "avg_mfe",
        "exposure_time",
        "fees_paid",
        "bars",
        "years",
        "rejections",
        "funding",
        "interest",
        "leverage",
    }
)
"""The numeric metrics of every run's summary (tests/adapters/research keep
this list equal to what a run reports): what an objective or a constraint
may name."""
MANIFEST = "sweep.journal"
BASE_INDEX = -1
"""The manifest index of the base run (the strategy's own parameters), run
first when a constraint compares with it."""

Progress = Callable[[int, int], None]


class SweepError(ValueError):
    """A sweep that cannot run as asked (its spec, its folder)."""


# -- objective and constraints ----------------------------------------------------------------------

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
_RULE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*$")


@dataclass(frozen=True)
class Rule:
    """``metric op value``; ``value`` ``base`` is the base run's figure
    (e.g. ``max_drawdown>=base``: no worse than the strategy's defaults)."""

    metric: str
    op: str
    value: float | str

    @classmethod
    def parse(cls, text: str) -> Rule:
        match = _RULE.match(text)
        if not match:
            raise SweepError(f"constraint {text!r}: expected METRIC OP VALUE, e.g. max_drawdown>=-0.25 or trades>=10")
        metric, op, raw = match.groups()
        if raw == "base":
            return cls(metric, op, "base")
        try:
            value = float(raw)
        except ValueError:
            raise SweepError(f"constraint {text!r}: {raw!r} is not a number (or 'base')") from None
        return cls(metric, op, value)

    @property
    def text(self) -> str:
        value = self.value if isinstance(self.value, str) else repr(self.value)
        return f"{self.metric}{self.op}{value}"

    def holds(self, metrics: Mapping[str, Any], base: Mapping[str, Any] | None) -> bool:
        have = metrics.get(self.metric)
        want = (base or {}).get(self.metric) if self.value == "base" else self.value
        if not isinstance(have, (int, float)) or not isinstance(want, (int, float)):
            return False  # n/a (a ruined run's Sharpe): not qualified
        return _OPS[self.op](have, want)


# -- the spec ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepSpec:
    """What a sweep runs: the base config, the space, how points are chosen
    (``grid``; ``random`` with ``trials`` and ``seed``; ``optuna``: TPE
    seeded with ``seed``, ``trials`` points asked ``batch`` at a time so
    the choice does not depend on the number of workers), the ``objective``
    metric and its direction, and the constraints a point must meet to be
    ranked."""

    config: RunConfig
    dims: tuple[Dimension, ...]
    method: str = "grid"
    trials: int = 0
    seed: int = 0
    objective: str = "sharpe"
    maximize: bool = True
    constraints: tuple[Rule, ...] = ()
    batch: int = 8

    def __post_init__(self) -> None:
        unknown = [m for m in (self.objective, *(r.metric for r in self.constraints)) if m not in RANKABLE_METRICS]
        if unknown:
            raise SweepError(f"{unknown[0]!r} is not a metric of a run; known: {', '.join(sorted(RANKABLE_METRICS))}")
        if self.method not in METHODS:
            raise SweepError(f"method {self.method!r}: choose one of {', '.join(METHODS)}")
        if not self.dims:
            raise SweepError("nothing to sweep: give at least one parameter (--grid fast=5:50:5)")
        if self.method != "grid" and self.trials < 1:
            raise SweepError(f"a {self.method} search needs a number of trials (at least 1)")
        if self.batch < 1:
            raise SweepError("batch must be at least 1")
        if len(self.config.strategies) > 1:
            raise SweepError("a sweep varies one strategy's parameters; give one strategy, not a strategies list")
        given = set(self.config.strategies[0].params if self.config.strategies else self.config.params)
        clash = sorted(d.name for d in self.dims if d.name in given)
        if clash:
            raise SweepError(f"parameter {clash[0]!r} is both fixed (--param) and swept")

    def as_json(self, journaled: RunConfig, code: str) -> str:
        """The spec as the manifest's header stores it (``journaled``: the
        base config as runs journal it; ``code``: the strategy source's
        sha256, so a changed strategy is another sweep)."""
        return canonical_json(
            {
                "batch": self.batch if self.method == "optuna" else 0,
                "code": code,
                "config": cfg.to_builtins(journaled),
                "constraints": [r.text for r in self.constraints],
                "direction": "maximize" if self.maximize else "minimize",
                "method": self.method,
                "objective": self.objective,
                "seed": self.seed,
                "space": describe(list(self.dims)),
                "trials": self.trials,
            }
        )

    @property
    def needs_base(self) -> bool:
        return any(r.value == "base" for r in self.constraints)


# -- the result -------------------------------------------------------------------------------------


@dataclass
class SweepResult:
    """A finished sweep: ``table`` (one row per point: index, parameters,
    status, qualified, rank, the objective and every metric, run id, head
    and journal path), the ``folder`` with its manifest, outputs and point
    journals, and the spec."""

    folder: Path
    manifest: Path
    sweep_id: str
    head: str
    spec: SweepSpec
    table: pd.DataFrame
    base: dict[str, Any] | None = None
    outputs: dict[str, Path] = field(default_factory=dict)
    ran: int = 0
    """Points run by this call (the rest were read back: resumed or shared)."""

    @property
    def best(self) -> pd.Series | None:
        """The top-ranked point (None if no point qualified)."""
        ranked = self.table[self.table["rank"].notna()].sort_values("rank")
        return ranked.iloc[0] if len(ranked) else None

    def top(self, n: int = 10) -> pd.DataFrame:
        return self.table[self.table["rank"].notna()].sort_values("rank").head(n)

    def result(self, index: int) -> Any:
        """The full :class:`tidemark.Result` of point ``index``, read back
        (verified) from its journal."""
        from tidemark.adapters.backtest import Result

        row = self.table.loc[self.table["index"] == index]
        if not len(row) or not row.iloc[0]["journal"]:
            raise KeyError(f"point {index}: no journal (status {row.iloc[0]['status'] if len(row) else 'unknown'})")
        return Result.from_journal(self.folder / str(row.iloc[0]["journal"]))

    def heatmap(self, x: str, y: str, value: str | None = None) -> pd.DataFrame:
        """``value`` (default: the objective) over two parameters: rows ``y``,
        columns ``x``; points of other parameters are averaged."""
        value = value or self.spec.objective
        ok = self.table[self.table["status"] == STATUS_OK]
        return ok.pivot_table(index=y, columns=x, values=value, aggfunc="mean")


# -- running ----------------------------------------------------------------------------------------


def _points(spec: SweepSpec) -> list[dict[str, Any]]:
    if spec.method == "grid":
        return grid_points(list(spec.dims))
    return random_points(list(spec.dims), spec.trials, spec.seed)


def run_sweep(
    spec: SweepSpec,
    *,
    data: Sequence[Any] | None = None,
    out: str | os.PathLike[str] | None = None,
    workers: int | None = 1,
    scheduler: str | None = None,
    dask_workers: int | None = None,
    tz: str | None = None,
    progress: Progress | None = None,
    top: int = 0,
    report: bool = True,
    force: bool = False,
    collect: bool = False,
    shared: bool = True,
) -> SweepResult:
    """Run (or resume) a sweep; see the module docstring.

    ``workers``: 1 runs in this process, more a local pool of that many
    processes; ``scheduler`` a Dask scheduler address, ``dask_workers`` a
    local Dask cluster of that many workers. ``out``: the sweep's folder
    (default ``sweeps/<strategy>-<sweep id>``). ``top``: write full HTML
    reports of the best ``top`` points. ``force``: start over in a folder
    that holds another sweep. ``collect``: Dask workers send each journal
    back (for workers that cannot write the sweep folder); it is written
    here and verified against the head the worker reported. ``shared``:
    the points' market inputs are journaled once, in ``inputs/`` (each
    point's journal reads them from there, see :mod:`tidemark.journal.shared`);
    False: each point's journal holds its own copy."""
    from tidemark.adapters.backtest import open_market

    if collect and not (scheduler or dask_workers):
        raise SweepError("collect applies to a Dask cluster (--scheduler or --dask-workers)")
    base_config = spec.config
    journaled, market, prints = open_market(base_config, data, tz=tz)
    strategy = journaled.strategies[0].strategy if journaled.strategies else journaled.strategy or "ema_cross"
    from tidemark.adapters.backtest import strategy_configs

    (resolved,) = strategy_configs(journaled, market.symbols)
    # The spec names the strategy as every point runs it (id, origin, base
    # parameters; its source by hash), however it was given (flag, name, class).
    normalized = msgspec.structs.replace(
        journaled, strategy=None, params={}, strategies=[msgspec.structs.replace(resolved, source="")]
    )
    spec_json = spec.as_json(normalized, sha256_hex(resolved.source))
    prints_json = canonical_json(prints)
    sweep_id = content_id(sha256_hex(spec_json), prints_json, "sweep")
    folder = Path(out) if out is not None else Path("sweeps") / f"{Path(strategy).stem}-{sweep_id}"
    folder.mkdir(parents=True, exist_ok=True)
    runs = folder / "runs"
    runs.mkdir(exist_ok=True)
    manifest = folder / MANIFEST
    previous = _previous_rows(manifest, sweep_id, force)

    setup_config = cfg.to_builtins(base_config)
    data_list = _absolute(data if data else None)
    if data_list is None and setup_config.get("data"):
        setup_config["data"] = [str(Path(p).resolve()) for p in setup_config["data"]]
    setup = Setup(sweep_id, setup_config, data_list, tz)
    executor: Executor
    if scheduler or dask_workers:
        executor = DaskExecutor(setup, address=scheduler, workers=dask_workers)
    elif workers is not None and workers > 1:
        executor = LocalPool(setup, workers)
    else:
        _MARKETS.clear()
        _MARKETS[setup.key] = (journaled, market, prints)  # loaded already: this process is the worker
        executor = SerialExecutor(setup)
    first_open = int(market.timeline[0]) - next(iter(market.instruments.values())).interval
    header = RunStarted(
        first_open,
        sweep_id,
        spec_json,
        sha256_hex(spec_json),
        prints_json,
        __version__,
        spec.seed,
        "",
        "sweep",
    )
    if collect or shared:
        # this process checks for finished points, and runs the first one (its inputs become the sweep's)
        _MARKETS[setup.key] = (journaled, market, prints)
    runner = _Runner(spec, executor, folder, runs, previous, progress, setup, collect, shared)
    try:
        runner.run(manifest, header)
    finally:
        if runner.interrupted:
            getattr(executor, "terminate", executor.close)()
        else:
            executor.close()
    table = build_table(spec, runner.rows, runner.base)
    result = SweepResult(folder, manifest, sweep_id, runner.head, spec, table, runner.base, ran=runner.ran)
    from tidemark.adapters.research.outputs import write_outputs

    result.outputs = write_outputs(result, top=top, report=report)
    return result


def _absolute(data: Sequence[Any] | None) -> list[Any] | None:
    if data is None:
        return None
    return [str(Path(d).resolve()) if isinstance(d, (str, os.PathLike)) else d for d in data]


def _previous_rows(manifest: Path, sweep_id: str, force: bool) -> dict[str, PointRow]:
    """The points an earlier run of this sweep finished, by parameters
    (verified manifest; a damaged one is started over)."""
    if not manifest.exists():
        return {}
    from tidemark.journal.reader import JournalReader
    from tidemark.journal.verify import verify

    report = verify(manifest)
    if not report.ok:
        return {}
    with JournalReader(manifest) as reader:
        header = reader.header()
        if header is None or header.mode != "sweep":
            raise SweepError(f"{manifest}: not a sweep manifest; choose another --out")
        if header.run_id != sweep_id:
            if not force:
                raise SweepError(
                    f"{manifest.parent}: holds another sweep ({header.run_id}); choose another --out or --force"
                )
            return {}
        rows: dict[str, PointRow] = {}
        for _, event in reader.events():
            if isinstance(event, SweepPoint) and event.status == STATUS_INVALID:
                params = msgspec.json.decode(event.params)
                rows[params_key(params)] = PointRow(
                    event.index, params, event.status, event.run_id, error=event.error, cached=True
                )
            elif isinstance(event, SweepPoint) and event.status == STATUS_OK:
                params = msgspec.json.decode(event.params)
                path = manifest.parent / event.journal
                if _journal_head(path) == event.head:
                    rows[params_key(params)] = PointRow(
                        event.index,
                        params,
                        event.status,
                        event.run_id,
                        event.head,
                        str(path),
                        msgspec.json.decode(event.metrics),
                        cached=True,
                    )
        return rows


def _sweep_inputs(folder: Path) -> Path | None:
    """The input journal an earlier run of this sweep made (resuming), if any."""
    found = sorted((folder / INPUTS_FOLDER).glob("inputs-*.journal"))
    return found[0] if len(found) == 1 else None


def _journal_head(path: Path) -> str:
    from tidemark.journal.reader import JournalReader

    if not path.exists():
        return ""
    try:
        with JournalReader(path) as reader:
            if reader.meta.get("status") != "finished":
                return ""
            return reader.meta.get("head_hash", "")
    except Exception:
        return ""


class _Runner:
    """Dispatches points, collects rows, writes the manifest in index order."""

    def __init__(
        self,
        spec: SweepSpec,
        executor: Executor,
        folder: Path,
        runs: Path,
        previous: dict[str, PointRow],
        progress: Progress | None,
        setup: Setup,
        collect: bool = False,
        shared: bool = True,
    ) -> None:
        self.setup = setup
        self.collect = collect
        self.shared = shared
        self.inputs: Path | None = _sweep_inputs(folder) if shared else None
        self.spec = spec
        self.executor = executor
        self.folder = folder
        self.runs = runs
        self.previous = previous
        self.progress = progress
        self.rows: dict[int, PointRow] = {}
        self.base: dict[str, Any] | None = None
        self.head = ""
        self.ran = 0
        self.interrupted = False
        self._next = BASE_INDEX if spec.needs_base else 0
        self._writer: Any = None
        self._by_key: dict[str, PointRow] = {}
        self._wait: Callable[[Any], Any] = asyncio.run
        self._ts = 0
        self._total = 0
        self._done = 0

    def run(self, manifest: Path, header: RunStarted) -> None:
        """Run every point; the manifest is written on a private event loop,
        driven only between points (a serial point runs its own)."""
        from tidemark.journal.writer import JournalWriter

        loop = asyncio.new_event_loop()
        self._wait = loop.run_until_complete
        try:
            self._run(manifest, header, JournalWriter)
        finally:
            loop.close()

    def _run(self, manifest: Path, header: RunStarted, writer_type: Any) -> None:
        self._ts = header.ts  # every record at the data's start: a manifest has no clock of its own
        self._writer = self._wait(writer_type.create(manifest, overwrite=True))
        self._writer.record(1, header, True, 0)
        try:
            if self.spec.needs_base:
                self._total = 1
                (row,) = self._batch([(BASE_INDEX, {})])
                if row.status != STATUS_OK:
                    raise SweepError(f"the base run failed: {row.error}")
                self.base = row.metrics
            if self.spec.method == "optuna":
                self._optuna()
            else:
                points = _points(self.spec)
                self._total += len(points)
                self._batch(list(enumerate(points)))
        except BaseException as exc:
            self.interrupted = isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError)) or (
                type(exc).__name__ == "RunInterrupted"
            )
            status = "interrupted" if self.interrupted else "failed"
            sealed = self._wait(self._writer.close(status, exc))
            self.head = sealed.head
            raise
        sealed = self._wait(self._writer.close())
        self.head = sealed.head

    def _batch(self, points: list[tuple[int, dict[str, Any]]]) -> list[PointRow]:
        """Run ``points`` (index, params): reuse earlier rows, run each
        distinct parameter set once, record rows in index order."""
        tasks: list[PointTask] = []
        waiting: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        out: dict[int, PointRow] = {}
        for index, params in points:
            key = params_key(params)
            done = self.previous.get(key) or self._by_key.get(key)
            if done is not None:
                out[index] = self._copy(done, index, params)
                continue
            if key in waiting:
                waiting[key].append((index, params))
                continue
            task = PointTask(index, params, str(self.runs.resolve()), self.collect, self._inputs_text())
            if self.collect:  # the workers cannot see this folder: look for the point's journal here
                planned, row = plan_point(self.setup, task)
                found = read_back(Path(row.journal), row) if planned is not None else None
                if found is not None:
                    out[index] = found
                    continue
            waiting[key] = [(index, params)]
            tasks.append(task)
        for index in sorted(out):
            self._accept(out[index])
        rows: Iterable[PointRow] = ()
        if tasks and self.shared and self.inputs is None:
            # The sweep's input journal is made from the first point's journal,
            # run here; the other points share it as they finish.
            rows = self._first_then(tasks[0], tasks[1:])
        elif tasks:
            rows = self.executor.run(tasks)
        for row in rows:
            self.ran += 0 if row.cached else 1
            if row.payload:
                row = store_collected(row, self.runs)
                if self.inputs is not None and row.status == STATUS_OK:
                    share_inputs(row.journal, self.inputs, check=False)
            row.journal = relative(row.journal, self.folder)
            twins = waiting.pop(params_key(row.params))
            for index, params in twins:
                twin = row if index == row.index else self._copy(row, index, params)
                out[index] = twin
                self._accept(twin)
            self._wait(self._writer.pump())
        return [out[index] for index, _ in points]

    def _inputs_text(self) -> str:
        return str(self.inputs.resolve()) if self.inputs is not None else ""

    def _first_then(self, first: PointTask, rest: list[PointTask]) -> Iterator[PointRow]:
        """Run points in this process until one runs (``first`` first), make
        the sweep's input journal from its journal, then run the rest on the
        executor, sharing it."""
        queue = [first, *rest]
        while queue and self.inputs is None:
            task = queue.pop(0)
            row = run_point(self.setup, dataclasses.replace(task, collect=False))  # written here, collected or not
            journal = Path(row.journal)
            if row.status == STATUS_OK and journal.is_file() and not row.cached:
                self.inputs = extract_inputs(journal, self.folder / INPUTS_FOLDER)
                share_inputs(journal, self.inputs, check=False)
            yield row
        yield from self.executor.run([dataclasses.replace(task, inputs=self._inputs_text()) for task in queue])

    @staticmethod
    def _copy(row: PointRow, index: int, params: dict[str, Any]) -> PointRow:
        return PointRow(
            index, params, row.status, row.run_id, row.head, row.journal, dict(row.metrics), row.error, True
        )

    def _accept(self, row: PointRow) -> None:
        if row.cached and os.path.isabs(row.journal):
            row.journal = relative(row.journal, self.folder)
        self.rows[row.index] = row
        if row.status in (STATUS_OK, STATUS_INVALID):
            self._by_key.setdefault(params_key(row.params), row)
        self._done += 1
        while self._next in self.rows:
            r = self.rows[self._next]
            seq = self._writer.last_seq + 1
            self._writer.record(
                seq,
                SweepPoint(
                    self._ts,
                    r.index,
                    canonical_json(r.params),
                    r.status,
                    r.run_id,
                    r.head,
                    r.journal,
                    canonical_json(r.metrics) if r.metrics else "",
                    r.error,
                ),
                False,
                1,
            )
            self._next = 0 if self._next == BASE_INDEX else self._next + 1
        if self.progress is not None:
            self.progress(self._done, max(self._total, self._done))

    def _optuna(self) -> None:
        try:
            import optuna
        except ImportError:
            raise SweepError("an Optuna search needs optuna: pip install 'tidemark[research]'") from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(seed=self.spec.seed)
        study = optuna.create_study(direction="maximize" if self.spec.maximize else "minimize", sampler=sampler)
        self._total += self.spec.trials
        index = 0
        while index < self.spec.trials:
            size = min(self.spec.batch, self.spec.trials - index)
            trials = [study.ask() for _ in range(size)]
            points = [(index + k, _suggest(trial, self.spec.dims)) for k, trial in enumerate(trials)]
            rows = self._batch(points)
            for trial, row in zip(trials, rows, strict=True):
                value = row.metrics.get(self.spec.objective) if row.status == STATUS_OK else None
                qualified = all(rule.holds(row.metrics, self.base) for rule in self.spec.constraints)
                if isinstance(value, (int, float)) and math.isfinite(value) and qualified:
                    study.tell(trial, float(value))
                else:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
            index += size


def _suggest(trial: Any, dims: Iterable[Dimension]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for dim in dims:
        if dim.choices:
            params[dim.name] = trial.suggest_categorical(dim.name, list(dim.choices))
        elif dim.integer:
            params[dim.name] = trial.suggest_int(dim.name, int(dim.low), int(dim.high))
        else:
            params[dim.name] = trial.suggest_float(dim.name, dim.low, dim.high)
    return params


# -- the table --------------------------------------------------------------------------------------

LEAD_METRICS = (
    "total_return",
    "annualized_return",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "trades",
    "win_rate",
    "profit_factor",
    "fees_paid",
    "final_equity",
)


def build_table(spec: SweepSpec, rows: Mapping[int, PointRow], base: Mapping[str, Any] | None) -> pd.DataFrame:
    """One row per point (the base run excluded), ranked by the objective
    among the points that ran and meet every constraint (ties: lower index
    first)."""
    names = [d.name for d in spec.dims]
    records = []
    metric_names: list[str] = []
    for index in sorted(i for i in rows if i != BASE_INDEX):
        row = rows[index]
        for key in row.metrics:
            if key not in metric_names:
                metric_names.append(key)
        qualified = row.status == STATUS_OK and all(r.holds(row.metrics, base) for r in spec.constraints)
        value = row.metrics.get(spec.objective)
        usable = isinstance(value, (int, float)) and math.isfinite(value)
        records.append(
            {
                "index": index,
                **{name: row.params.get(name) for name in names},
                "status": row.status,
                "qualified": bool(qualified and usable),
                **row.metrics,
                "run_id": row.run_id,
                "head": row.head,
                "journal": row.journal,
                "error": row.error,
            }
        )
    ordered = [m for m in LEAD_METRICS if m in metric_names] + [m for m in metric_names if m not in LEAD_METRICS]
    if spec.objective in ordered:
        ordered.remove(spec.objective)
    columns = ["index", *names, "status", "qualified", "rank", spec.objective, *ordered, "run_id", "head", "journal"]
    columns.append("error")
    table = pd.DataFrame.from_records(records, columns=[c for c in columns if c != "rank"])
    if spec.objective not in table.columns:
        table[spec.objective] = float("nan")
    ranked = table[table["qualified"]].sort_values(
        [spec.objective, "index"], ascending=[not spec.maximize, True], kind="mergesort"
    )
    rank = pd.Series(range(1, len(ranked) + 1), index=ranked.index, dtype="float64")
    table.insert(list(table.columns).index("qualified") + 1, "rank", rank.reindex(table.index))
    if metric_names and spec.objective not in metric_names:
        raise SweepError(
            f"objective {spec.objective!r} is not a metric of these runs; known: {', '.join(sorted(metric_names))}"
        )
    return table[[c for c in columns if c in table.columns]]


def dims_from(grid: Mapping[str, Any] | Sequence[str] | None) -> list[Dimension]:
    """Dimensions from CLI texts (``fast=5:50:5``) or a Python mapping:
    a list/range/tuple of values is a list, ``(low, high)`` given as a
    ``slice`` or a 2-tuple of numbers under ``space=`` is a range, a text
    value is a SPEC."""
    if grid is None:
        return []
    if isinstance(grid, Mapping):
        dims = []
        for name, values in grid.items():
            if isinstance(values, str):
                dims.append(parse_dimension(f"{name}={values}"))
            elif isinstance(values, slice):
                step = f":{values.step}" if values.step is not None else ""
                dims.append(parse_dimension(f"{name}={values.start}:{values.stop}{step}"))
            elif isinstance(values, Iterable):
                items = list(values)
                if not items:
                    raise SpaceError(f"{name}: no values")
                dims.append(Dimension(name, ",".join(map(str, items)), choices=tuple(items)))
            else:
                raise SpaceError(f"{name}: give a list of values, a range or a 'low:high:step' text")
        return dims
    return [parse_dimension(t) for t in grid]


def iter_points(result: SweepResult) -> Iterator[pd.Series]:
    for _, row in result.table.iterrows():
        yield row


def sweep(
    strategy: Any = None,
    *,
    data: Any = None,
    grid: Mapping[str, Any] | Sequence[str] | None = None,
    space: Mapping[str, Any] | Sequence[str] | None = None,
    trials: int = 0,
    method: str | None = None,
    seed: int = 0,
    objective: str = "sharpe",
    maximize: bool = True,
    constraints: Sequence[str] = (),
    config: RunConfig | dict[str, Any] | str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    workers: int | None = 1,
    scheduler: str | None = None,
    dask_workers: int | None = None,
    top: int = 0,
    report: bool = True,
    force: bool = False,
    batch: int = 8,
    tz: str | None = None,
    progress: Progress | None = None,
    collect: bool = False,
    shared: bool = True,
    **params: Any,
) -> SweepResult:
    """Sweep a strategy's parameters; the Python face of ``tidemark sweep``.

    ``tidemark.sweep("ema_cross", data="BTC.csv", grid={"fast": range(5, 50, 5),
    "slow": "20:200:10"}, objective="sharpe", constraints=["max_drawdown>=-0.3"])``

    ``grid``: every combination; ``space`` with ``trials``: a random search
    (``method="optuna"``: a seeded TPE search). Values: a list or range of
    values, or a ``low:high[:step]`` text; in ``space`` a ``slice(low,
    high)`` or ``"low:high"`` is a range to draw from. ``data``: a path, a
    list of paths, a DataFrame or ``{symbol: DataFrame}``; ``strategy``: a
    built-in name, a file, a ``Strategy`` subclass or a module. Other
    keywords are fixed parameters, or run settings (``cash``,
    ``commission``, ...) as for :func:`tidemark.backtest`. ``workers``: local
    processes (1: this one); ``scheduler``/``dask_workers``: Dask.
    ``shared=False``: each point's journal holds its own copy of the market
    inputs (by default they are journaled once, in the sweep's ``inputs/``)."""
    from tidemark.adapters.backtest import build_config
    from tidemark.adapters.notebook import _sources, _split, _strategy_spec

    if grid is not None and space is not None:
        raise SweepError("give grid= or space=, not both")
    chosen = method or ("grid" if grid is not None else "random")
    dims = dims_from(grid if grid is not None else space)
    sources, symbols = _sources(data) if data is not None else ([], [])
    overrides, fixed = _split(params)
    run_config = build_config(config, **overrides)
    if strategy is not None and not isinstance(strategy, str):
        run_config = build_config(run_config, strategies=[_strategy_spec(strategy, fixed)], strategy=None, params={})
    else:
        run_config = build_config(run_config, strategy=strategy, params={**run_config.params, **fixed})
    if symbols:
        run_config = build_config(run_config, symbols=symbols)
    spec = SweepSpec(
        run_config,
        tuple(dims),
        chosen,
        trials,
        seed,
        objective,
        maximize,
        tuple(Rule.parse(c) for c in constraints),
        batch,
    )
    return run_sweep(
        spec,
        data=sources or None,
        out=out,
        workers=workers,
        scheduler=scheduler,
        dask_workers=dask_workers,
        tz=tz,
        progress=progress,
        top=top,
        report=report,
        force=force,
        collect=collect,
        shared=shared,
    )
