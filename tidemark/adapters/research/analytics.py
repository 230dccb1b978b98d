"""Cross-run analytics: daily curves, horizons, months, worst windows,
turnover, blends of several runs, and ranking with qualification rules.

Everything here is a pure function of its arguments (pandas and numpy; no
clock, no randomness), so the same runs always give the same tables.

Conventions (the same as :mod:`tidemark.core.metrics`, which does the
arithmetic wherever it defines the figure):

- Curves are compared day by day: :func:`daily_equity` takes the last
  equity of each UTC day and carries it over days without a bar.
- Returns are fractions (0.05 = 5 %); max drawdown is negative
  (``-0.25``: a fall of 25 % from the running peak); years are
  365.25-day calendar years, so CAGR and the annualised Sharpe and
  volatility of a daily curve use 365.25 periods a year (the metrics
  module's convention; the seed's ``metrics`` used 365-day years and a
  positive drawdown, and put 0.0 where a figure is undefined: here it is
  NaN).
- Ruin: once equity is zero or below (or unknown: NaN) returns are not
  defined, so every return-based figure (CAGR, drawdown, Sharpe,
  volatility, monthly and window returns) is NaN from then on and the
  tables say where the curve was ruined; money facts (the total return of a
  period that starts with positive equity) stay.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tidemark.core.events import InstrumentDefinition
from tidemark.core.instruments import notional
from tidemark.core.metrics import YEAR_NS
from tidemark.core.metrics import compute as compute_metrics

DEFAULT_HORIZONS = ("full", "3y", "1y", "6m", "3m")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
WEIGHT_TOLERANCE = 1e-9
"""How far the weights of a blend may sum from 1 (float noise of ``0.1 * 10``)."""


# -- daily curves ----------------------------------------------------------------------------------


def daily_equity(result_or_equity: Any) -> pd.Series:
    """The equity curve as one value per UTC day (account currency).

    Parameters
    ----------
    result_or_equity
        A :class:`tidemark.adapters.backtest.Result` (its ``equity`` frame),
        a frame with an ``equity`` column, or a series of equity values,
        indexed by time (a naive index is read as UTC).

    Returns
    -------
    pd.Series
        Named ``equity``, indexed by UTC midnight of each calendar day from
        the first day to the last: the last value at or before the end of
        that day (days without a bar repeat the day before, as the seed's
        ``daily`` does). Already-daily input comes back unchanged.

    Raises
    ------
    ValueError
        No values, or an index that is not made of times.
    """
    series = _equity_series(result_or_equity)
    if series.empty:
        raise ValueError("the equity curve is empty: no day to take a value from")
    day = pd.DatetimeIndex(series.index).floor("D")
    last_of_day = ~day.duplicated(keep="last")
    last = pd.Series(series.to_numpy()[last_of_day], index=day[last_of_day])
    calendar = pd.date_range(last.index[0], last.index[-1], freq="1D", name="date")
    # Carry the day before over days without a value (not over a NaN value: that is unknown equity).
    days = last.reindex(calendar, method="ffill")
    days.name = "equity"
    return days


def _equity_series(obj: Any) -> pd.Series:
    equity = getattr(obj, "equity", obj)
    if isinstance(equity, pd.DataFrame):
        if "equity" not in equity:
            raise ValueError(f"an equity frame needs an 'equity' column, has {list(equity.columns)}")
        equity = equity["equity"]
    if not isinstance(equity, pd.Series):
        raise ValueError(f"expected a Result, an equity frame or a series, was {type(obj).__name__}")
    if not isinstance(equity.index, pd.DatetimeIndex):
        raise ValueError(f"the equity curve must be indexed by time, was {type(equity.index).__name__}")
    series = equity.astype(float)
    index = pd.DatetimeIndex(series.index)
    series.index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    return series.sort_index()


def ruined_at(curve: pd.Series) -> pd.Timestamp | None:
    """The first time ``curve`` is zero, below zero or unknown (NaN); None if never."""
    bad = np.flatnonzero(~(curve.to_numpy(dtype=float) > 0.0))
    return curve.index[bad[0]] if len(bad) else None


def _day(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%d")


# -- horizons --------------------------------------------------------------------------------------

_HORIZON = re.compile(r"^\s*(\d+)\s*([ymwd])\s*$")
HORIZON_COLUMNS = ("start", "end", "days", "return", "cagr", "max_drawdown", "sharpe", "volatility", "note")


def horizon_offset(label: str) -> pd.DateOffset | None:
    """``"full"`` (None: the whole curve) or a calendar length: ``3y``,
    ``6m``, ``2w``, ``10d``. Raises ValueError for anything else."""
    if label == "full":
        return None
    match = _HORIZON.match(label)
    if match is None or int(match.group(1)) <= 0:
        raise ValueError(f"horizon {label!r}: expected 'full' or a positive length like 3y, 6m, 2w, 10d")
    length = int(match.group(1))
    unit = match.group(2)
    if unit == "y":
        return pd.DateOffset(years=length)
    if unit == "m":
        return pd.DateOffset(months=length)
    return pd.DateOffset(weeks=length) if unit == "w" else pd.DateOffset(days=length)


def horizon_metrics(equity: Any, horizons: Sequence[str] = DEFAULT_HORIZONS) -> pd.DataFrame:
    """Figures of the daily curve over each horizon ending at its last day.

    A horizon of length L covers the days from ``last - L`` to ``last``
    (calendar arithmetic: ``1m`` before 31 March is 29 February), measured
    from the equity at the close of its first day, as the seed's
    ``horizon_rows`` does. ``full`` is the whole curve.

    Parameters
    ----------
    equity
        Anything :func:`daily_equity` accepts.
    horizons
        Labels: ``full`` or a length (see :func:`horizon_offset`).

    Returns
    -------
    pd.DataFrame
        Indexed by horizon label, columns:

        - ``start``, ``end``: first and last day (``YYYY-MM-DD``, UTC).
        - ``days``: calendar days between them.
        - ``return``: ``end / start - 1`` (fraction).
        - ``cagr``: compound annual growth rate over the horizon (fraction a
          year; 365.25-day years), ``metrics.compute``'s ``annualized_return``.
        - ``max_drawdown``: worst fall from a running peak within the
          horizon (negative fraction).
        - ``sharpe``: mean over standard deviation (ddof 1) of the daily
          returns, times ``sqrt(365.25)``; risk-free rate 0 (the metrics
          module's ``sharpe`` on the daily curve).
        - ``volatility``: standard deviation of the daily returns times
          ``sqrt(365.25)`` (fraction a year).
        - ``note``: why a row is NaN: a horizon longer than the data (it is
          never silently the full period), or ruin.
    """
    curve = daily_equity(equity)
    ruin = ruined_at(curve)
    first, last = curve.index[0], curve.index[-1]
    rows: dict[str, dict[str, Any]] = {}
    for label in horizons:
        offset = horizon_offset(label)
        start = first if offset is None else last - offset
        if start < first:
            rows[label] = _empty_horizon(
                f"needs data from {_day(start)}; the curve starts {_day(first)}", _day(start), _day(last)
            )
            continue
        rows[label] = _horizon_row(curve[curve.index >= start], ruin)
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(HORIZON_COLUMNS))
    frame.index.name = "horizon"
    return frame


def _empty_horizon(note: str, start: str, end: str) -> dict[str, Any]:
    nan = float("nan")
    return {"start": start, "end": end, "days": nan, "return": nan, "cagr": nan, "max_drawdown": nan,
            "sharpe": nan, "volatility": nan, "note": note}  # fmt: skip


def _horizon_row(window: pd.Series, ruin: pd.Timestamp | None) -> dict[str, Any]:
    values = window.to_numpy(dtype=float)
    row = _empty_horizon("", _day(window.index[0]), _day(window.index[-1]))
    row["days"] = float((window.index[-1] - window.index[0]).days)
    if values[0] > 0.0:
        row["return"] = float(values[-1] / values[0] - 1.0)  # a money fact, kept after ruin
    if ruin is not None:
        row["note"] = f"ruined on {_day(ruin)}: return-based figures undefined"
        return row
    if len(values) < 2:
        row["note"] = "one day: no return to measure"
        return row
    facts = compute_metrics(window.to_frame("equity"), pd.DataFrame(), float(values[0]))
    row["cagr"] = facts["annualized_return"]
    row["max_drawdown"] = facts["max_drawdown"]
    row["sharpe"] = facts["sharpe"]
    row["volatility"] = _volatility(window)
    return row


def _volatility(curve: pd.Series) -> float:
    """Annualised standard deviation (ddof 1) of the step returns, with the
    metrics module's periods a year (calendar time over the median step)."""
    values = curve.to_numpy(dtype=float)
    if len(values) < 3:
        return float("nan")
    times = curve.index.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    step = float(np.median(np.diff(times)))
    returns = np.diff(values) / values[:-1]
    return float(np.std(returns, ddof=1) * math.sqrt(YEAR_NS / step)) if step > 0 else float("nan")


# -- months and windows ----------------------------------------------------------------------------


def _month_points(curve: pd.Series) -> tuple[np.ndarray, pd.DatetimeIndex, np.ndarray]:
    """The equity a month return is measured between: the first value of
    the curve, then the last value of each month (its last day with data).
    Returns (values, their days, the month key ``year * 12 + month - 1`` of
    each month end)."""
    index = pd.DatetimeIndex(curve.index)
    key = np.asarray(index.year * 12 + index.month - 1)
    ends = np.flatnonzero(np.r_[key[1:] != key[:-1], True])
    positions = np.r_[0, ends]
    values = curve.to_numpy(dtype=float)[positions]
    return values, index[positions], key[ends]


def _point_returns(values: np.ndarray, days: pd.DatetimeIndex, ruin: pd.Timestamp | None) -> np.ndarray:
    """Returns between consecutive month points; NaN for every period that
    ends on or after the ruin (returns are undefined from then on)."""
    returns = values[1:] / values[:-1] - 1.0
    if ruin is not None:
        returns[np.asarray(days[1:] >= ruin)] = np.nan
    return returns


def monthly_returns(equity: Any) -> pd.DataFrame:
    """Calendar-month returns of the daily curve, one row a year.

    A month's return is its last day's equity over the previous month's
    last day's (the first month: over the curve's first value), as the
    seed's ``monthly_rows``; the first and last months may be partial.

    Returns
    -------
    pd.DataFrame
        Indexed by year (int), columns ``Jan`` .. ``Dec`` (fractions; NaN
        where there is no data or after ruin) and ``total``: the compounded
        return of the year's months (its last month end over the previous
        year's), NaN if any of its months is undefined.
    """
    curve = daily_equity(equity)
    values, days, keys = _month_points(curve)
    returns = _point_returns(values, days, ruined_at(curve))
    years, months = keys // 12, keys % 12
    table = pd.DataFrame(np.nan, index=pd.Index(sorted(set(years.tolist())), name="year"), columns=list(MONTHS))
    for year, month, value in zip(years.tolist(), months.tolist(), returns.tolist(), strict=True):
        table.loc[year, MONTHS[month]] = value
    growth = pd.Series(1.0 + returns).groupby(years).prod(min_count=1)
    any_nan = pd.Series(np.isnan(returns)).groupby(years).any()
    table["total"] = (growth - 1.0).where(~any_nan)
    return table


def worst_rolling(equity: Any, months: Iterable[int] = (6, 12)) -> pd.DataFrame:
    """The worst return over any run of consecutive calendar months.

    A window of ``w`` months ending with month ``k`` is measured from the
    equity at the end of month ``k - w`` (or the curve's first value) to the
    end of month ``k``: the seed's compounded monthly returns over a rolling
    ``w``, and exactly ``equity[end] / equity[start] - 1``.

    Returns
    -------
    pd.DataFrame
        Indexed by window length in months: ``return`` (fraction), ``start``
        and ``end`` (the days, ``YYYY-MM-DD``, whose equities it compares),
        ``note``: why a row is NaN (fewer months of data than the window,
        ruin). Ties go to the earliest window.
    """
    curve = daily_equity(equity)
    values, days, _ = _month_points(curve)
    ruin = ruined_at(curve)
    rows: dict[int, dict[str, Any]] = {}
    for window in months:
        if window <= 0:
            raise ValueError(f"worst_rolling: a window of {window} months; use a positive number")
        rows[window] = _worst_window(values, days, window, ruin)
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=["return", "start", "end", "note"])
    frame.index.name = "months"
    return frame


def _worst_window(values: np.ndarray, days: pd.DatetimeIndex, window: int, ruin: pd.Timestamp | None) -> dict[str, Any]:
    have = len(values) - 1
    row: dict[str, Any] = {"return": float("nan"), "start": "", "end": "", "note": ""}
    if ruin is not None:
        row["note"] = f"ruined on {_day(ruin)}: return-based figures undefined"
    elif have < window:
        row["note"] = f"{have} months of data, fewer than {window}"
    else:
        returns = values[window:] / values[:-window] - 1.0
        worst = int(np.argmin(returns))
        row.update({"return": float(returns[worst]), "start": _day(days[worst]), "end": _day(days[worst + window])})
    return row


# -- turnover --------------------------------------------------------------------------------------


def instrument_definitions(journal: str | Path) -> dict[str, InstrumentDefinition]:
    """The instruments a run defined (its events after the header, before
    the first market event), by symbol."""
    from tidemark.journal.reader import JournalReader

    found: dict[str, InstrumentDefinition] = {}
    with JournalReader(journal) as reader:
        for _seq, event in reader.events(start=2):
            if not isinstance(event, InstrumentDefinition):
                break
            found[event.instrument] = event
    return found


def turnover_per_year(result: Any, instruments: Mapping[str, InstrumentDefinition] | None = None) -> pd.DataFrame:
    """Traded notional over mean equity, per calendar year (UTC).

    Each fill's notional is :func:`tidemark.core.instruments.notional`
    (``|qty| * price * contract_size * multiplier`` in the quote currency;
    inverse contracts: ``|qty| * contract_size``), converted to the account
    currency at the fill's own rate: ``settle_rate`` (linear contracts
    settle in their quote currency) or ``settle_rate / price`` (inverse:
    the quote is worth ``1 / price`` of the settlement coin). Fills are
    counted in the year of their ``exec_time``.

    Parameters
    ----------
    result
        A :class:`tidemark.adapters.backtest.Result` (``fills``, ``equity``,
        ``journal``).
    instruments
        The definitions by symbol; default: read from ``result.journal``.

    Returns
    -------
    pd.DataFrame
        Indexed by year: ``notional`` (account currency), ``mean_equity``
        (mean of the daily equity in that year, account currency), ``days``
        (days of the curve in the year: partial years are not annualised)
        and ``turnover`` (``notional / mean_equity``, times the equity
        traded; NaN for a year whose equity touched zero or below).
    """
    curve = daily_equity(result)
    fills = result.fills
    defs = instrument_definitions(result.journal) if instruments is None else instruments
    when = pd.DatetimeIndex(fills["exec_time"])
    traded = pd.Series(_fill_notional(fills, defs), index=when)
    by_year = traded.groupby(when.year).sum() if len(traded) else pd.Series(dtype=float)
    years = curve.groupby(pd.DatetimeIndex(curve.index).year)
    frame = pd.DataFrame({"mean_equity": years.mean(), "days": years.size(), "positive": years.min() > 0.0})
    frame["notional"] = by_year.reindex(frame.index, fill_value=0.0)
    frame["turnover"] = (frame["notional"] / frame["mean_equity"]).where(frame["positive"])
    frame.index.name = "year"
    return frame[["notional", "mean_equity", "days", "turnover"]]


def _fill_notional(fills: pd.DataFrame, defs: Mapping[str, InstrumentDefinition]) -> np.ndarray:
    out = np.empty(len(fills))
    columns = zip(fills["instrument"], fills["quantity"], fills["price"], fills["settle_rate"], strict=True)
    for i, (symbol, quantity, price, rate) in enumerate(columns):
        inst = defs.get(symbol)
        if inst is None:
            raise ValueError(f"turnover: no instrument definition for {symbol!r} (have {sorted(defs)})")
        account_rate = rate / price if inst.inverse else rate
        out[i] = notional(inst, float(quantity), float(price)) * account_rate
    return out


# -- blends ----------------------------------------------------------------------------------------


def blend(curves: Mapping[str, Any], weights: Mapping[str, float], capital: float = 1.0) -> pd.Series:
    """Several runs' daily curves held together at fixed allocations,
    rebalanced every day.

    On the days common to all weighted curves, day ``t``'s return is
    ``sum(w_i * r_i(t))`` with ``r_i`` each curve's return since the
    previous common day (the seed's ``combine``, for any number of curves);
    the blend starts at ``capital`` on the first common day. A curve given
    weight 1 (the rest 0) comes back as that curve rescaled to start at
    ``capital``.

    Parameters
    ----------
    curves
        Name -> anything :func:`daily_equity` accepts (curves not named in
        ``weights``, or weighted 0, are not used: neither their days nor
        their ruin matter).
    weights
        Name -> allocation, each in ``[0, 1]``, summing to 1 (within 1e-9).
    capital
        The blend's value on its first day (default 1.0: a growth-of-one
        curve; pass the account's cash to read it in money).

    Returns
    -------
    pd.Series
        Daily, named ``equity``. From the first day a weighted curve is
        zero or below, returns are undefined and the blend is NaN (which
        the other analytics read as ruin).

    Raises
    ------
    ValueError
        Weights naming an unknown curve, a negative weight, weights not
        summing to 1 (the message names them), or no common day.
    """
    check_weights(curves, weights)
    if capital <= 0.0 or not math.isfinite(capital):
        raise ValueError(f"blend: capital must be positive, was {capital}")
    names = [name for name, weight in weights.items() if weight > 0.0]
    daily = pd.concat({name: daily_equity(curves[name]) for name in names}, axis=1, join="inner")
    if daily.empty:
        raise ValueError(f"blend: the curves {names} have no day in common")
    values = daily.to_numpy(dtype=float)
    returns = np.zeros(len(values))
    with np.errstate(divide="ignore", invalid="ignore"):  # past a ruin: NaN below
        returns[1:] = (values[1:] / values[:-1] - 1.0) @ np.array([weights[n] for n in names], dtype=float)
    out = pd.Series(capital * np.cumprod(1.0 + returns), index=daily.index, name="equity")
    bad = np.flatnonzero(~(values > 0.0).all(axis=1))
    if len(bad):
        out.iloc[bad[0] :] = np.nan
    return out


def check_weights(curves: Iterable[str], weights: Mapping[str, float]) -> None:
    """Raise ValueError unless ``weights`` are allocations of the named
    ``curves``: known names, each in ``[0, 1]``, summing to 1."""
    known = list(curves)
    shown = ", ".join(f"{name}={weight:g}" for name, weight in weights.items())
    unknown = [name for name in weights if name not in known]
    if unknown:
        raise ValueError(f"blend: weights name {unknown}, which are not among the curves {known}")
    if not weights:
        raise ValueError("blend: no weights given")
    if not all(0.0 <= weight <= 1.0 for weight in weights.values()):
        raise ValueError(f"blend: weights must be allocations in [0, 1]: {shown}")
    total = math.fsum(weights.values())
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        raise ValueError(f"blend: weights {shown} sum to {total:g}, not 1")


# -- ranking ---------------------------------------------------------------------------------------

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    ">": operator.gt,
    "<": operator.lt,
}
_RULE = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(>=|<=|==|>|<)\s*(\S.*?)\s*$")

Rules = Mapping[str, Any] | Sequence[str]


def parse_rule(rule: str) -> tuple[str, str, float | str]:
    """``"max_drawdown>=-0.25"`` -> ``("max_drawdown", ">=", -0.25)``.

    Operators: ``>= <= > < ==``; the value is a number, or (``==`` only)
    text. Raises ValueError for anything else."""
    match = _RULE.match(rule)
    if match is None:
        raise ValueError(f"rule {rule!r}: expected 'name op value' with op one of >= <= > < ==")
    name, op, text = match.groups()
    try:
        return name, op, float(text)
    except ValueError:
        if op != "==":
            raise ValueError(f"rule {rule!r}: {text!r} is not a number") from None
        return name, op, text


def _rules(qualify: Rules | None) -> list[tuple[str, str, float | str]]:
    if qualify is None:
        return []
    if isinstance(qualify, str):
        return [parse_rule(qualify)]
    if isinstance(qualify, Mapping):
        out = []
        for name, condition in qualify.items():
            if isinstance(condition, tuple):
                op, value = condition
                out.append(parse_rule(f"{name}{op}{value}"))
            else:
                out.append(parse_rule(f"{name}{condition}"))
        return out
    return [parse_rule(rule) for rule in qualify]


def rank(table: pd.DataFrame, by: str, ascending: bool = False, qualify: Rules | None = None) -> pd.DataFrame:
    """The rows passing every qualification rule, best first.

    Parameters
    ----------
    table
        One row per run (or per blend), columns of figures.
    by
        The column to sort on (NaN sorts last; ties keep table order).
    ascending
        False (default): largest first.
    qualify
        Rules a row must all pass: a list of ``"name op value"`` strings
        (``"max_drawdown>=-0.25"``, ``"trades>=10"``) or a mapping
        ``{"max_drawdown": ">=-0.25"}`` / ``{"trades": (">=", 10)}``. A NaN
        figure fails every rule.

    Returns
    -------
    pd.DataFrame
        The qualifying rows sorted, with a ``rank`` column (1 = best).

    Raises
    ------
    ValueError
        ``by`` or a rule naming a column the table does not have (named in
        the message), or a rule that does not parse.
    """
    rules = _rules(qualify)
    missing = [name for name in [by, *(rule[0] for rule in rules)] if name not in table.columns]
    if missing:
        raise ValueError(f"rank: no column {missing[0]!r} in the table (columns: {list(table.columns)})")
    keep = pd.Series(True, index=table.index)
    for name, op, value in rules:
        column = table[name]
        passed = _OPS[op](column, value)
        keep &= passed.fillna(False).astype(bool) & column.notna()
    ranked = table[keep].sort_values(by, ascending=ascending, kind="stable", na_position="last").copy()
    ranked["rank"] = np.arange(1, len(ranked) + 1)
    return ranked
