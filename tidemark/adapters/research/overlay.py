"""A short overlay held as target weights (seed 001's research model).

Seed 001 searches a *short overlay*: when BTC is in a risk-off state, short
one or more other perpetuals (weights summing to -1), and blend the
overlay's equity curve into a long strategy's at a small allocation. This
module is that model as pure functions of close prices:

- :class:`ShortOverlay` and :func:`overlay_weights`: the two signal
  families, ``btc_risk_pair`` and ``btc_breakdown_symbol``;
- :func:`short_grid`: the seed's 1,728 parameter sets per bar size;
- :func:`resample_closes`: 4h closes built causally from 1h closes;
- :func:`equity_from_weights` and :func:`weight_trade_stats`: the
  portfolio model and its trades;
- :func:`combine`: an overlay blended into a base curve at a fixed
  allocation;
- :func:`seed_metrics`, :func:`seed_horizons`, :func:`horizon_returns`,
  :func:`recent_not_worse`: the seed's figures, with the seed's
  conventions.

The portfolio model: weights held, fees = |change in weight| x fee
-------------------------------------------------------------------
The weight decided at the close of bar ``t`` is held over bar ``t + 1``
(from close ``t`` to close ``t + 1``). The portfolio is rebalanced to its
weights at every close *without cost*: a bar's return is
``sum_s w_s(t-1) * r_s(t) - fee * sum_s |w_s(t-1) - w_s(t-2)|``, so only a
change of weight pays the fee, on the changed fraction of equity, and the
drift of a position between changes is rebalanced away for free. A real
account holds *quantities*; :mod:`tidemark.strategies.short_overlay`
trades this overlay that way (quantities held between changes, fees on the
notional traded), so its equity differs from this model's by the drift and
its fees by the drift of the exit notional.

Conventions that are the seed's (and not :mod:`.analytics`')
-------------------------------------------------------------
- :func:`seed_metrics`: 365-day years, max drawdown *positive*, and 0.0
  where a figure is undefined (no drawdown: Calmar 0; a loss of 100 % or
  more: annualised return 0). :func:`.analytics.horizon_metrics` uses
  365.25-day years, a negative drawdown and NaN.
- :func:`seed_horizons`: a horizon longer than the data is the whole
  curve; :func:`.analytics.horizon_metrics` leaves it NaN with a note.
- :func:`weight_trade_stats`: profit factor 0.0 without a losing trade.

Where the definitions agree, use :mod:`.analytics`: :func:`.analytics.
daily_equity` is the seed's ``daily``, :func:`.analytics.monthly_returns`
its ``monthly_rows`` and :func:`.analytics.worst_rolling` its
``worst_rolling_rows`` (tests/adapters/research/test_overlay_seed001.py
checks all three against the seed).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tidemark.adapters.research.analytics import daily_equity

SEED_FEE = 0.0004
"""The seed's one-way taker fee: 0.04 % of the notional traded."""
SEED_INITIAL = 10_000.0
"""The seed's initial equity."""
BTC = "BTC-USDT-SWAP"
SHORTABLE = ("ETH-USDT-SWAP", "SOL-USDT-SWAP")
"""The seed's symbols (OKX USDT swaps); pass your own names to :func:`short_grid`."""
FAMILIES = ("btc_risk_pair", "btc_breakdown_symbol")
SEED_HORIZONS = ("full", "3y", "1y", "6m", "3m")
DAYS_A_YEAR = 365.0


@dataclass(frozen=True)
class ShortOverlay:
    """One parameter set of the overlay (the seed's ``BtcRiskShort``).

    Lengths are in bars of ``bar``. Momentum is ``close / close n bars
    earlier - 1``; volatility is the standard deviation (ddof 1) of bar
    returns over ``vol_lookback`` bars, annualised with 365-day years.

    ``family``
        ``btc_risk_pair``: in the BTC risk state, short every symbol of
        ``short_symbols`` at ``-1 / len(short_symbols)``.
        ``btc_breakdown_symbol``: in the risk state, short the symbols that
        are themselves breaking down (below their SMA(``symbol_trend``) and
        with a ``btc_lookback``-bar momentum at most
        ``symbol_max_momentum``), equally, ``-1 / number of them``.
    ``bar``
        ``1h`` or ``4h`` (any length dividing a day).
    ``btc_trend``, ``btc_lookback``, ``vol_lookback``
        The BTC risk state: BTC below its SMA(``btc_trend``), its
        ``btc_lookback``-bar momentum at most ``btc_max_momentum`` and at
        most ``-btc_min_drop``, its annualised volatility over
        ``vol_lookback`` bars at least ``min_btc_vol``.
    ``symbol_trend``, ``symbol_max_momentum``
        The breakdown filter of ``btc_breakdown_symbol`` (unused by
        ``btc_risk_pair``). The symbols' momentum is over ``btc_lookback``
        bars, as in the seed.
    ``short_symbols``
        The symbols that may be shorted (those absent from the closes are
        left out, as the seed does).
    ``btc``
        The column of the BTC closes (not one of the seed's fields).
    """

    family: str
    bar: str
    btc_trend: int
    btc_lookback: int
    symbol_trend: int
    vol_lookback: int
    btc_max_momentum: float
    btc_min_drop: float
    min_btc_vol: float
    symbol_max_momentum: float
    short_symbols: tuple[str, ...]
    btc: str = BTC

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"ShortOverlay: family {self.family!r}, expected one of {FAMILIES}")
        bars_a_day(self.bar)
        for name in ("btc_trend", "btc_lookback", "symbol_trend", "vol_lookback"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"ShortOverlay: {name} must be at least 1 bar, was {getattr(self, name)}")
        if not self.short_symbols:
            raise ValueError("ShortOverlay: no short_symbols")

    @property
    def name(self) -> str:
        """The seed's name of the parameter set: ``family-bar-symbols-bt..``
        (the symbols as their lower-case base coins: ``eth``, ``ethsol``)."""
        coins = "".join(_coin(symbol) for symbol in self.short_symbols)
        return (
            f"{self.family}-{self.bar}-{coins}-bt{self.btc_trend}"
            f"-bl{self.btc_lookback}-st{self.symbol_trend}-vw{self.vol_lookback}"
            f"-bm{self.btc_max_momentum:.3f}-bd{self.btc_min_drop:.3f}"
            f"-bv{self.min_btc_vol:.4f}-sm{self.symbol_max_momentum:.3f}"
        )


def _coin(symbol: str) -> str:
    for sep in ("-", "_", "/"):
        symbol = symbol.split(sep)[0]
    for quote in ("USDT", "USDC", "USD"):
        if symbol.upper().endswith(quote) and len(symbol) > len(quote):
            symbol = symbol[: -len(quote)]
            break
    return symbol.lower()


def bars_a_day(bar: str) -> int:
    """Bars of length ``bar`` in a day (``1h`` -> 24, ``4h`` -> 6)."""
    try:
        length = pd.Timedelta(bar)
    except ValueError:
        raise ValueError(f"bar {bar!r}: expected a length like 1h or 4h") from None
    day = pd.Timedelta(days=1)
    if length <= pd.Timedelta(0) or day % length:
        raise ValueError(f"bar {bar!r}: its length must divide a day")
    return int(day // length)


# -- the grid --------------------------------------------------------------------------------------

# The seed's grid in days, per bar size; thresholds per bar size.
_TREND_DAYS = (60, 120)
_LOOKBACK_DAYS = (7, 14)
_SYMBOL_TREND_DAYS = (30, 60)
_VOL_DAYS = (14,)
_MAX_MOMENTUM = (-0.005, 0.000)
_SYMBOL_MAX_MOMENTUM = (-0.010, 0.000, 0.020)
_THRESHOLDS = {  # bar -> (btc_min_drop values, min_btc_vol values)
    "1h": ((0.025, 0.040, 0.060), (0.012, 0.018, 0.024)),
    "4h": ((0.030, 0.050, 0.070), (0.020, 0.030, 0.040)),
}


def short_grid(bar: str, short_symbols: Sequence[str] = SHORTABLE, btc: str = BTC) -> list[ShortOverlay]:
    """Seed 001's parameter sets for one bar size (``1h`` or ``4h``), in its order.

    2 families x 2 BTC trends (60, 120 days) x 2 lookbacks (7, 14 days) x 2
    symbol trends (30, 60 days) x 1 volatility window (14 days) x 2 BTC
    momentum caps (-0.5 %, 0) x 3 minimum drops x 3 minimum volatilities x
    3 symbol momentum caps (-1 %, 0, 2 %) x 2 short sets (the first symbol;
    all of ``short_symbols``) = 1,728. Days become bars of ``bar``; the
    drops and volatilities depend on the bar size (1h: drops 2.5/4/6 %,
    volatilities 0.012/0.018/0.024; 4h: 3/5/7 %, 0.020/0.030/0.040).
    ``short_grid("1h") + short_grid("4h")`` is the seed's
    ``build_short_params()`` (3,456 sets).
    """
    if bar not in _THRESHOLDS:
        raise ValueError(f"short_grid: the seed's grid has bars {tuple(_THRESHOLDS)}, not {bar!r}")
    if not short_symbols:
        raise ValueError("short_grid: no short_symbols")
    per_day = bars_a_day(bar)
    drops, min_vols = _THRESHOLDS[bar]
    symbol_sets = ((short_symbols[0],), tuple(short_symbols))
    axes: tuple[Iterable[Any], ...] = (
        FAMILIES,
        [per_day * d for d in _TREND_DAYS],
        [per_day * d for d in _LOOKBACK_DAYS],
        [per_day * d for d in _SYMBOL_TREND_DAYS],
        [per_day * d for d in _VOL_DAYS],
        _MAX_MOMENTUM,
        drops,
        min_vols,
        _SYMBOL_MAX_MOMENTUM,
        symbol_sets,
    )
    return [
        ShortOverlay(
            family=family,
            bar=bar,
            btc_trend=trend,
            btc_lookback=lookback,
            symbol_trend=symbol_trend,
            vol_lookback=vol,
            btc_max_momentum=max_momentum,
            btc_min_drop=drop,
            min_btc_vol=min_vol,
            symbol_max_momentum=symbol_max,
            short_symbols=symbols,
            btc=btc,
        )
        for family, trend, lookback, symbol_trend, vol, max_momentum, drop, min_vol, symbol_max, symbols in (
            itertools.product(*axes)
        )
    ]


# -- bars ------------------------------------------------------------------------------------------


def resample_closes(closes: pd.DataFrame | pd.Series, bar: str) -> pd.DataFrame | pd.Series:
    """Closes of ``bar`` (e.g. ``4h``) from finer closes, causally.

    ``closes`` must be stamped with each bar's **close** time (tidemark's
    convention; Binance/freqtrade files stamp the open: add the bar length
    first). A coarse bar covers the right-closed interval ``(T - bar, T]``
    of close times, buckets aligned to UTC midnight, and is stamped ``T``
    (``resample(closed="right", label="right")``): its close is the close
    of the last fine bar in it, so it exists only once that fine bar has
    closed. A last bucket whose close time ``T`` is after the last fine bar
    has not closed and is dropped; a first bucket that starts before the
    data is kept with the fine bars it has (both as
    ``ctx.data[symbol].resample``). A bucket without any fine bar is
    dropped.
    """
    if not isinstance(closes.index, pd.DatetimeIndex):
        raise ValueError("resample_closes: closes must be indexed by time")
    if closes.empty:
        return closes.copy()
    out = closes.resample(pd.Timedelta(bar), closed="right", label="right", origin="epoch").last()
    out = out[out.index <= closes.index[-1]]
    present = closes.notna().resample(pd.Timedelta(bar), closed="right", label="right", origin="epoch").sum()
    present = present.reindex(out.index)
    has_bar = present > 0 if isinstance(present, pd.Series) else (present > 0).any(axis=1)
    return out[has_bar]


# -- weights ---------------------------------------------------------------------------------------


def overlay_weights(closes: pd.DataFrame, params: ShortOverlay) -> pd.DataFrame:
    """The overlay's target weight of each column at each close.

    Parameters
    ----------
    closes
        One column per symbol (``params.btc`` among them), one row per
        close of ``params.bar``. Every figure at a row uses that row and
        earlier rows only.
    params
        The parameter set.

    Returns
    -------
    pd.DataFrame
        Same index and columns as ``closes``: 0, or the negative weight of
        a short (the shorts of a row sum to -1). Rows before the lookbacks
        are filled have no risk state (NaN compares false): weight 0.
    """
    if params.btc not in closes.columns:
        raise ValueError(f"overlay_weights: no column {params.btc!r} for BTC in {list(closes.columns)}")
    btc = closes[params.btc]
    btc_momentum = btc / btc.shift(params.btc_lookback) - 1.0
    annualise = (DAYS_A_YEAR * bars_a_day(params.bar)) ** 0.5
    btc_vol = btc.pct_change().rolling(params.vol_lookback).std(ddof=1) * annualise
    risk = (
        (btc < btc.rolling(params.btc_trend).mean())
        & (btc_momentum <= params.btc_max_momentum)
        & (btc_momentum <= -params.btc_min_drop)
        & (btc_vol >= params.min_btc_vol)
    ).to_numpy()

    shorts = [symbol for symbol in params.short_symbols if symbol in closes.columns]
    weights = np.zeros(closes.shape)
    if not shorts:
        return pd.DataFrame(weights, index=closes.index, columns=closes.columns)
    where = [closes.columns.get_loc(symbol) for symbol in shorts]
    if params.family == "btc_risk_pair":
        chosen = np.repeat(risk[:, None], len(shorts), axis=1)
    else:
        legs = closes[shorts]
        momentum = legs / legs.shift(params.btc_lookback) - 1.0
        breaking = (legs < legs.rolling(params.symbol_trend).mean()) & (momentum <= params.symbol_max_momentum)
        chosen = breaking.to_numpy() & risk[:, None]
    count = chosen.sum(axis=1)
    share = np.divide(-1.0, count, out=np.zeros(len(count)), where=count > 0)
    weights[:, where] = np.where(chosen, share[:, None], 0.0)  # type: ignore[index]
    return pd.DataFrame(weights, index=closes.index, columns=closes.columns)


# -- equity and trades -----------------------------------------------------------------------------


def _executed(weights: pd.DataFrame) -> np.ndarray:
    """The weights held over each bar: decided at the previous close (0 before)."""
    held = np.zeros(weights.shape)
    held[1:] = weights.to_numpy(dtype=float)[:-1]
    return np.nan_to_num(held)


def _bar_returns(closes: pd.DataFrame) -> np.ndarray:
    values = closes.to_numpy(dtype=float)
    out = np.zeros(values.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[1:] = values[1:] / values[:-1] - 1.0
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def _turnover(held: np.ndarray) -> np.ndarray:
    """|change of the weight held| per bar and column (from 0 before the first bar)."""
    return np.abs(np.diff(held, axis=0, prepend=np.zeros((1, held.shape[1]))))


def _check_frames(closes: pd.DataFrame, weights: pd.DataFrame) -> pd.DataFrame:
    if not weights.index.equals(closes.index):
        raise ValueError("weights and closes must have the same index")
    missing = [c for c in weights.columns if c not in closes.columns]
    if missing:
        raise ValueError(f"weights name {missing}, which are not among the closes' columns")
    return closes[list(weights.columns)]


def equity_from_weights(
    closes: pd.DataFrame, weights: pd.DataFrame, fee: float = SEED_FEE, initial: float = SEED_INITIAL
) -> pd.Series:
    """The equity of holding ``weights`` (see the module docstring's model).

    Each bar's net return is ``sum_s h_s * r_s - fee * sum_s |h_s - h'_s|``
    with ``h`` the weights decided at the previous close, ``h'`` those of
    the bar before and ``r`` the bar's close-to-close return (0 at the
    first bar and wherever a close is missing); the equity starts at
    ``initial`` and compounds the net returns. Named ``equity``, indexed
    like ``closes``.
    """
    prices = _check_frames(closes, weights)
    held = _executed(weights)
    net = (held * _bar_returns(prices)).sum(axis=1) - _turnover(held).sum(axis=1) * fee
    return pd.Series(initial * np.cumprod(1.0 + net), index=closes.index, name="equity")


def weight_trade_stats(
    weights: pd.DataFrame, closes: pd.DataFrame, fee: float = SEED_FEE, symbols: Sequence[str] | None = None
) -> dict[str, float | int]:
    """Trades of a weight path: each run of bars holding a short in a symbol.

    A trade is a maximal run of bars over which ``symbol``'s held weight
    (decided at the previous close) is negative; a change of size within
    the run stays the same trade. Its return compounds the bars' net
    returns ``h * r - fee * |change of h|``: the entry fee (and any resize
    within the run) is in it; the exit fee is paid on the bar after the
    run, outside the trade, as in the seed.

    Returns
    -------
    dict
        ``trades``; ``win_rate`` (trades with a return above 0 over trades,
        0.0 without trades); ``profit_factor`` (summed winning returns over
        summed losing returns, the seed's 0.0 when nothing lost).
    """
    prices = _check_frames(closes, weights)
    names = list(prices.columns) if symbols is None else [s for s in symbols if s in prices.columns]
    held = _executed(weights)
    net = held * _bar_returns(prices) - _turnover(held) * fee
    wins = trades = 0
    profit = loss = 0.0
    for symbol in names:
        k = prices.columns.get_loc(symbol)
        short = held[:, k] < 0.0
        edges = np.diff(np.r_[False, short, False].astype(np.int8))
        for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
            value = float(np.prod(1.0 + net[start:stop, k]) - 1.0)
            trades += 1
            if value > 0.0:
                wins += 1
                profit += value
            else:
                loss -= value
    return {
        "trades": trades,
        "win_rate": wins / trades if trades else 0.0,
        "profit_factor": profit / loss if loss else 0.0,
    }


def combine(base: pd.Series, overlay: pd.Series, allocation: float, initial: float = SEED_INITIAL) -> pd.Series:
    """``base`` with ``allocation`` of the capital in ``overlay``, rebalanced every point.

    Each curve's return is taken against its own previous point (0 at its
    first); on the points both curves have, the blend's return is
    ``(1 - allocation) * r_base + allocation * r_overlay`` and the blend
    compounds it from ``initial``. So the first common point already
    carries the return each curve had there (the seed's ``combine``); when
    both curves start on the same day with the same days, this is
    :func:`.analytics.blend` with weights ``1 - allocation`` and
    ``allocation`` and ``capital=initial``.
    """
    if not 0.0 <= allocation <= 1.0:
        raise ValueError(f"combine: allocation must be in [0, 1], was {allocation}")
    returns = pd.concat(
        {"base": base.pct_change().fillna(0.0), "overlay": overlay.pct_change().fillna(0.0)}, axis=1, join="inner"
    )
    mixed = (1.0 - allocation) * returns["base"].to_numpy() + allocation * returns["overlay"].to_numpy()
    return pd.Series(initial * np.cumprod(1.0 + mixed), index=returns.index, name="equity")


# -- the seed's figures ----------------------------------------------------------------------------


def seed_metrics(equity: pd.Series) -> dict[str, float]:
    """The seed's ``metrics`` of a curve, with the seed's conventions.

    ``total_return`` (last / first - 1); ``annualized_return`` over 365-day
    years between the first and last time (0.0 for a loss of 100 % or
    more, or no time); ``max_drawdown`` the largest fall from a running
    peak as a **positive** fraction; ``calmar`` annualised return over max
    drawdown (0.0 without a drawdown). :func:`.analytics.horizon_metrics`
    gives the same figures with 365.25-day years, a negative drawdown and
    NaN where undefined.
    """
    values = equity.to_numpy(dtype=float)
    years = (equity.index[-1] - equity.index[0]).total_seconds() / 86_400 / DAYS_A_YEAR
    total = float(values[-1] / values[0] - 1.0)
    annual = (1.0 + total) ** (1.0 / years) - 1.0 if total > -1.0 and years > 0.0 else 0.0
    peak = np.maximum.accumulate(values)
    drawdown = float(np.max((peak - values) / peak))
    return {
        "total_return": total,
        "annualized_return": annual,
        "max_drawdown": drawdown,
        "calmar": annual / drawdown if drawdown else 0.0,
    }


def seed_horizons(equity: pd.Series, horizons: Sequence[str] = SEED_HORIZONS) -> pd.DataFrame:
    """:func:`seed_metrics` over each horizon ending at the curve's last point.

    A horizon ``3y``/``6m``/... keeps the points at or after ``last - L``
    (calendar arithmetic); one with fewer than two points is the whole
    curve, and so is a horizon longer than the data (the seed's
    convention; :func:`.analytics.horizon_metrics` leaves those NaN).
    Indexed by horizon: ``start``, ``end`` (``YYYY-MM-DD``) and the
    figures of :func:`seed_metrics`.
    """
    from tidemark.adapters.research.analytics import horizon_offset

    end = equity.index[-1]
    rows = {}
    for label in horizons:
        offset = horizon_offset(label)
        window = equity if offset is None else equity[equity.index >= end - offset]
        if len(window) < 2:
            window = equity
        rows[label] = {
            "start": window.index[0].strftime("%Y-%m-%d"),
            "end": window.index[-1].strftime("%Y-%m-%d"),
            **seed_metrics(window),
        }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "horizon"
    return frame


def horizon_returns(equity: pd.Series) -> dict[str, float]:
    """The seed's ``h3y_return``, ``h1y_return``, ``h6m_return``, ``h3m_return``
    (total returns of :func:`seed_horizons`)."""
    table = seed_horizons(equity, ("3y", "1y", "6m", "3m"))
    return {f"h{label}_return": float(table.loc[label, "total_return"]) for label in table.index}


def recent_not_worse(combo: pd.Series, base: pd.Series) -> bool:
    """The seed's qualification: the blend's 1y, 6m and 3m total returns
    are each at least the base's."""
    mine, theirs = horizon_returns(combo), horizon_returns(base)
    return all(mine[key] >= theirs[key] for key in ("h1y_return", "h6m_return", "h3m_return"))


def daily(equity: pd.Series) -> pd.Series:
    """The curve as one value per UTC day: :func:`.analytics.daily_equity`
    (the seed's ``daily``)."""
    return daily_equity(equity)
