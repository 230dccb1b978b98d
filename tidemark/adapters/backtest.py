"""Run a backtest end to end: data -> journaled actor graph -> Result.

Python API::

    from tidemark.adapters.backtest import run_backtest
    result = run_backtest("ema_cross", data=["GOOG.csv"], params={"fast": 10})
    result.metrics["final_equity"], result.trades, result.equity

    Result.from_journal("runs/ema_cross-1a2b.journal")   # the same, from disk
"""

from __future__ import annotations

import asyncio
import heapq
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import msgspec
import pandas as pd

from tidemark import __version__
from tidemark.adapters.data import (
    DataError,
    LoadedBars,
    align,
    describe,
    fingerprint,
    load_bars,
    load_frame,
    load_funding,
    load_marks,
)
from tidemark.adapters.stop import StopSignals
from tidemark.adapters.strategy_loader import resolve_strategy
from tidemark.adapters.universe import UniverseRule
from tidemark.adapters.universe import select as universe_select
from tidemark.core import config as cfg
from tidemark.core.bus import EventSink
from tidemark.core.config import RunConfig, StrategyConfig
from tidemark.core.engine import Engine, StrategySlot, started_nothing
from tidemark.core.events import Bar, Event, FundingRate, InstrumentDefinition, MarkPrice, RunStarted
from tidemark.core.heap import frozen_setup
from tidemark.core.ids import canonical_json, content_id, sha256_hex
from tidemark.core.metrics import compute as compute_metrics
from tidemark.core.series import MarketSeries
from tidemark.core.strategy import StrategyError, load_source
from tidemark.core.strategy.params import resolve
from tidemark.journal.blocks import DecodedBlock
from tidemark.journal.checked import ReadCheck, read_checked
from tidemark.journal.errors import JournalEmptyError
from tidemark.journal.process_writer import ProcessJournalWriter
from tidemark.journal.projections import Projections
from tidemark.journal.reader import JournalReader
from tidemark.journal.replay import ReplayReport, replay_check
from tidemark.journal.terminal import seal_after
from tidemark.journal.verify import BackgroundVerify, Expectations, VerifyReport, verify
from tidemark.journal.warnings import run_warnings

PACKAGE_VERSION = __version__
SAMPLE_DIR = Path(__file__).parent / "sample_data"
DEFAULT_RUNS_DIR = Path("runs")
PUMP_EVERY = 4096

Progress = Callable[[int, int], None]


@dataclass
class Result:
    """A finished run, read back from its journal."""

    journal: Path
    run_id: str
    header: RunStarted
    config: dict[str, Any]
    metrics: dict[str, Any]
    equity: pd.DataFrame
    trades: pd.DataFrame
    orders: pd.DataFrame
    fills: pd.DataFrame
    positions: pd.DataFrame
    rejections: pd.DataFrame
    funding: pd.DataFrame
    head: str
    events: int
    bars: dict[str, pd.DataFrame]
    """Per instrument, the bars the run saw: open, high, low, close, volume
    indexed by close time (UTC)."""
    interest: pd.DataFrame
    """Interest charged on borrowing (margin accounts)."""
    currency: str
    """The account currency: money metrics, the equity curve and every
    ``*_account`` column are in it."""
    warnings: list[str]
    """What a careful reader must be told (no commission, ruin, a halted
    account, repaired data, refused orders)."""
    records: pd.DataFrame
    """Values the strategies recorded (``ctx.record``), long format: time,
    strategy, name, value; :meth:`recorded` gives one column per name."""
    counters: pd.DataFrame
    """Counts the strategies kept (``ctx.count``): strategy, name, key, count."""
    check: ReadCheck | None = None
    """What verify proved of the journal read (``check.trusted``: nothing)."""
    rates: dict[str, float] = field(default_factory=dict)
    """Each currency's rate into the account currency at the end of the run."""

    @classmethod
    def from_journal(cls, path: str | os.PathLike[str], *, trust: bool = False) -> Result:
        """The run in the journal at ``path``, which is verified while it is
        read and refused (:class:`JournalIntegrityError`, first bad seq) if
        damaged; ``trust=True`` reads it unverified."""
        with read_checked(path, trust=trust) as check, JournalReader(path) as reader:
            proj = Projections.build(reader)
            seq, head = reader.head()
        return cls.from_projections(path, proj, seq, head, check)

    @classmethod
    def from_projections(
        cls, path: str | os.PathLike[str], proj: Projections, seq: int, head: str, check: ReadCheck | None = None
    ) -> Result:
        """The run whose journal at ``path`` (last ``seq``, ``head``) gave
        the read models ``proj``: read back, or built by its writer as it
        committed each block (:func:`run_with_results`)."""
        fees = float(proj.fills["fee_account"].sum()) if len(proj.fills) else 0.0
        metrics = compute_metrics(proj.equity, proj.trades, proj.initial_cash, fees)
        metrics["rejections"] = len(proj.rejections)
        metrics["funding"] = float(proj.funding["amount_account"].sum()) if len(proj.funding) else 0.0
        metrics["interest"] = float(proj.interest["amount_account"].sum())
        metrics["currency"] = proj.currency
        metrics["account"] = cfg.account_kind(cfg.parse_stored(proj.config))
        metrics["leverage"] = float(proj.config.get("leverage") or 1.0)
        return cls(
            Path(path),
            proj.header.run_id,
            proj.header,
            proj.config,
            metrics,
            proj.equity,
            proj.trades,
            proj.orders,
            proj.fills,
            proj.positions,
            proj.rejections,
            proj.funding,
            head,
            seq,
            proj.bars,
            proj.interest,
            proj.currency,
            run_warnings(proj, metrics),
            proj.records,
            proj.counters,
            check,
            proj.rates,
        )

    _temporary: Any = field(default=None, repr=False, compare=False)
    """A finalizer removing the journal's temporary folder (notebook runs)."""

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Keep this run's journal at ``path`` (a consistent copy through
        SQLite's backup API); the Result then reads it from there."""
        import sqlite3

        target = Path(path)
        if target.exists():
            raise FileExistsError(f"{target}: exists; choose another path or remove it")
        target.parent.mkdir(parents=True, exist_ok=True)
        source = sqlite3.connect(f"file:{self.journal}?mode=ro", uri=True)
        try:
            copy = sqlite3.connect(target)
            try:
                source.backup(copy)
            finally:
                copy.close()
        finally:
            source.close()
        self.journal = target
        if self._temporary is not None:
            self._temporary()  # the temporary copy is no longer needed
            self._temporary = None
        return target

    def recorded(self, strategy: str | None = None) -> pd.DataFrame:
        """The recorded values as columns (one per name), indexed by time;
        ``strategy``: one strategy's (default: the only one, or all with
        ``strategy.name`` columns)."""
        records = self.records if strategy is None else self.records[self.records["strategy"] == strategy]
        several = records["strategy"].nunique() > 1
        columns = records["strategy"] + "." + records["name"] if several else records["name"]
        wide = records.assign(column=columns).pivot_table(
            index="time", columns="column", values="value", aggfunc="last"
        )
        wide.columns.name = None
        return wide

    def coin_pnl(self) -> pd.DataFrame:
        """Realized PnL, fees and funding per settlement currency (the coin of
        an inverse contract), in that currency and in the account currency
        both ways: ``*_revalued`` at the rate at the end of the run (how
        tidemark values a coin balance: equity), ``*_locked`` each amount at
        the rate of its time (seed 002's convention: a realized coin amount
        is booked in USD at the spot of its trade). Indexed by currency."""
        columns = [
            "realized",
            "fees",
            "funding",
            "net",
            "rate",
            "net_revalued",
            "realized_locked",
            "fees_locked",
            "funding_locked",
            "net_locked",
        ]
        fills, funding = self.fills, self.funding
        currencies = sorted(set(fills["currency"]) if len(fills) else set())
        rows = []
        for currency in currencies:
            mine = fills[fills["currency"] == currency]
            paid = funding[funding["currency"] == currency] if len(funding) and "currency" in funding else funding[:0]
            realized, fees = float(mine["realized"].sum()), float(mine["fee"].sum())
            fund = float(paid["amount"].sum()) if len(paid) else 0.0
            rate = float(self.rates.get(currency, 1.0 if currency == self.currency else float("nan")))
            realized_locked = float(mine["realized_account"].sum())
            fees_locked = float(mine["fee_account"].sum())
            funding_locked = float(paid["amount_account"].sum()) if len(paid) else 0.0
            net = realized - fees + fund
            rows.append(
                [
                    realized,
                    fees,
                    fund,
                    net,
                    rate,
                    net * rate,
                    realized_locked,
                    fees_locked,
                    funding_locked,
                    realized_locked - fees_locked + funding_locked,
                ]
            )
        return pd.DataFrame(rows, columns=columns, index=pd.Index(currencies, name="currency"))

    def rejections_by_reason(self) -> dict[str, int]:
        if not len(self.rejections):
            return {}
        return {str(k): int(v) for k, v in self.rejections["reason"].value_counts().sort_index().items()}

    # -- the report (tidemark.adapters.report) --------------------------------------------------

    @property
    def stats(self) -> pd.Series:
        """The run's figures in the order backtesting.py users know (Start,
        End, Duration, Exposure Time [%], Equity Final [USD], ...)."""
        from tidemark.adapters.report.stats import compute_stats

        return compute_stats(self)

    def plot(self, path: str | os.PathLike[str] | None = None, *, open_browser: bool | None = None) -> Any:
        """The interactive report. In Jupyter it shows inline (the returned
        view's ``_repr_html_``); elsewhere it is written to ``path`` (default:
        beside the journal) and opened in a browser unless ``open_browser``
        is False. Returns the view; ``view.path`` is the file written, if any."""
        from tidemark.adapters.report import ReportView

        view = ReportView(self)
        if path is None and open_browser is None and ReportView.in_notebook():
            return view
        view.save(path if path is not None else self.journal.with_suffix(".html"))
        if open_browser or (open_browser is None and path is None):
            view.open()
        return view

    def _repr_html_(self) -> str:
        from tidemark.adapters.report import ReportView

        return ReportView(self)._repr_html_()


# -- configuration ---------------------------------------------------------------------------------


def build_config(
    config: RunConfig | dict[str, Any] | str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> RunConfig:
    """A RunConfig from an object, a dict or a JSON file, with overrides
    (``None`` overrides are ignored) applied and validated."""
    if config is None:
        base: dict[str, Any] = {}
    elif isinstance(config, RunConfig):
        base = cfg.to_builtins(config)
    elif isinstance(config, dict):
        base = dict(config)
    else:
        path = Path(config)
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise cfg.ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
        base = cfg.to_builtins(cfg.parse_json(text, str(path)))
    for key, value in overrides.items():
        if value is not None:
            base[key] = value
    return cfg.resolve(cfg.parse(base))


def strategy_configs(config: RunConfig, symbols: list[str]) -> list[StrategyConfig]:
    """The run's strategies with ids, symbols and source filled in."""
    specs = list(config.strategies) or [
        StrategyConfig(strategy=config.strategy or "ema_cross", params=dict(config.params))
    ]
    out = []
    used: dict[str, int] = {}
    for spec in specs:
        source, origin = (spec.source, spec.origin) if spec.source else resolve_strategy(spec.strategy)
        loaded = load_source(source, origin)
        base_id = spec.id or loaded.id
        used[base_id] = used.get(base_id, 0) + 1
        strategy_id = base_id if used[base_id] == 1 else f"{base_id}.{used[base_id]}"
        out.append(
            msgspec.structs.replace(
                spec, id=strategy_id, symbols=list(spec.symbols or symbols), source=source, origin=origin
            )
        )
    return out


# -- the run ---------------------------------------------------------------------------------------


DataSource = str | os.PathLike[str] | pd.DataFrame
"""A data file, or a DataFrame of bars (its symbol from the run's symbols)."""


def with_sample(config: RunConfig) -> RunConfig:
    """A run given no data: a built-in strategy with a bundled sample of its
    own (``sample_data/<name>/run.json``: symbols, files, instruments, margin
    mode; e.g. cash_carry's spot and inverse quarterlies) runs on it; the
    config's own symbols, instruments and margin mode win where set."""
    specs = list(config.strategies) or [StrategyConfig(strategy=config.strategy or "ema_cross")]
    if len(specs) != 1 or specs[0].source:
        return config
    folder = SAMPLE_DIR / specs[0].strategy
    run = folder / "run.json"
    if not run.is_file():
        return config
    sample = msgspec.json.decode(run.read_bytes())
    changes: dict[str, Any] = {"data": [str(folder / name) for name in sample["data"]]}
    if not config.all_symbols():
        changes["symbols"] = list(sample["symbols"])
    if not config.instruments:
        changes["instruments"] = sample.get("instruments", {})
    default_mode = next(f.default for f in msgspec.structs.fields(RunConfig) if f.name == "margin_mode")
    if config.margin_mode == default_mode and "margin_mode" in sample:
        changes["margin_mode"] = sample["margin_mode"]
    return build_config(config, **changes)


def load_market(
    config: RunConfig, data: Sequence[DataSource] | None, *, tz: str | None = None
) -> tuple[list[LoadedBars], MarketSeries]:
    sources: list[DataSource] = list(data or config.data)
    if not sources:
        sources.extend(sorted(SAMPLE_DIR.glob("*.csv"))[:1])
    symbols = config.all_symbols()
    if len(sources) == 1 and len(symbols) > 1:
        raise DataError(f"{len(symbols)} symbols but one data file; give one --data file per symbol")
    interval = cfg.duration_ns(config.timeframe) if config.timeframe else None
    start = parse_time_ns(config.start, "start")
    end = parse_time_ns(config.end, "end")
    warmup = config.warmup
    keep_before = warmup if isinstance(warmup, int) else 0
    if isinstance(warmup, str) and start is not None:
        start -= cfg.duration_ns(warmup)
    loaded = []
    for k, source in enumerate(sources):
        symbol = symbols[k] if k < len(symbols) else None
        if isinstance(source, pd.DataFrame):
            name = symbol or str(source.attrs.get("symbol", "") or f"DATA{k}")
            bars = load_frame(
                source,
                name,
                tz=tz,
                repair=config.repair,
                interval=interval,
                start=start,
                end=end,
                keep_before=keep_before,
            )
        else:
            path = resolve_data(Path(source), config.timeframe)
            bars = load_bars(
                path,
                symbol=symbol,
                tz=tz,
                repair=config.repair,
                interval=interval,
                start=start,
                end=end,
                keep_before=keep_before,
            )
        loaded.append(bars)
    return loaded, align(loaded)


CACHE_DIR = Path("data")


def resolve_data(path: Path, timeframe: str | None) -> Path:
    """A data file, or a symbol fetched into the cache (``data/<exchange>/``):
    ``--data BTC/USDT`` finds ``data/*/BTC_USDT-<timeframe>.parquet``."""
    if path.exists() or path.suffix in (".csv", ".parquet", ".feather", ".pq", ".arrow", ".gz"):
        return path
    safe = str(path).replace("/", "_").replace(":", "_")
    pattern = f"{safe}-{timeframe}.parquet" if timeframe else f"{safe}-*.parquet"
    found = sorted(p for p in CACHE_DIR.glob(f"*/{pattern}") if not p.stem.endswith(("-funding", "-mark")))
    if len(found) == 1:
        return found[0]
    if not found:
        raise DataError(f"{path}: no such file, and no cached {pattern} under {CACHE_DIR}/ (run tidemark fetch)")
    raise DataError(f"{path}: several cached files match ({', '.join(map(str, found))}); give --timeframe or a path")


parse_time_ns = cfg.time_ns


def instruments_for(
    config: RunConfig, market: MarketSeries, ts: int, perpetuals: Iterable[str] = ()
) -> list[InstrumentDefinition]:
    """One definition per symbol: spot by default, ``perpetual`` where funding
    data exists, overridden field by field by ``config.instruments``."""
    perps = set(perpetuals)
    out = []
    for symbol in market.symbols:
        spec = config.instruments.get(symbol)
        fields: dict[str, Any] = {
            "kind": "perpetual" if symbol in perps else "spot",
            "base": symbol,
            "quote": config.currency,
            "settle": config.currency,
            "contract_size": config.contract_size,
            "multiplier": config.multiplier,
        }
        if spec is not None:
            given = {k: v for k, v in msgspec.structs.asdict(spec).items() if v not in (None, "")}
            given["expiry"] = parse_time_ns(spec.expiry, f"instruments.{symbol}.expiry") or 0
            fields.update(given)
            if spec.inverse and not spec.settle:
                fields["settle"] = fields["base"]
        out.append(InstrumentDefinition(ts, symbol, **fields))
    return out


def make_header(
    config: RunConfig, fingerprints: dict[str, Any], ts: int, *, parent: str = "", mode: str = "backtest"
) -> RunStarted:
    config_json = canonical_json(cfg.to_builtins(config))
    config_hash = sha256_hex(config_json)
    prints = canonical_json(fingerprints)
    run_id = content_id(config_hash, prints, parent, mode)
    return RunStarted(ts, run_id, config_json, config_hash, prints, PACKAGE_VERSION, config.seed, parent, mode)


def slots_for(config: RunConfig) -> list[StrategySlot]:
    """Load every strategy and validate its parameters (before any journal exists)."""
    slots = []
    for spec in config.strategies:
        loaded = load_source(spec.source, spec.origin)
        if config.paper is None and not loaded.acts_on_bars:
            raise StrategyError(
                f"{spec.origin or spec.strategy}: defines only on_book/on_quote, so it needs order-book data "
                "(a paper session, or its journal with --from-journal); this backtest has bars only: define on_bar"
            )
        slots.append(StrategySlot(loaded, spec.id, list(spec.symbols), resolve(loaded.schema, dict(spec.params))))
    return slots


def open_market(
    config: RunConfig,
    data: Sequence[DataSource] | None = None,
    *,
    tz: str | None = None,
    universe: UniverseRule | None = None,
) -> tuple[RunConfig, MarketSeries, dict[str, Any]]:
    """Load a run's market data (the config's files, ``data``, or a
    built-in's bundled sample): the config as it will be journaled (data
    file names, symbols, timeframe), the market and the files' fingerprints.
    ``universe``: keep only the instruments whose data passes the rule
    (recorded in the fingerprints as ``universe:<column>``)."""
    if not data and not config.data:
        config = with_sample(config)
    chosen: dict[str, Any] = {}
    if universe is not None:
        config, data, chosen = _select_universe(config, data, universe)
    loaded, market = load_market(config, data, tz=tz)
    config = msgspec.structs.replace(
        config,
        data=[Path(b.path).name for b in loaded],
        symbols=market.symbols,
        symbol=None,
        timeframe=config.timeframe or cfg.format_duration(loaded[0].interval),
    )
    return config, market, {**describe(loaded), **chosen}


def _select_universe(
    config: RunConfig, data: Sequence[DataSource] | None, rule: UniverseRule
) -> tuple[RunConfig, list[DataSource] | None, dict[str, Any]]:
    """The config and data narrowed to the instruments ``rule`` keeps, and
    the header's record of the choice."""
    sources: list[DataSource] = [
        source if isinstance(source, pd.DataFrame) else resolve_data(Path(source), config.timeframe)
        for source in (data or config.data)
    ]  # a fetched symbol (--data BTC/USDT) as its cached file
    symbols = config.all_symbols()
    kept, kept_symbols, record = universe_select(sources, symbols, rule)
    changes: dict[str, Any] = {"symbols": kept_symbols, "symbol": None}
    if symbols:
        changes["instruments"] = {s: spec for s, spec in config.instruments.items() if s in kept_symbols}
    if not data:
        changes["data"] = [str(source) for source in kept]
    return build_config(config, **changes), (kept if data else None), {f"universe:{rule.column}": record}


async def run_async(
    config: RunConfig,
    *,
    data: Sequence[DataSource] | None = None,
    journal: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    tz: str | None = None,
    progress: Progress | None = None,
    market: MarketSeries | None = None,
    fingerprints: dict[str, Any] | None = None,
    parent: str = "",
    universe: UniverseRule | None = None,
) -> Path:
    """Run a backtest and write its journal; returns the journal path."""
    writer = await _run(
        config, data, journal, overwrite, tz, progress, market, fingerprints, parent, project=False, universe=universe
    )
    assert writer.sealed is not None
    return writer.sealed.path


async def run_with_results(
    config: RunConfig,
    *,
    data: Sequence[DataSource] | None = None,
    journal: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    tz: str | None = None,
    progress: Progress | None = None,
    market: MarketSeries | None = None,
    fingerprints: dict[str, Any] | None = None,
    parent: str = "",
    universe: UniverseRule | None = None,
) -> Result:
    """Run a backtest, write its journal and return its :class:`Result`.

    The journal writer's process builds the read models from each block as
    it commits it (on the second core, while the run goes on), so the
    results cost the run little; they are exactly what
    :meth:`Result.from_journal` reads back (tested), which it does here if
    the writer could not build them. ``result.check`` is None: nothing was
    read back, so there was nothing to verify (``tidemark verify`` does)."""
    writer = await _run(
        config, data, journal, overwrite, tz, progress, market, fingerprints, parent, project=True, universe=universe
    )
    return result_of(writer)


async def _run(
    config: RunConfig,
    data: Sequence[DataSource] | None,
    journal: str | os.PathLike[str] | None,
    overwrite: bool,
    tz: str | None,
    progress: Progress | None,
    market: MarketSeries | None,
    fingerprints: dict[str, Any] | None,
    parent: str,
    *,
    project: bool,
    universe: UniverseRule | None = None,
) -> ProcessJournalWriter:
    """The run; returns its sealed writer."""
    if market is None:
        config, market, fingerprints = open_market(config, data, tz=tz, universe=universe)
    planned = plan_run(config, market, fingerprints, parent)
    return await execute(planned, market, journal, overwrite, progress, project=project)


@dataclass(frozen=True)
class PlannedRun:
    """A run ready to start: its final config (strategies with their source,
    data names), loaded strategies, extra market inputs and header (whose
    ``run_id`` is content-addressed: the same data, config and code give the
    same id, before anything runs)."""

    config: RunConfig
    slots: list[StrategySlot]
    extras: list[Event]
    header: RunStarted
    first_open: int

    @property
    def default_journal(self) -> Path:
        return Path(f"{self.config.strategies[0].id}-{self.header.run_id}.journal")


def plan_run(
    config: RunConfig, market: MarketSeries, fingerprints: dict[str, Any] | None = None, parent: str = ""
) -> PlannedRun:
    """Resolve ``config`` against loaded ``market`` data (whose
    ``fingerprints`` name the files): load and validate every strategy,
    load funding and marks, make the header."""
    config = msgspec.structs.replace(
        config, strategies=strategy_configs(config, market.symbols), strategy=None, params={}
    )
    slots = slots_for(config)
    first_open = int(market.timeline[0]) - next(iter(market.instruments.values())).interval
    extras, config, extra_prints = load_extras(config, market, first_open)
    fingerprints = {**(fingerprints or {}), **extra_prints}
    header = make_header(config, fingerprints, first_open, parent=parent)
    return PlannedRun(config, slots, extras, header, first_open)


async def execute(
    planned: PlannedRun,
    market: MarketSeries,
    journal: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    *,
    project: bool = True,
    inline: bool = False,
    inputs: str | os.PathLike[str] | None = None,
) -> Any:
    """Run a planned run into its journal (default ``runs/<id>.journal``,
    overwritten); returns the sealed writer. ``inputs``: an input journal
    whose records the journal then refers to rather than holds (see
    :mod:`tidemark.journal.shared`). ``inline``: write from this
    process (where it may not start one: a daemon, e.g. a Dask worker)
    rather than from a writer process; the records, chain and head are the
    same, the results are then read back."""
    config, header = planned.config, planned.header
    path = Path(journal) if journal is not None else DEFAULT_RUNS_DIR / planned.default_journal
    with StopSignals() as stop:
        writer: Any
        if inline:
            from tidemark.journal.writer import JournalWriter

            writer = await JournalWriter.create(
                path, durability="normal", overwrite=overwrite or journal is None, inputs=inputs
            )
        else:
            writer = await ProcessJournalWriter.create(
                path, durability="normal", overwrite=overwrite or journal is None, project=project, inputs=inputs
            )
        try:
            engine = Engine(config, planned.slots, market, sink=writer)
            perps = sorted({e.instrument for e in planned.extras if isinstance(e, FundingRate)})
            if config.funding.enabled and not config.funding.data and config.version >= 2:
                perps = list(market.symbols)  # a static funding schedule: the symbols are perpetuals
            instruments = instruments_for(config, market, planned.first_open, perps)
            await drive(engine, writer, header, instruments, market, progress, planned.extras, stop=stop.check)
        except BaseException as exc:
            if started_nothing(exc):
                await writer.discard()  # nothing ran: no journal rather than a half-written one
            else:
                await seal_after(writer, exc)
            raise
        await writer.close()
        return writer


def result_of(writer: Any) -> Result:
    """The :class:`Result` of a sealed run: the read models its writer built,
    or (if it could not, or was not a writer process) read back from the file."""
    sealed = writer.sealed
    assert sealed is not None
    if getattr(writer, "projections", None) is None:
        return Result.from_journal(sealed.path)
    return Result.from_projections(sealed.path, writer.projections, sealed.events, sealed.head)


async def drive(
    engine: Engine,
    writer: ProcessJournalWriter,
    header: RunStarted,
    instruments: list[InstrumentDefinition],
    market: MarketSeries,
    progress: Progress | None,
    extras: list[Event] | None = None,
    *,
    stop: Callable[[], None] | None = None,
) -> None:
    """Feed the header, instruments, bars and other market inputs in time
    order (at equal times: bars, then marks, then funding); pump the journal.
    ``stop`` is called between batches, where every input fed has had all
    its outputs, and raises to stop the run there."""
    engine.feed(header)
    for inst in instruments:
        engine.feed(inst)
    total = market.bar_count + len(extras or ())
    engine.start()
    feed_all = engine.bus.feed_all
    chunks: Iterator[Sequence[Event]]
    if extras:
        merged = heapq.merge(market.bars(), extras, key=_feed_order)
        chunks = iter(lambda: list(islice(merged, PUMP_EVERY)), [])
    else:
        chunks = market.bar_chunks(PUMP_EVERY)
    count = 0
    with frozen_setup():
        for chunk in chunks:
            feed_all(chunk)
            count += len(chunk)
            await writer.pump()
            if progress is not None:
                progress(count, total)
            if stop is not None:
                stop()
        engine.finish()
    if progress is not None:
        progress(total, total)


_FEED_RANK = {Bar: 0, MarkPrice: 1, FundingRate: 2}


def _feed_order(event: Event) -> tuple[int, int]:
    return event.ts, _FEED_RANK[type(event)]


def load_extras(
    config: RunConfig, market: MarketSeries, first_open: int
) -> tuple[list[Event], RunConfig, dict[str, Any]]:
    """Funding rates and mark prices for the run's symbols, within its window."""
    funding = config.funding
    if not funding.enabled or not (funding.data or funding.marks):
        return [], config, {}
    last = int(market.timeline[-1])
    symbols = set(market.symbols)
    events: list[Event] = []
    prints: dict[str, Any] = {}
    for path_text in funding.data:
        rates = load_funding(path_text)
        events.extend(e for e in rates if first_open <= e.ts <= last and e.instrument in symbols)
        prints[f"funding:{Path(path_text).name}"] = fingerprint(path_text)
    for path_text in funding.marks:
        marks = load_marks(path_text)
        events.extend(e for e in marks if first_open <= e.ts <= last and e.instrument in symbols)
        prints[f"marks:{Path(path_text).name}"] = fingerprint(path_text)
    if not any(isinstance(e, FundingRate) for e in events):
        raise DataError(
            f"no funding rates for {sorted(symbols)} in the run's window (file names must match the symbols)"
        )
    events.sort(key=_feed_order)
    names = msgspec.structs.replace(
        funding, data=[Path(p).name for p in funding.data], marks=[Path(p).name for p in funding.marks]
    )
    return events, msgspec.structs.replace(config, funding=names), prints


def run_backtest(
    strategy: str | None = None,
    *,
    data: Sequence[str | os.PathLike[str]] | str | None = None,
    symbol: str | None = None,
    params: dict[str, Any] | None = None,
    config: RunConfig | dict[str, Any] | str | os.PathLike[str] | None = None,
    journal: str | os.PathLike[str] | None = None,
    fill: str | None = None,
    tz: str | None = None,
    overwrite: bool = False,
    **overrides: Any,
) -> Result:
    """Run a backtest and return its :class:`Result` (built from the
    journal's records as they were committed; see :func:`run_with_results`)."""
    if isinstance(data, (str, os.PathLike)):
        data = [data]
    run_config = build_config(config, strategy=strategy, symbol=symbol, fill_model=fill, **overrides)
    if params:
        run_config = build_config(run_config, params={**run_config.params, **params})
    return asyncio.run(run_with_results(run_config, data=data, journal=journal, overwrite=overwrite, tz=tz))


# -- replay ------------------------------------------------------------------------------------------


def engine_from_journal(
    reader: JournalReader, blocks: list[DecodedBlock], sink: EventSink, bars: MarketSeries | None = None
) -> Engine:
    """Rebuild a run's actor graph from its header and its journaled bars
    (``bars``: already read as columns)."""
    header = blocks[0].event(0) if blocks and len(blocks[0]) else None
    if not isinstance(header, RunStarted):
        raise ValueError(f"{reader.path}: seq 1 is not a run header")
    config = cfg.parse_stored(json.loads(header.config))
    if config.paper is not None:
        # Book sessions build their bars from the journaled trades, as they did live.
        paper = config.paper
        market = MarketSeries.live_series(config.all_symbols(), cfg.duration_ns(paper.bar_interval), paper.max_bars)
    elif bars is not None:
        market = bars
    else:
        every = [event for block in blocks for event in block.events if type(event) is Bar]
        if not every:
            raise JournalEmptyError(f"{reader.path}: no market data to replay (the run ended before its first bar)")
        market = MarketSeries.from_bars(every)
    return Engine(config, slots_for(config), market, sink=sink)


def replay(path: str | os.PathLike[str]) -> ReplayReport:
    """Regenerate every output of a journal and compare (no verify: see
    :func:`replay_verified`, which ``tidemark replay --check`` runs)."""
    with JournalReader(path) as reader:
        return replay_check(reader, engine_from_journal)


@dataclass(frozen=True)
class VerifiedReplay:
    """A journal verified and replayed. ``replay`` is None when verify found
    damage: a damaged journal's replay proves nothing."""

    integrity: VerifyReport
    replay: ReplayReport | None

    @property
    def ok(self) -> bool:
        return self.integrity.ok and self.replay is not None and self.replay.ok


def replay_verified(
    path: str | os.PathLike[str], *, full_verify: bool = False, expect: Expectations | None = None
) -> VerifiedReplay:
    """``tidemark replay --check``: verify the journal and replay it.

    Verify runs in a child process while this one replays, so the two take
    about as long as replay alone on a machine with two cores. Replay
    decodes or byte-compares every payload, so verify only reads each
    payload's tag and time unless ``full_verify`` (``tidemark audit``). On a
    damaged journal the replay's outcome, an error included, is dropped and
    the report says what verify found."""
    pending = BackgroundVerify(path, decode=full_verify, expect=expect)
    try:
        try:
            report = replay(path)
        except Exception:
            integrity = pending.result()
            if integrity.ok and not full_verify:
                integrity = verify(path, expect=expect)  # names a payload that does not decode
            if not integrity.ok:
                return VerifiedReplay(integrity, None)
            raise
        integrity = pending.result()
    finally:
        pending.close()  # on an interrupt: stop the child
    return VerifiedReplay(integrity, report if integrity.ok else None)
