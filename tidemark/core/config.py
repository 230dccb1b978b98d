"""Run configuration: the JSON shape of the seed's run config, validated
strictly (unknown keys are errors), stored canonically in the run header.

Times are ints in ms since the epoch (as in the seed example) or ISO-8601
strings; fees and slippage in basis points unless named otherwise.

``version`` is the version of the simulation rules a run follows, so a
journal replays under later code exactly as it ran:

* 1 (journals written before it existed): no account checks (spot could be
  bought without cash and shorted without a loan), ``leverage`` as a
  gross-exposure risk limit, a missing funding print noticed after the next
  bar's fills, no lot, tick or minimum-notional rules.
* 2 (:data:`RULES_VERSION`): cash and margin accounts (:mod:`tidemark.core.accounts.buying_power`),
  ``leverage`` as the account's leverage, funding charged on the position and
  mark held at each funding time, contract rules enforced, an account with
  margined positions halted when its equity reaches zero.

A stored config without ``version`` is version 1 (:func:`parse_stored`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from tidemark.core.accounts.buying_power import AccountRules
from tidemark.core.accounts.risk import RiskLimits
from tidemark.core.execution.fees import FeeModel
from tidemark.core.execution.slippage import SlippageModel
from tidemark.core.execution.venue import ExecutionConfig


class ConfigError(ValueError):
    """The run configuration is invalid; the message names the field."""


class StrategyConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One strategy of a run. ``strategy``: a built-in name or a file path;
    ``source`` is filled in with the code actually run (self-contained)."""

    strategy: str = "ema_cross"
    id: str = ""
    params: dict[str, Any] = {}
    symbols: list[str] = []
    source: str = ""
    origin: str = ""


class SlippageConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    model: str = "fixed_bps"
    bps: float = 0.0
    ticks: float = 0.0
    k: float = 0.0


class FundingConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Perpetual funding. ``data``/``marks``: funding-rate and mark-price files
    (freqtrade layout: the rate is in ``open``), matched to symbols by file
    name. ``interval`` (e.g. ``8h``) turns on detection of missing rates;
    ``fallback`` says what a missing rate does: ``error``, ``skip`` or
    ``rate`` (charge ``rate``)."""

    enabled: bool = False
    rate: float | None = None
    fallback: str = "error"
    interval: str = ""
    data: list[str] = []
    marks: list[str] = []

    def fallback_policy(self) -> str:
        if self.fallback == "rate":
            if self.rate is None:
                raise ConfigError("run config: funding.fallback 'rate' needs funding.rate")
            return f"rate:{self.rate!r}"
        if self.fallback not in ("error", "skip"):
            raise ConfigError(f"run config: funding.fallback must be error, skip or rate, not {self.fallback!r}")
        return self.fallback


class SizingConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """What ``ctx.size.default()`` returns: ``fixed`` units or
    ``percent_equity`` (value = fraction of equity); ``risk`` needs a stop
    distance, so strategies call ``ctx.size.risk`` for it."""

    type: str = "fixed"
    value: float = 1.0


class InstrumentConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Per-symbol instrument metadata (fees are fractions of notional;
    margins are fractions; ``expiry`` as epoch ms or ISO time)."""

    kind: str = "spot"
    inverse: bool = False
    base: str = ""
    quote: str = ""
    settle: str = ""
    contract_size: float = 1.0
    multiplier: float = 1.0
    tick_size: float = 0.0
    lot_size: float = 0.0
    min_notional: float = 0.0
    maker_fee: float = 0.0
    taker_fee: float = 0.0
    fee_per_contract: float = 0.0
    initial_margin: float = 0.0
    maintenance_margin: float = 0.0
    expiry: int | str | None = None


class RiskConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    max_positions: int | None = None
    max_gross_exposure: float | None = None
    max_leverage: float | None = None
    max_open_risk: float | None = None
    max_drawdown: float | None = None
    daily_loss: float | None = None
    strategy_max_positions: dict[str, int] = {}
    strategy_notional: dict[str, float] = {}
    strategy_risk: dict[str, float] = {}
    open_risk_basis: str = "mark"
    pending_risk: bool = False


class PaperConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A session on order books: live paper trading, and its replays and
    reruns. ``bar_interval``: bars built from trades for ``on_bar``;
    ``latency_ms``: decision-to-matching delay; ``book_depth``: levels kept
    per side; ``max_book_age``: silence after which a book is stale;
    ``funding_grace``: how long after a funding time its rate may arrive;
    ``max_bars``: bar capacity of the session's series. ``ccxt_options``
    are recorded with secrets masked."""

    exchange: str = ""
    bar_interval: str = "1m"
    latency_ms: float = 0.0
    book_depth: int = 50
    max_book_age: str = "10s"
    funding_grace: str = "2m"
    max_bars: int = 100_000
    websocket: bool = True
    session_start: int = 0
    ccxt_options: dict[str, Any] = {}


RULES_VERSION = 2
"""The simulation rules new runs follow (see the module docstring)."""

DEFAULT_CASH = 100_000.0
"""Initial cash of every command when none is given (account currency)."""

ACCOUNT_KINDS = ("cash", "margin")


class RunConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    version: int = RULES_VERSION
    """Simulation rules (1: before accounts; 2: current). Stored configs
    without it are version 1."""
    symbol: str | None = None
    symbols: list[str] = []
    timeframe: str | None = None
    start: int | str | None = None
    end: int | str | None = None
    initial_cash: float = DEFAULT_CASH
    currency: str = "USD"
    account: str | None = None
    """``cash`` (spot bought with cash, sold from holdings) or ``margin``
    (spot levered up to ``leverage``, shorted with ``borrow_rate``); None:
    ``margin`` when ``leverage`` > 1, else ``cash``. Derivatives are
    margined on either."""
    leverage: float | None = None
    """Account leverage (default 1): initial margin is 1/leverage of
    notional where the instrument sets none. Version 1: a risk limit."""
    borrow_rate: float | None = None
    """Annual interest on what a margin account borrows (spot shorts, levered
    spot longs); None: no borrowing (spot shorts are refused)."""
    maker_rebate: bool = False
    """Allow a negative maker fee (an exchange's rebate); otherwise fees and
    slippage must be >= 0."""
    warmup: int | str | None = None
    """Bars (int) or a duration (``30d``) before ``start`` that indicators and
    strategies see without trading; the results start at ``start``."""
    fill_model: str = "next_open"
    commission_bps: float | None = None
    maker_bps: float | None = None
    taker_bps: float | None = None
    commission_per_contract: float | None = None
    commission_fixed: float = 0.0
    slippage_bps: float = 0.0
    limit_slippage_bps: float = 0.0
    """Slippage on resting limit fills (take-profits), basis points; 0: none."""
    intrabar: str = "path"
    """``path`` or ``pessimistic`` (stops first in a bar, limits never better
    than their price): see :class:`tidemark.core.execution.venue.ExecutionConfig`."""
    slippage: SlippageConfig | None = None
    latency_bars: int = 0
    participation: float | None = None
    fill_probability: float | None = None
    seed: int = 0
    funding: FundingConfig = FundingConfig()
    sizing: SizingConfig = SizingConfig()
    risk: RiskConfig = RiskConfig()
    strategy: str | None = None
    params: dict[str, Any] = {}
    strategies: list[StrategyConfig] = []
    data: list[str] = []
    repair: str = "none"
    snapshot_every: str = "1d"
    multiplier: float = 1.0
    contract_size: float = 1.0
    instruments: dict[str, InstrumentConfig] = {}
    liquidation_fee_bps: float = 50.0
    margin_mode: str = "isolated"
    paper: PaperConfig | None = None
    wake: bool = True
    """Honour strategies' ``wake`` masks (backtests); false calls ``on_bar`` at
    every step, the reference to check a mask against."""

    def all_symbols(self) -> list[str]:
        out = list(self.symbols)
        if self.symbol and self.symbol not in out:
            out.insert(0, self.symbol)
        return out


FILL_ALIASES = {"next_open": "next_open", "close_to_open": "next_open", "close": "close", "close_to_close": "close"}
REPAIRS = ("none", "drop", "ffill")


def parse(obj: Any) -> RunConfig:
    """Validate a decoded JSON object into a RunConfig (raises ConfigError)."""
    try:
        config = msgspec.convert(obj, RunConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"run config: {exc}") from None
    if config.fill_model not in FILL_ALIASES:
        raise ConfigError(f"run config: fill_model must be one of {sorted(FILL_ALIASES)}, not {config.fill_model!r}")
    if config.repair not in REPAIRS:
        raise ConfigError(f"run config: repair must be one of {list(REPAIRS)}, not {config.repair!r}")
    if config.initial_cash <= 0:
        raise ConfigError("run config: initial_cash must be > 0")
    config.funding.fallback_policy()
    if config.version >= 2:
        _check_costs(config)
        _check_account(config)
        if isinstance(config.warmup, str):
            duration_ns(config.warmup)
        elif config.warmup is not None and config.warmup < 0:
            raise ConfigError("run config: warmup must be >= 0 bars or a duration such as 30d")
    elif config.version != 1:
        raise ConfigError(f"run config: version must be 1 or {RULES_VERSION}, not {config.version}")
    if config.risk.open_risk_basis not in ("mark", "entry"):
        raise ConfigError(
            f"run config: risk.open_risk_basis must be mark or entry, not {config.risk.open_risk_basis!r}"
        )
    if config.sizing.type not in ("fixed", "percent_equity", "risk"):
        raise ConfigError(f"run config: sizing.type must be fixed, percent_equity or risk, not {config.sizing.type!r}")
    if config.funding.interval:
        duration_ns(config.funding.interval)
    return config


def _check_costs(config: RunConfig) -> None:
    """Fees and slippage are costs: >= 0, except a maker rebate asked for."""
    for name in (
        "commission_bps",
        "taker_bps",
        "commission_per_contract",
        "commission_fixed",
        "slippage_bps",
        "limit_slippage_bps",
    ):
        value = getattr(config, name)
        if value is not None and value < 0:
            raise ConfigError(f"run config: {name} must be >= 0, not {value!r}")
    slip = config.slippage
    if slip is not None and min(slip.bps, slip.ticks, slip.k) < 0:
        raise ConfigError("run config: slippage bps, ticks and k must be >= 0")
    if config.maker_bps is not None and config.maker_bps < 0 and not config.maker_rebate:
        raise ConfigError(f"run config: maker_bps {config.maker_bps!r} is a rebate; set maker_rebate: true to allow it")
    for symbol, inst in config.instruments.items():
        if inst.taker_fee < 0 or inst.fee_per_contract < 0 or (inst.maker_fee < 0 and not config.maker_rebate):
            raise ConfigError(
                f"run config: instruments.{symbol}: fees must be >= 0 (maker_rebate allows a maker rebate)"
            )


def _check_account(config: RunConfig) -> None:
    if config.account is not None and config.account not in ACCOUNT_KINDS:
        raise ConfigError(f"run config: account must be cash or margin, not {config.account!r}")
    if config.leverage is not None and not config.leverage > 0:
        raise ConfigError(f"run config: leverage must be > 0, not {config.leverage!r}")
    if config.account == "cash" and (config.leverage or 1.0) > 1.0:
        raise ConfigError("run config: a cash account cannot use leverage > 1; set account to margin")
    if config.borrow_rate is not None:
        if config.borrow_rate < 0:
            raise ConfigError(f"run config: borrow_rate must be >= 0, not {config.borrow_rate!r}")
        if account_kind(config) != "margin":
            raise ConfigError("run config: borrowing (borrow_rate) needs a margin account")


def account_kind(config: RunConfig) -> str:
    """``cash``, ``margin``, or ``unchecked`` for version-1 runs."""
    if config.version < 2:
        return "unchecked"
    if config.account is not None:
        return config.account
    return "margin" if (config.leverage or 1.0) > 1.0 else "cash"


def account_rules(config: RunConfig) -> AccountRules:
    """The account a run trades from (:mod:`tidemark.core.accounts.buying_power`)."""
    return AccountRules(account_kind(config), config.leverage or 1.0, config.borrow_rate is not None)


def resolve(config: RunConfig) -> RunConfig:
    """A new run's config with its defaults made explicit (what the header
    records): the account kind and leverage."""
    if config.version < 2:
        return config
    return msgspec.structs.replace(config, account=account_kind(config), leverage=config.leverage or 1.0)


def parse_stored(obj: Any) -> RunConfig:
    """A config read from a journal header: one without ``version`` was
    written under version 1 of the rules (the upcaster of configs)."""
    if isinstance(obj, dict) and "version" not in obj:
        obj = {**obj, "version": 1}
    return parse(obj)


def parse_json(text: bytes | str, source: str = "run config") -> RunConfig:
    try:
        obj = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{source}: not valid JSON: {exc}") from None
    try:
        return parse(obj)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("run config", source, 1)) from None


def to_builtins(config: RunConfig) -> dict[str, Any]:
    return msgspec.to_builtins(config)


def replace(config: RunConfig, **changes: Any) -> RunConfig:
    return parse({**to_builtins(config), **changes})


def execution_config(config: RunConfig) -> ExecutionConfig:
    slip = config.slippage
    if slip is None:
        slippage = SlippageModel("fixed_bps", bps=config.slippage_bps)
    else:
        slippage = SlippageModel(slip.model, bps=slip.bps or config.slippage_bps, ticks=slip.ticks, atr_k=slip.k)
    maker = config.maker_bps if config.maker_bps is not None else config.commission_bps
    taker = config.taker_bps if config.taker_bps is not None else config.commission_bps
    fees = FeeModel(
        maker_bps=maker,
        taker_bps=taker,
        per_contract=config.commission_per_contract,
        fixed=config.commission_fixed,
        legacy_labels=config.version < 2,
    )
    try:
        return ExecutionConfig(
            fill=FILL_ALIASES[config.fill_model],
            latency_bars=config.latency_bars,
            participation=config.participation,
            fill_probability=config.fill_probability,
            slippage=slippage,
            fees=fees,
            limit_slippage_bps=config.limit_slippage_bps,
            intrabar=config.intrabar,
            account=account_rules(config),
            rules=config.version,
        )
    except ValueError as exc:
        raise ConfigError(f"run config: {exc}") from None


def risk_limits(config: RunConfig) -> RiskLimits:
    r = config.risk
    max_leverage = r.max_leverage
    if max_leverage is None and config.version < 2:
        max_leverage = config.leverage  # version 1: leverage was a risk limit
    return RiskLimits(
        max_positions=r.max_positions,
        max_gross_exposure=r.max_gross_exposure,
        max_leverage=max_leverage,
        max_open_risk=r.max_open_risk,
        max_drawdown=r.max_drawdown,
        daily_loss=r.daily_loss,
        strategy_max_positions=dict(r.strategy_max_positions),
        strategy_notional=dict(r.strategy_notional),
        strategy_risk=dict(r.strategy_risk),
        open_risk_basis=r.open_risk_basis,
        pending_risk=r.pending_risk,
    )


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def time_ns(value: int | str | None, name: str) -> int | None:
    """A config time (epoch ms as an int, or ISO-8601; naive means UTC) in ns."""
    if value is None:
        return None
    if isinstance(value, int):
        return value * 1_000_000 if value < 10**14 else value
    try:
        stamp = pd.Timestamp(value)
    except ValueError:
        raise ConfigError(f"run config: {name} {value!r} is not a time") from None
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return int(stamp.value)


def trading_start(config: RunConfig, timeline: Sequence[int] | np.ndarray, interval: int) -> int:
    """Close time (ns) of the first step strategies act at, after the
    warm-up: the first bar opening at or after ``start``; without ``start``,
    the step ``warmup`` bars (or that long) after the first. 0: no warm-up."""
    warmup = config.warmup
    if warmup is None or not len(timeline):
        return 0
    start = time_ns(config.start, "start")
    if start is not None:
        return start + interval
    if isinstance(warmup, int):
        return int(timeline[min(warmup, len(timeline) - 1)])
    return int(timeline[0]) + duration_ns(warmup)


def format_duration(ns: int) -> str:
    """ns -> the largest whole unit: ``3_600_000_000_000`` -> ``'1h'``; ``'90s'``."""
    seconds, rest = divmod(int(ns), 1_000_000_000)
    if rest or seconds <= 0:
        return f"{ns}ns"
    for unit in ("w", "d", "h", "m"):
        size = DURATION_UNITS[unit]
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def duration_ns(text: str) -> int:
    """``'15m'`` -> ns. Units: s, m, h, d, w."""
    text = text.strip()
    if len(text) < 2 or text[-1] not in DURATION_UNITS or not text[:-1].isdigit():
        raise ConfigError(f"duration {text!r} must be a number and one of s, m, h, d, w (e.g. 15m)")
    return int(text[:-1]) * DURATION_UNITS[text[-1]] * 1_000_000_000
