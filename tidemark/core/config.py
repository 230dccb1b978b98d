"""Run configuration: the JSON shape of the seed's run config, validated
strictly (unknown keys are errors), stored canonically in the run header.

Times are ints in ms since the epoch (as in the seed example) or ISO-8601
strings; fees and slippage in basis points unless named otherwise.
"""

from __future__ import annotations

from typing import Any

import msgspec

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


class RunConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    symbol: str | None = None
    symbols: list[str] = []
    timeframe: str | None = None
    start: int | str | None = None
    end: int | str | None = None
    initial_cash: float = 10_000.0
    currency: str = "USD"
    leverage: float | None = None
    fill_model: str = "next_open"
    commission_bps: float | None = None
    maker_bps: float | None = None
    taker_bps: float | None = None
    commission_per_contract: float | None = None
    commission_fixed: float = 0.0
    slippage_bps: float = 0.0
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
    if config.sizing.type not in ("fixed", "percent_equity", "risk"):
        raise ConfigError(f"run config: sizing.type must be fixed, percent_equity or risk, not {config.sizing.type!r}")
    if config.funding.interval:
        duration_ns(config.funding.interval)
    return config


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
        maker_bps=maker, taker_bps=taker, per_contract=config.commission_per_contract, fixed=config.commission_fixed
    )
    try:
        return ExecutionConfig(
            fill=FILL_ALIASES[config.fill_model],
            latency_bars=config.latency_bars,
            participation=config.participation,
            fill_probability=config.fill_probability,
            slippage=slippage,
            fees=fees,
        )
    except ValueError as exc:
        raise ConfigError(f"run config: {exc}") from None


def risk_limits(config: RunConfig) -> RiskLimits:
    r = config.risk
    max_leverage = r.max_leverage if r.max_leverage is not None else config.leverage
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
    )


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration_ns(text: str) -> int:
    """``'15m'`` -> ns. Units: s, m, h, d, w."""
    text = text.strip()
    if len(text) < 2 or text[-1] not in DURATION_UNITS or not text[:-1].isdigit():
        raise ConfigError(f"duration {text!r} must be a number and one of s, m, h, d, w (e.g. 15m)")
    return int(text[:-1]) * DURATION_UNITS[text[-1]] * 1_000_000_000
