"""Rerun a strategy over a journal's market data, and compare two runs.

``rerun_from_journal`` takes every market input of a journal (instrument
definitions, books, trades, bars, marks, funding, feed gaps; in journal order,
with their journaled stamps) and feeds it to a new actor graph with the same
or another strategy: a *child run* whose header names the parent run id.
With the strategy unchanged, its decisions are the parent's.

``diff_runs`` reports the first divergent decision (order commands, in
order) between two runs and splits their PnL difference by cause: trading
(fills), fees and funding, using ``equity = initial + trading - fees + funding``.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import msgspec

from tidemark.adapters.backtest import DEFAULT_RUNS_DIR, Result, make_header, slots_for, strategy_configs
from tidemark.adapters.stop import StopSignals
from tidemark.core import config as cfg
from tidemark.core.clock import iso_utc
from tidemark.core.codec import DEFAULT_CODEC
from tidemark.core.engine import Engine, started_nothing
from tidemark.core.events import (
    Bar,
    CancelOrder,
    Checkpoint,
    Event,
    ModifyOrder,
    RunFailed,
    RunStarted,
    StrategyReloaded,
    SubmitAlgo,
    SubmitOrder,
)
from tidemark.core.heap import frozen_setup
from tidemark.core.series import MarketSeries
from tidemark.core.text import plural
from tidemark.journal.checked import ReadCheck, read_checked
from tidemark.journal.process_writer import ProcessJournalWriter
from tidemark.journal.reader import JournalReader
from tidemark.journal.terminal import seal_after

DECISIONS = (SubmitOrder, CancelOrder, ModifyOrder, SubmitAlgo)
PUMP_EVERY = 4096


def _inputs(path: Path, trust: bool) -> tuple[RunStarted, list[Event], str]:
    """The parent's header, its inputs after it (not its signed checkpoints
    or final record: they are about the parent run) and its verified head."""
    with read_checked(path, trust=trust) as check, JournalReader(path) as reader:
        records = list(reader.records())
        _, head = reader.head()
        if not records or not isinstance(records[0].event, RunStarted):
            raise ValueError(f"{path}: seq 1 is not a run header")
    header = records[0].event
    if check.report is not None:
        head = check.report.head
    return (
        header,
        [r.event for r in records[1:] if r.is_input and not isinstance(r.event, (Checkpoint, RunFailed))],
        head,
    )


def rerun_config(
    parent: cfg.RunConfig, strategy: str | None, params: dict[str, Any], timeframe: str | None
) -> cfg.RunConfig:
    """The parent's config with the strategy, parameters or bar length replaced."""
    config = parent
    if strategy is not None or params:
        spec = parent.strategies[0] if parent.strategies else cfg.StrategyConfig()
        name = strategy or (spec.origin or spec.strategy)
        base_params = {} if strategy is not None else dict(spec.params)
        fresh = cfg.StrategyConfig(strategy=name, params={**base_params, **params}, symbols=list(spec.symbols))
        if strategy is None:
            fresh = msgspec.structs.replace(fresh, source=spec.source, origin=spec.origin, id=spec.id)
        config = msgspec.structs.replace(config, strategies=[fresh])
        config = msgspec.structs.replace(config, strategies=strategy_configs(config, config.all_symbols()))
    if timeframe is not None and config.paper is not None:
        config = msgspec.structs.replace(
            config, paper=msgspec.structs.replace(config.paper, bar_interval=timeframe), timeframe=timeframe
        )
    # A rerun is a new run: it follows today's rules, whatever its parent's were.
    return cfg.resolve(cfg.parse({**cfg.to_builtins(config), "version": cfg.RULES_VERSION}))


async def rerun_async(
    parent_path: str | os.PathLike[str],
    *,
    strategy: str | None = None,
    params: dict[str, Any] | None = None,
    timeframe: str | None = None,
    journal: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    trust: bool = False,
) -> Path:
    """Rerun over the market data of the journal at ``parent_path``, which
    is verified first (refused if damaged, unless ``trust``); the child's
    header names the parent's run id and verified head."""
    parent_path = Path(parent_path)
    parent_header, inputs, parent_head = _inputs(parent_path, trust)
    parent_config = cfg.parse_stored(json.loads(parent_header.config))
    config = rerun_config(parent_config, strategy, params or {}, timeframe)
    changed = config.strategies != parent_config.strategies
    events = [e for e in inputs if not (changed and isinstance(e, StrategyReloaded))]
    if config.paper is not None:
        paper = config.paper
        market = MarketSeries.live_series(config.all_symbols(), cfg.duration_ns(paper.bar_interval), paper.max_bars)
    else:
        market = MarketSeries.from_bars(e for e in events if type(e) is Bar)
    prints = {"parent_journal": parent_path.name, "parent_head": parent_head}
    start = events[0].ts if events else parent_header.ts
    header = make_header(config, prints, start, parent=parent_header.run_id, mode="rerun")
    path = (
        Path(journal)
        if journal is not None
        else DEFAULT_RUNS_DIR / f"{config.strategies[0].id}-{header.run_id}.journal"
    )
    with StopSignals() as stop:
        writer = await ProcessJournalWriter.create(path, durability="normal", overwrite=overwrite or journal is None)
        try:
            engine = Engine(config, slots_for(config), market, sink=writer)
            engine.feed(header)
            with frozen_setup():
                for start in range(0, len(events), PUMP_EVERY):
                    engine.feed_all(events[start : start + PUMP_EVERY])
                    await writer.pump()
                    stop.check()
                engine.finish()
        except BaseException as exc:
            if started_nothing(exc):
                await writer.discard()  # nothing ran: no journal rather than a half-written one
            else:
                await seal_after(writer, exc)
            raise
        return (await writer.close()).path


def rerun_from_journal(parent_path: str | os.PathLike[str], **kwargs: Any) -> Result:
    """Python API: rerun and return the child run's :class:`Result`."""
    return Result.from_journal(asyncio.run(rerun_async(parent_path, **kwargs)))


# -- diff ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunDiff:
    same_inputs: bool
    first_input_difference: int | None
    decisions: tuple[int, int]
    first_divergence: int | None
    a_decision: Event | None
    b_decision: Event | None
    pnl: dict[str, tuple[float, float]]
    checks: tuple[ReadCheck, ReadCheck] | None = None
    """What verify proved of each journal (None: not checked)."""


def _decision_key(event: Event) -> bytes:
    """A decision as compared: its encoded bytes (type, time and every field)."""
    return DEFAULT_CODEC.encode(event)


def _outline(path: Path) -> tuple[list[bytes], list[Event]]:
    inputs: list[bytes] = []
    decisions: list[Event] = []
    with JournalReader(path) as reader:
        for record in reader.records():
            event = record.event
            if record.is_input and not isinstance(event, (RunStarted, Checkpoint, RunFailed)):
                inputs.append(record.payload)
            elif not record.is_input and isinstance(event, DECISIONS):
                decisions.append(event)
    return inputs, decisions


def _pnl(result: Result) -> dict[str, float]:
    m = result.metrics
    fees = float(result.fills["fee"].sum()) if len(result.fills) else 0.0
    funding = float(m.get("funding", 0.0))
    total = float(m["final_equity"]) - float(m["initial_cash"])
    return {"trading": total + fees - funding, "fees": -fees, "funding": funding, "total": total}


def diff_runs(a: str | os.PathLike[str], b: str | os.PathLike[str], *, trust: bool = False) -> RunDiff:
    """Compare two runs; both journals are verified while they are read
    (a damaged one is refused, unless ``trust``: see ``RunDiff.checks``)."""
    path_a, path_b = Path(a), Path(b)
    with read_checked(path_a, trust=trust) as check_a, read_checked(path_b, trust=trust) as check_b:
        diff = _diff(path_a, path_b)
    return replace(diff, checks=(check_a, check_b))


def _diff(path_a: Path, path_b: Path) -> RunDiff:
    inputs_a, decisions_a = _outline(path_a)
    inputs_b, decisions_b = _outline(path_b)
    first_input = next((k for k, (x, y) in enumerate(zip(inputs_a, inputs_b, strict=False)) if x != y), None)
    if first_input is None and len(inputs_a) != len(inputs_b):
        first_input = min(len(inputs_a), len(inputs_b))
    pairs = enumerate(zip(decisions_a, decisions_b, strict=False))
    first = next((k for k, (x, y) in pairs if _decision_key(x) != _decision_key(y)), None)
    if first is None and len(decisions_a) != len(decisions_b):
        first = min(len(decisions_a), len(decisions_b))
    pnl_a, pnl_b = _pnl(Result.from_journal(path_a, trust=True)), _pnl(Result.from_journal(path_b, trust=True))
    return RunDiff(
        first_input is None,
        first_input,
        (len(decisions_a), len(decisions_b)),
        first,
        decisions_a[first] if first is not None and first < len(decisions_a) else None,
        decisions_b[first] if first is not None and first < len(decisions_b) else None,
        {k: (pnl_a[k], pnl_b[k]) for k in pnl_a},
    )


def describe_diff(diff: RunDiff, a: str, b: str) -> str:
    lines = [f"A: {a}", f"B: {b}"]
    if diff.same_inputs:
        lines.append("market inputs: identical")
    else:
        lines.append(f"market inputs: differ from input #{diff.first_input_difference}")
    na, nb = diff.decisions
    if diff.first_divergence is None:
        lines.append(f"decisions: identical ({plural(na, 'command')})")
    else:
        lines.append(f"decisions: first divergence at command #{diff.first_divergence} (A has {na}, B has {nb})")
        lines.append(f"  A: {_show(diff.a_decision)}")
        lines.append(f"  B: {_show(diff.b_decision)}")
    lines.append(f"{'pnl by cause':<14}{'A':>16}{'B':>16}{'B - A':>16}")
    for cause, (x, y) in diff.pnl.items():
        lines.append(f"{cause:<14}{x:>16,.4f}{y:>16,.4f}{y - x:>+16,.4f}")
    return "\n".join(lines)


def _show(event: Event | None) -> str:
    if event is None:
        return "(none)"
    fields = msgspec.structs.asdict(event)
    text = ", ".join(f"{k}={v}" for k, v in fields.items() if v not in ("", 0, 0.0, False) and k != "ts")
    return f"{type(event).__name__} at {iso_utc(event.ts)} ({text})"
