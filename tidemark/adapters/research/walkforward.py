"""Walk-forward analysis: choose parameters in sample, trade them out of sample, window after window.

The data's time range is cut into windows (:func:`windows`). A window is a
*train* part followed by a *test* part; ``rolling`` windows keep the train
length and move by ``step`` (default: the test length, so the test parts
tile the data), ``anchored`` windows start their train part at the data's
start and grow by ``step``. Every part is half-open in bar *open* time:
``[start, end)`` holds the bars that open at or after ``start`` and before
``end``; the data's range runs from its first bar's open to its last bar's
close. Only whole windows are made: a tail too short for a full test part
is left out (the summary says where the last test ends).

For each window:

1. **In sample.** A sweep (:func:`~tidemark.adapters.research.sweep.run_sweep`,
   into ``out/train/window-NN/``) of the base config restricted to the train
   part: ``start``/``end`` are the open times of its first and last bar and
   ``warmup`` the walk-forward's warm-up, so the in-sample runs are measured
   the way the out-of-sample run is (warm indicators, as much warm-up as the
   data holds before the part).
2. **The choice.** The sweep's best point (rank 1: the objective among the
   points that ran and meet every constraint), its parameters read from the
   sweep's manifest exactly as the point ran. A train part where no point
   qualified is recorded (status ``skipped``) and its test part is not
   traded: no parameters are made up.
3. **Out of sample.** The chosen parameters run as an ordinary journaled
   backtest (the same run as ``tidemark backtest`` / :func:`run_backtest`
   with those parameters, ``start``/``end`` the test part's first and last
   bar and the same ``warmup``) into ``out/oos/window-NN.journal``. The
   warm-up (default: the train length) is shown to the strategy before the
   test part without trading: the run acts first at the close of the test
   part's first bar, so nothing trades before ``test_start``.

**Stitching.** Every out-of-sample run starts from the config's initial
cash ``C``. The stitched curve compounds them: with ``E_0 = C`` and
``E_k`` the stitched equity at the last point of window ``k``, window
``k``'s points are ``E_(k-1) * e_k(t) / C`` where ``e_k`` is that run's own
equity curve. So each window's returns (its first point's included, measured
from ``C``) are applied to the running equity, as if each run had started
with the previous window's ending equity and scaled every position with it
(exact for a strategy that sizes in proportion to equity; for fixed sizes
it is the usual approximation). A skipped window adds no points: the
equity carries over it unchanged (out of the market). The stitched metrics
are :func:`tidemark.core.metrics.compute` of that curve with every
out-of-sample trade (their money figures, and the fees, as each run booked
them, unscaled).

Outputs in ``out/``: ``windows.csv`` (one row per window: dates, status,
chosen parameters, in-sample and out-of-sample metrics, run ids),
``equity.csv`` (the stitched curve), ``summary.md`` and ``walkforward.html``
(the curve as an inline SVG and the windows table; one self-contained file).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import html
import math
import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from tidemark.adapters.research.outputs import _fmt, _md_table
from tidemark.adapters.research.sweep import Rule, SweepError, SweepResult, SweepSpec, dims_from, run_sweep
from tidemark.core import config as cfg
from tidemark.core.config import ConfigError, RunConfig
from tidemark.core.ids import canonical_json, sha256_hex
from tidemark.core.metrics import compute as compute_metrics

Length = int | str | dt.timedelta
"""A window length: a number of bars (``2000``, or the text ``"2000"``) or
a duration (``"90d"``, ``"12h"``, ``"2w"``, a ``timedelta``)."""

Progress = Callable[[int, int], None]

MAIN_METRICS = ("total_return", "max_drawdown", "sharpe", "trades")
"""The metrics the windows table compares in and out of sample (after the objective)."""

STATUS_OK = "ok"
STATUS_SKIPPED = "skipped"


class WalkForwardError(SweepError):
    """A walk-forward that cannot run as asked (windows that do not fit the data, bad lengths)."""


# -- windows -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """One walk-forward window (1-based ``index``): the train part
    ``[train_start, train_end)`` and the test part ``[test_start,
    test_end)``, half-open in bar open time, UTC."""

    index: int
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp


def parse_length(value: Length, name: str) -> int | pd.Timedelta:
    """A length as bars (``int``) or a duration (``Timedelta``), > 0."""
    if isinstance(value, bool):
        raise WalkForwardError(f"{name}: a duration (90d) or a number of bars (2000), not {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise WalkForwardError(f"{name} {value}: at least 1 bar")
        return value
    if isinstance(value, dt.timedelta):
        span = pd.Timedelta(value)
        if span <= pd.Timedelta(0):
            raise WalkForwardError(f"{name} {value}: must be longer than 0")
        return span
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return parse_length(int(text), name)
        try:
            ns = cfg.duration_ns(text)
        except ConfigError:
            raise WalkForwardError(f"{name} {value!r}: a duration (90d, 12h, 2w) or a number of bars (2000)") from None
        if ns <= 0:
            raise WalkForwardError(f"{name} {value!r}: must be longer than 0")
        return pd.Timedelta(ns, unit="ns")
    raise WalkForwardError(f"{name}: a duration (90d) or a number of bars (2000), not {type(value).__name__}")


def _utc(ts: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(ts)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _text(length: int | pd.Timedelta) -> str:
    if isinstance(length, int):
        return f"{length} bars"
    return cfg.format_duration(int(length.value))


def windows(
    first_ts: Any,
    last_ts: Any,
    train: Length,
    test: Length,
    anchored: bool = False,
    step: Length | None = None,
    *,
    times: Sequence[Any] | pd.DatetimeIndex | None = None,
) -> list[Window]:
    """The walk-forward windows over data that starts at ``first_ts`` (its
    first bar's open) and ends at ``last_ts`` (its last bar's close).

    Window ``k`` (from 0): the train part starts at the data's start
    (``anchored``) or ``k * step`` after it, and ends ``train + k * step``
    after the data's start; the test part follows it for ``test``. ``step``
    defaults to ``test``. Windows are made while the test part ends at or
    before ``last_ts``. Lengths in bars count bars in ``times`` (the bars'
    open times, sorted; required then): a part ``[times[i], times[j])``
    holds ``j - i`` bars (``times[len(times)]`` is ``last_ts``). Give all
    lengths as durations or all as bars.

    Raises :class:`WalkForwardError` when no window fits, a length is not
    positive, or ``step`` is shorter than ``test`` (overlapping test parts
    could not be stitched into one curve)."""
    first, last = _utc(first_ts), _utc(last_ts)
    if last <= first:
        raise WalkForwardError(f"the data ends ({last}) at or before it starts ({first})")
    train_len = parse_length(train, "train")
    test_len = parse_length(test, "test")
    step_len = parse_length(step, "step") if step is not None else test_len
    in_bars = {isinstance(x, int) for x in (train_len, test_len, step_len)}
    if len(in_bars) > 1:
        raise WalkForwardError("train, test and step: give all as durations (90d) or all as numbers of bars, not both")
    if step_len < test_len:  # type: ignore[operator]  # both ints or both Timedeltas (checked above)
        raise WalkForwardError(
            f"step {_text(step_len)} is shorter than test {_text(test_len)}: the test windows would overlap"
        )
    out: list[Window] = []
    if in_bars == {True}:
        if times is None:
            raise WalkForwardError("lengths in bars need the bars' open times (times=)")
        opens = pd.DatetimeIndex([_utc(t) for t in times])
        n = len(opens)
        tr, te, st = int(train_len), int(test_len), int(step_len)  # type: ignore[arg-type]

        def at(position: int) -> pd.Timestamp:
            return opens[position] if position < n else last

        k = 0
        while tr + k * st + te <= n:
            start, cut = (0 if anchored else k * st), tr + k * st
            out.append(Window(k + 1, at(start), at(cut), at(cut), at(cut + te)))
            k += 1
        have, need = f"{n} bars", f"{tr + te} bars"
    else:
        tr_d, te_d, st_d = pd.Timedelta(train_len), pd.Timedelta(test_len), pd.Timedelta(step_len)
        k = 0
        while first + tr_d + k * st_d + te_d <= last:
            split = first + tr_d + k * st_d
            out.append(Window(k + 1, first if anchored else first + k * st_d, split, split, split + te_d))
            k += 1
        have = f"{(last - first) / pd.Timedelta(days=1):.1f} days"
        need = cfg.format_duration(int((tr_d + te_d).value))
    if not out:
        raise WalkForwardError(
            f"no window fits the data: train {_text(train_len)} + test {_text(test_len)} need {need}, "
            f"the data holds {have} ({first.isoformat()} to {last.isoformat()})"
        )
    return out


# -- the result -------------------------------------------------------------------------------------


@dataclass
class WalkForwardResult:
    """A finished walk-forward: ``windows`` (one row per window), the
    stitched out-of-sample ``equity`` (columns ``equity``, ``window``,
    ``run_equity``: the window's own run, ``in_market``; indexed by bar
    close time, UTC), its ``metrics``, the train ``sweeps`` (None for
    none), and the files written (``outputs``)."""

    folder: Path
    windows: pd.DataFrame
    equity: pd.DataFrame
    metrics: dict[str, Any]
    spec: SweepSpec
    plan: list[Window]
    warmup: int | str
    sweeps: list[SweepResult] = field(default_factory=list)
    outputs: dict[str, Path] = field(default_factory=dict)

    @property
    def traded(self) -> int:
        """Windows whose test part ran."""
        return int((self.windows["status"] == STATUS_OK).sum())

    def result(self, window: int) -> Any:
        """The full :class:`tidemark.Result` of window ``window``'s
        out-of-sample run (1-based), read back (verified) from its journal."""
        from tidemark.adapters.backtest import Result

        row = self.windows.loc[self.windows["window"] == window]
        if not len(row) or not row.iloc[0]["oos_journal"]:
            raise KeyError(f"window {window}: no out-of-sample run")
        return Result.from_journal(self.folder / str(row.iloc[0]["oos_journal"]))


# -- running ----------------------------------------------------------------------------------------


def walk_forward(
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
    train: Length,
    test: Length,
    step: Length | None = None,
    anchored: bool = False,
    warmup: int | str | None = None,
    config: RunConfig | dict[str, Any] | str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    workers: int | None = 1,
    scheduler: str | None = None,
    dask_workers: int | None = None,
    batch: int = 8,
    force: bool = False,
    tz: str | None = None,
    progress: Progress | None = None,
    **params: Any,
) -> WalkForwardResult:
    """Walk-forward analysis; the Python face of ``tidemark walkforward``
    (see the module docstring for what runs and how the curve is stitched).

    ``tidemark.walk_forward("ema_cross", data="BTC.csv", grid={"fast": [5, 10],
    "slow": [20, 40]}, train="90d", test="30d", out="wf")``

    The search (``grid``; ``space`` with ``trials``; ``method="optuna"``),
    ``objective``, ``maximize`` and ``constraints`` are those of
    :func:`tidemark.sweep`, run on every train part. ``train``/``test``/
    ``step``: durations (``"90d"``) or bar counts; ``anchored``: every train
    part starts at the data's start. ``warmup``: bars or a duration shown
    before each part without trading (default: the train length). Other
    keywords are fixed parameters or run settings (``cash``,
    ``commission``, ``start``/``end`` to use part of the data, ...) as for
    :func:`tidemark.backtest`. ``out``: the folder (default
    ``walkforward/<strategy>-<id>``); ``force``: start the train sweeps
    over in folders that hold other sweeps."""
    from tidemark.adapters.backtest import build_config
    from tidemark.adapters.notebook import _sources, _split, _strategy_spec

    if grid is not None and space is not None:
        raise WalkForwardError("give grid= or space=, not both")
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
    return run_walk_forward(
        spec,
        data=sources or None,
        train=train,
        test=test,
        step=step,
        anchored=anchored,
        warmup=warmup,
        out=out,
        workers=workers,
        scheduler=scheduler,
        dask_workers=dask_workers,
        force=force,
        tz=tz,
        progress=progress,
    )


def run_walk_forward(
    spec: SweepSpec,
    *,
    data: Sequence[Any] | None = None,
    train: Length,
    test: Length,
    step: Length | None = None,
    anchored: bool = False,
    warmup: int | str | None = None,
    out: str | os.PathLike[str] | None = None,
    workers: int | None = 1,
    scheduler: str | None = None,
    dask_workers: int | None = None,
    force: bool = False,
    tz: str | None = None,
    progress: Progress | None = None,
) -> WalkForwardResult:
    """Run a walk-forward of ``spec`` (its config: the base run, whose
    ``start``/``end`` bound the data used; its ``warmup`` is replaced by
    ``warmup``); see :func:`walk_forward`."""
    from tidemark.adapters.backtest import build_config, open_market

    base = msgspec.structs.replace(spec.config, warmup=None)
    spec = dataclasses.replace(spec, config=base)
    journaled, market, prints = open_market(base, data, tz=tz)
    interval = next(iter(market.instruments.values())).interval
    closes = np.asarray(market.timeline, dtype=np.int64)
    opens = pd.DatetimeIndex(pd.to_datetime(closes - interval, utc=True))
    last = pd.Timestamp(int(closes[-1]), tz="UTC")
    plan = windows(opens[0], last, train, test, anchored, step, times=opens)
    warm = _warmup(warmup, parse_length(train, "train"))
    strategy = journaled.strategies[0].strategy if journaled.strategies else journaled.strategy or "ema_cross"
    if out is None:
        key = canonical_json(
            {
                "spec": spec.as_json(journaled, ""),
                "data": prints,
                "windows": [[str(w.train_start), str(w.train_end), str(w.test_start), str(w.test_end)] for w in plan],
                "warmup": warm,
            }
        )
        out = Path("walkforward") / f"{Path(strategy).stem}-{sha256_hex(key)[:16]}"
    folder = Path(out)
    (folder / "oos").mkdir(parents=True, exist_ok=True)

    rows: list[dict[str, Any]] = []
    sweeps: list[SweepResult] = []
    curves: list[tuple[int, Any]] = []
    for window in plan:
        train_bars = _bars_in(opens, window.train_start, window.train_end)
        test_bars = _bars_in(opens, window.test_start, window.test_end)
        for part, bars in (("train", train_bars), ("test", test_bars)):
            if not len(bars):
                raise WalkForwardError(f"window {window.index}: no bars in its {part} part (a gap in the data)")
        train_config = build_config(base, start=_iso(train_bars[0]), end=_iso(train_bars[-1]), warmup=warm)
        swept = run_sweep(
            dataclasses.replace(spec, config=train_config),
            data=data,
            out=folder / "train" / f"window-{window.index:02d}",
            workers=workers,
            scheduler=scheduler,
            dask_workers=dask_workers,
            tz=tz,
            force=force,
        )
        sweeps.append(swept)
        row = _row(spec, window, swept, folder)
        best = swept.best
        if best is None:
            row["status"] = STATUS_SKIPPED
            row["note"] = (
                f"no qualified point in the train part ({int((swept.table['status'] == 'ok').sum())} of "
                f"{len(swept.table)} ran): not traded"
            )
        else:
            chosen = point_params(swept, int(best["index"]))
            row.update(chosen)
            test_config = build_config(
                with_params(base, chosen), start=_iso(test_bars[0]), end=_iso(test_bars[-1]), warmup=warm
            )
            journal = folder / "oos" / f"window-{window.index:02d}.journal"
            result = _run(test_config, data, journal, tz)
            curves.append((window.index, result))
            _fill_oos(row, spec.objective, result, journal, folder)
        rows.append(row)
        if progress is not None:
            progress(window.index, len(plan))

    _clear_stale(folder, plan, {Path(str(row["oos_journal"])).name for row in rows if row.get("oos_journal")})
    table = _table(spec, rows)
    initial = float(base.initial_cash)
    equity = stitch([(k, r.equity, float(r.metrics["initial_cash"])) for k, r in curves], initial)
    metrics: dict[str, Any] = {}
    if len(equity):
        trades = pd.concat([r.trades for _, r in curves if len(r.trades)] or [curves[0][1].trades])
        fees = sum(float(r.metrics["fees_paid"]) for _, r in curves)
        metrics = compute_metrics(equity, trades, initial, fees)
    result = WalkForwardResult(folder, table, equity, metrics, spec, plan, warm, sweeps)
    result.outputs = write_outputs(result, strategy=str(strategy), anchored=anchored)
    return result


def _clear_stale(folder: Path, plan: Sequence[Any], traded: set[str]) -> None:
    """Remove what an earlier walk-forward in ``folder`` left that this one
    did not write: out-of-sample journals of windows not traded now, train
    sweeps of windows that no longer exist. Only tidemark's own names
    (``oos/window-NN.journal``, ``train/window-NN``) are touched."""
    from tidemark.journal.lock import remove_journal_files

    for journal in (folder / "oos").glob("window-*.journal"):
        if journal.name not in traded:
            remove_journal_files(journal)
    windows = {f"window-{window.index:02d}" for window in plan}
    for sweep in (folder / "train").glob("window-*"):
        if sweep.is_dir() and sweep.name not in windows:
            shutil.rmtree(sweep)


def _warmup(warmup: int | str | None, train: int | pd.Timedelta) -> int | str:
    """The config ``warmup`` of every run: as given (``"200"``: bars), or the train length."""
    if warmup is None:
        return train if isinstance(train, int) else cfg.format_duration(int(train.value))
    if isinstance(warmup, str):
        text = warmup.strip()
        if text.isdigit():
            return int(text)
        try:
            cfg.duration_ns(text)
        except ConfigError:
            raise WalkForwardError(f"warmup {warmup!r}: bars (200) or a duration (30d)") from None
        return text
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise WalkForwardError(f"warmup {warmup!r}: bars (200) or a duration (30d)")
    return warmup


def _bars_in(opens: pd.DatetimeIndex, start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    return opens[(opens >= start) & (opens < end)]


def _iso(ts: pd.Timestamp) -> str:
    """A bar's open time as the config's ``start``/``end`` text (ISO-8601, UTC)."""
    return _utc(ts).isoformat()


def with_params(base: RunConfig, params: Mapping[str, Any]) -> RunConfig:
    """``base`` with the strategy parameters ``params`` (as a sweep point runs them)."""
    from tidemark.adapters.backtest import build_config

    if base.strategies:
        (strategy,) = base.strategies
        strategy = msgspec.structs.replace(strategy, params={**strategy.params, **params})
        return build_config(base, strategies=[strategy])
    return build_config(base, params={**base.params, **params})


def point_params(swept: SweepResult, index: int) -> dict[str, Any]:
    """The parameters of point ``index`` as it ran (from the sweep's manifest)."""
    from tidemark.core.events import SweepPoint
    from tidemark.journal.reader import JournalReader

    with JournalReader(swept.manifest) as reader:
        for _, event in reader.events():
            if isinstance(event, SweepPoint) and event.index == index:
                params: dict[str, Any] = msgspec.json.decode(event.params)
                return params
    raise WalkForwardError(f"{swept.manifest}: no point {index}")


def _run(config: RunConfig, data: Sequence[Any] | None, journal: Path, tz: str | None) -> Any:
    """The out-of-sample run: :func:`run_backtest`'s run (which takes only
    paths; this takes a notebook's DataFrames too)."""
    from tidemark.adapters.backtest import run_with_results

    return asyncio.run(run_with_results(config, data=data, journal=journal, overwrite=True, tz=tz))


def _shown(objective: str) -> list[str]:
    return [objective, *(m for m in MAIN_METRICS if m != objective)]


def _number(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    return value


def _row(spec: SweepSpec, window: Window, swept: SweepResult, folder: Path) -> dict[str, Any]:
    table = swept.table
    best = swept.best
    row: dict[str, Any] = {
        "window": window.index,
        "train_start": window.train_start,
        "train_end": window.train_end,
        "test_start": window.test_start,
        "test_end": window.test_end,
        "status": STATUS_OK,
        "points": len(table),
        "qualified": int(table["qualified"].sum()),
    }
    for name in _shown(spec.objective):
        row[f"is_{name}"] = _number(best[name]) if best is not None and name in best else None
    row["sweep_id"] = swept.sweep_id
    row["sweep"] = _relative(swept.folder, folder)
    row["is_run_id"] = str(best["run_id"]) if best is not None else ""
    return row


def _fill_oos(row: dict[str, Any], objective: str, result: Any, journal: Path, folder: Path) -> None:
    for name in _shown(objective):
        value = result.metrics.get(name)
        row[f"oos_{name}"] = value if isinstance(value, (int, float)) else None
    row["oos_run_id"] = result.run_id
    row["oos_head"] = result.head
    row["oos_journal"] = _relative(journal, folder)


def _relative(path: Path, folder: Path) -> str:
    return Path(os.path.relpath(path.resolve(), folder.resolve())).as_posix()


def _table(spec: SweepSpec, rows: list[dict[str, Any]]) -> pd.DataFrame:
    names = [d.name for d in spec.dims]
    shown = _shown(spec.objective)
    columns = [
        "window",
        "train_start",
        "train_end",
        "test_start",
        "test_end",
        "status",
        *names,
        "points",
        "qualified",
        *(f"is_{m}" for m in shown),
        *(f"oos_{m}" for m in shown),
        "sweep_id",
        "is_run_id",
        "oos_run_id",
        "oos_head",
        "oos_journal",
        "sweep",
        "note",
    ]
    table = pd.DataFrame.from_records(rows, columns=columns)
    for column in ("is_run_id", "oos_run_id", "oos_head", "oos_journal", "note"):
        table[column] = table[column].fillna("")
    return table


def stitch(curves: Sequence[tuple[int, pd.DataFrame, float]], initial_cash: float) -> pd.DataFrame:
    """Chain out-of-sample equity curves (``(window, equity frame, the
    run's initial cash)``, in time order) from ``initial_cash``: each
    window's equity scaled by the running equity over its run's initial
    cash (see the module docstring). Columns ``equity``, ``window``,
    ``run_equity``, ``in_market``."""
    parts = []
    running = float(initial_cash)
    for window, frame, cash in curves:
        if not len(frame):
            continue
        own = frame["equity"].astype(float)
        part = pd.DataFrame(
            {
                "equity": own * (running / cash),
                "window": window,
                "run_equity": own,
                "in_market": frame["in_market"].astype(float) if "in_market" in frame else 0.0,
            },
            index=frame.index,
        )
        running = float(part["equity"].iloc[-1])
        parts.append(part)
    if not parts:
        empty = pd.DatetimeIndex([], tz="UTC", name="time")
        return pd.DataFrame({"equity": [], "window": [], "run_equity": [], "in_market": []}, index=empty)
    return pd.concat(parts)


# -- outputs ----------------------------------------------------------------------------------------


def write_outputs(result: WalkForwardResult, *, strategy: str, anchored: bool) -> dict[str, Path]:
    folder = result.folder
    out = {
        "windows": folder / "windows.csv",
        "equity": folder / "equity.csv",
        "markdown": folder / "summary.md",
        "html": folder / "walkforward.html",
    }
    result.windows.to_csv(out["windows"], index=False)
    result.equity.to_csv(out["equity"], index_label="time")
    out["markdown"].write_text(markdown_summary(result, strategy=strategy, anchored=anchored), encoding="utf-8")
    out["html"].write_text(html_page(result, strategy=strategy, anchored=anchored), encoding="utf-8")
    return out


def _facts(result: WalkForwardResult, *, strategy: str, anchored: bool) -> list[str]:
    spec, plan = result.spec, result.plan
    direction = "maximize" if spec.maximize else "minimize"
    skipped = len(plan) - result.traded
    w = plan[0]
    return [
        f"strategy: {strategy}",
        f"windows: {len(plan)} {'anchored' if anchored else 'rolling'}; first train part "
        f"{w.train_start.isoformat()} to {w.train_end.isoformat()}, test parts from {w.test_start.isoformat()} "
        f"to {plan[-1].test_end.isoformat()}; warm-up {result.warmup}"
        + (" bars" if isinstance(result.warmup, int) else ""),
        f"search: {spec.method}"
        + (f", {spec.trials} trials, seed {spec.seed}" if spec.method != "grid" else "")
        + f" over {', '.join(f'`{d.name}={d.text}`' for d in spec.dims)}",
        f"objective: {direction} `{spec.objective}`; constraints: "
        + (", ".join(f"`{r.text}`" for r in spec.constraints) or "none"),
        f"traded out of sample: {result.traded} of {len(plan)} windows"
        + (f" ({skipped} skipped: no qualified point in sample)" if skipped else ""),
    ]


_METRIC_ROWS = ("total_return", "annualized_return", "max_drawdown", "sharpe", "sortino", "trades", "final_equity")


def markdown_summary(result: WalkForwardResult, *, strategy: str, anchored: bool) -> str:
    lines = ["# Walk-forward", ""]
    lines += [f"- {fact}" for fact in _facts(result, strategy=strategy, anchored=anchored)]
    lines += ["- the out-of-sample curve chains the windows: each starts from the previous one's ending equity", ""]
    if result.metrics:
        lines += ["## Stitched out-of-sample curve", ""]
        lines += [f"- {name}: {_fmt(_number(result.metrics.get(name)))}" for name in _METRIC_ROWS]
        lines.append("")
    else:
        lines += ["No window traded out of sample: there is no out-of-sample curve.", ""]
    lines += ["## Windows", "", _md_table(_display(result)), ""]
    skipped = result.windows[result.windows["status"] == STATUS_SKIPPED]
    for _, row in skipped.iterrows():
        lines.append(f"Window {row['window']}: {row['note']}.")
    if len(skipped):
        lines.append("")
    return "\n".join(lines)


def _display(result: WalkForwardResult) -> pd.DataFrame:
    spec = result.spec
    shown = _shown(spec.objective)
    columns = [
        "window",
        "train_start",
        "train_end",
        "test_start",
        "test_end",
        "status",
        *(d.name for d in spec.dims),
        *(f"is_{m}" for m in shown),
        *(f"oos_{m}" for m in shown),
        "oos_run_id",
    ]
    frame = result.windows[columns].copy()
    for column in ("train_start", "train_end", "test_start", "test_end"):
        frame[column] = frame[column].map(lambda t: t.strftime("%Y-%m-%d %H:%M"))
    return frame.astype(object).where(frame.notna(), None)


_STYLE = """
body{font:14px system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4}td{white-space:nowrap}td.t{text-align:left}code{background:#f4f4f4;padding:1px 4px}
svg{border:1px solid #ddd;background:#fff}
"""
_PLOT_W, _PLOT_H, _PAD, _MAX_POINTS = 900, 320, 40, 3000


def equity_svg(result: WalkForwardResult) -> str:
    """The stitched curve as an inline SVG polyline (a dashed line at each
    test part's start; at most ``_MAX_POINTS`` points drawn)."""
    curve = result.equity["equity"]
    if not len(curve):
        return "<p>No window traded out of sample.</p>"
    every = max(1, math.ceil(len(curve) / _MAX_POINTS))
    drawn = pd.concat([curve.iloc[::every], curve.iloc[-1:]])
    times = drawn.index.asi8.astype(float)
    t0, t1 = float(times[0]), float(max(times[-1], times[0] + 1))
    low, high = float(drawn.min()), float(drawn.max())
    high = high if high > low else low + 1.0

    def x(t: float) -> float:
        return _PAD + (t - t0) / (t1 - t0) * (_PLOT_W - 2 * _PAD)

    def y(v: float) -> float:
        return _PLOT_H - _PAD - (v - low) / (high - low) * (_PLOT_H - 2 * _PAD)

    points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(times, drawn.to_numpy(float), strict=True))
    marks = []
    for window in result.plan:
        at = float(window.test_start.value)
        if t0 <= at <= t1:
            marks.append(
                f'<line x1="{x(at):.1f}" x2="{x(at):.1f}" y1="{_PAD}" y2="{_PLOT_H - _PAD}" stroke="#bbb" '
                f'stroke-dasharray="4 3"><title>window {window.index}</title></line>'
            )
    labels = (
        f'<text x="{_PAD}" y="{_PAD - 8}" font-size="12">{html.escape(_fmt(high))}</text>'
        f'<text x="{_PAD}" y="{_PLOT_H - _PAD + 16}" font-size="12">{html.escape(_fmt(low))}</text>'
        f'<text x="{_PLOT_W - _PAD}" y="{_PLOT_H - 8}" font-size="12" text-anchor="end">'
        f"{drawn.index[-1].strftime('%Y-%m-%d')}</text>"
        f'<text x="{_PAD}" y="{_PLOT_H - 8}" font-size="12">{drawn.index[0].strftime("%Y-%m-%d")}</text>'
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_PLOT_W}" height="{_PLOT_H}" '
        f'viewBox="0 0 {_PLOT_W} {_PLOT_H}">{"".join(marks)}'
        f'<polyline fill="none" stroke="#1f6fb2" stroke-width="1.5" points="{points}"/>{labels}</svg>'
    )


def html_page(result: WalkForwardResult, *, strategy: str, anchored: bool) -> str:
    frame = _display(result)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{'' if isinstance(v, (int, float)) and not isinstance(v, bool) else ' class=t'}>"
            f"{html.escape(_fmt(_number(v)))}</td>"
            for v in row
        )
        + "</tr>"
        for row in frame.itertuples(index=False)
    )
    facts = "".join(
        "<li>" + re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(f)) + "</li>"
        for f in _facts(result, strategy=strategy, anchored=anchored)
    )
    metrics = "".join(
        f"<tr><th>{name}</th><td>{html.escape(_fmt(_number(result.metrics.get(name))))}</td></tr>"
        for name in _METRIC_ROWS
        if result.metrics
    )
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>Walk-forward</title>'
        f"<style>{_STYLE}</style></head><body><h1>Walk-forward</h1><ul>{facts}</ul>"
        "<h2>Stitched out-of-sample equity</h2>"
        f"{equity_svg(result)}<table>{metrics}</table>"
        f"<h2>Windows</h2><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></body></html>"
    )
