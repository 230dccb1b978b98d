"""Round-trip trades from a journal's fills, with their excursions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tidemark.journal.columns import NO_TIME, UTC_TIME, typed_frame, utc_times

TRADE_COLUMNS = [
    "strategy",
    "instrument",
    "side",
    "size",
    "entry_time",
    "exit_time",
    "entry_price",
    "exit_price",
    "pnl",
    "gross_pnl",
    "fees",
    "currency",
    "pnl_account",
    "return_pct",
    "bars",
    "duration",
    "mae",
    "mfe",
    "open",
]
TRADE_DTYPES: dict[str, Any] = {
    **{name: "float64" for name in TRADE_COLUMNS},
    **dict.fromkeys(("strategy", "instrument", "side", "currency"), "str"),
    **dict.fromkeys(("entry_time", "exit_time"), UTC_TIME),
    "bars": "int64",
    "duration": "timedelta64[ns]",
    "open": "bool",
}
"""The trades frame's dtypes (a run without trades has the columns too)."""


def round_trips(
    fills: list[dict[str, Any]],
    point_values: dict[str, float],
    bars: dict[str, pd.DataFrame],
    *,
    currencies: dict[str, str] | None = None,
    inverse: frozenset[str] = frozenset(),
) -> pd.DataFrame:
    """Round-trip trades per (strategy, instrument): from flat to flat (a
    flip closes one trip and opens the next). ``gross_pnl`` is the realized
    PnL the accounting booked on the trip's closing fills (so point values and
    inverse contracts are right); ``pnl`` is net of the trip's fees. Both are
    in the instrument's settlement ``currency`` (the coin of an inverse
    contract); ``pnl_account`` is ``pnl`` in the account currency, each
    fill's part converted at the rate of its time (a fill row's
    ``settle_rate``), so trades of several currencies can be summed.
    ``mae``/``mfe`` are the worst/best unrealized PnL (settlement currency;
    for ``inverse`` instruments ``size * contract_size * (1/entry - 1/p)``
    with ``point_values`` holding the contract size) seen on bar extremes
    while the trip was open: the bars closing after entry, up to and
    including the exit time. ``return_pct`` is ``pnl`` over the entry
    notional in the same currency."""
    currencies = currencies or {}
    trips: list[dict[str, Any]] = []
    state: dict[tuple[str, str], dict[str, Any]] = {}
    for fill in fills:
        key = (fill["strategy"], fill["instrument"])
        signed = fill["quantity"] if fill["side"] == "buy" else -fill["quantity"]
        trip = state.get(key)
        if trip is None:
            state[key] = _open_trip(fill, signed, currencies)
            continue
        qty = trip["qty"]
        if (qty > 0) == (signed > 0):
            total = abs(qty) + abs(signed)
            trip["entry_price"] = (trip["entry_price"] * abs(qty) + fill["price"] * abs(signed)) / total
            trip["qty"] = qty + signed
            trip["size"] = max(trip["size"], abs(trip["qty"]))
            trip["fees"] += fill["fee"]
            trip["account"] -= fill["fee"] * _rate(fill)
            continue
        closed = min(abs(signed), abs(qty))
        fee_share = fill["fee"] * closed / abs(signed)
        trip["gross"] += fill["realized"]
        trip["account"] += (fill["realized"] - fee_share) * _rate(fill)
        trip["exit_value"] += closed * fill["price"]
        trip["exit_qty"] += closed
        trip["fees"] += fee_share
        if abs(signed) < abs(qty) - 1e-12 * abs(qty):
            trip["qty"] = qty + signed
            continue
        trips.append(_close_trip(trip, fill["exec_time"], point_values, inverse))
        del state[key]
        if abs(signed) > abs(qty) + 1e-12 * abs(qty):
            opened = _open_trip(fill, signed + qty, currencies)
            opened["fees"] = fill["fee"] - fee_share
            opened["account"] = -opened["fees"] * _rate(fill)
            state[key] = opened
    trips.extend(_close_trip(trip, None, point_values, inverse) for trip in state.values())
    if not trips:
        return typed_frame([], TRADE_DTYPES)
    frame = pd.DataFrame(trips, columns=[*TRADE_COLUMNS, "_scale"])
    _excursions(frame, bars, inverse)
    entry, exit = utc_times(frame["entry_time"]), utc_times(frame["exit_time"])
    frame["entry_time"], frame["exit_time"], frame["duration"] = entry, exit, exit - entry
    return frame.drop(columns="_scale")


def _rate(fill: dict[str, Any]) -> float:
    """The fill's settlement-to-account rate at its time (1.0 for rows without one)."""
    rate = fill.get("settle_rate")
    return 1.0 if rate is None else float(rate)


def _excursions(trips: pd.DataFrame, bars: dict[str, pd.DataFrame], inverse: frozenset[str] = frozenset()) -> None:
    """Fill ``bars``, ``mae`` and ``mfe`` of ``trips`` (times still integer
    ns; ``_scale``: size times point value), instrument by instrument with
    one search and one max/min reduction over each bar history."""
    bars_held = np.zeros(len(trips), dtype=np.int64)
    mae = np.zeros(len(trips))
    mfe = np.zeros(len(trips))
    instruments = trips["instrument"].to_numpy(dtype=object)
    entries, exits = trips["entry_time"].to_numpy(dtype=np.int64), trips["exit_time"].to_numpy(dtype=np.int64)
    longs = trips["side"].to_numpy(dtype=object) == "long"
    prices, scales = trips["entry_price"].to_numpy(dtype=np.float64), trips["_scale"].to_numpy(dtype=np.float64)
    for instrument, frame in bars.items():
        times = pd.DatetimeIndex(frame.index).asi8
        highs, lows = frame["high"].to_numpy(), frame["low"].to_numpy()
        rows = np.flatnonzero(instruments == instrument)
        if not len(rows) or not len(times):
            continue
        entry, exit = entries[rows], exits[rows]
        lo = np.searchsorted(times, entry, side="right")
        hi = np.where(exit == NO_TIME, len(times), np.searchsorted(times, exit, side="right"))
        held = np.maximum(hi - lo, 0)
        bars_held[rows] = held
        some = held > 0
        if not some.any():
            continue
        rows, lo, hi = rows[some], lo[some], hi[some]
        top, bottom = _range_max(highs, lo, hi), -_range_max(-lows, lo, hi)
        long = longs[rows]
        direction = np.where(long, 1.0, -1.0)
        best, worst = np.where(long, top, bottom), np.where(long, bottom, top)
        entry_price, scale = prices[rows], scales[rows]
        if instrument in inverse:  # coin PnL: size * contract_size * (1/entry - 1/price)
            mfe[rows] = direction * (1.0 / entry_price - 1.0 / best) * scale
            mae[rows] = direction * (1.0 / entry_price - 1.0 / worst) * scale
        else:
            mfe[rows] = direction * (best - entry_price) * scale
            mae[rows] = direction * (worst - entry_price) * scale
    trips["bars"] = bars_held
    trips["mae"] = np.minimum(mae, 0.0)
    trips["mfe"] = np.maximum(mfe, 0.0)


def _range_max(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``values[lo[i]:hi[i]].max()`` for each i (every range non-empty)."""
    padded = np.append(values, values[-1])  # reduceat needs every index in range; hi may be len(values)
    bounds = np.empty(2 * len(lo), dtype=np.int64)
    bounds[0::2], bounds[1::2] = lo, hi
    return np.maximum.reduceat(padded, bounds)[0::2]


def _open_trip(fill: dict[str, Any], signed: float, currencies: dict[str, str]) -> dict[str, Any]:
    return {
        "currency": currencies.get(fill["instrument"], fill.get("fee_currency") or ""),
        "account": -fill["fee"] * _rate(fill),
        "strategy": fill["strategy"],
        "instrument": fill["instrument"],
        "qty": signed,
        "size": abs(signed),
        "side": "long" if signed > 0 else "short",
        "entry_time": fill["exec_time"],
        "entry_price": fill["price"],
        "gross": 0.0,
        "exit_value": 0.0,
        "exit_qty": 0.0,
        "fees": fill["fee"],
    }


def _close_trip(
    trip: dict[str, Any], exit_time: int | None, point_values: dict[str, float], inverse: frozenset[str]
) -> dict[str, Any]:
    """The trip's row (``bars``, ``mae``, ``mfe`` and ``duration`` are
    filled in for all trips at once)."""
    exit_price = trip["exit_value"] / trip["exit_qty"] if trip["exit_qty"] else np.nan
    scale = trip["size"] * point_values.get(trip["instrument"], 1.0)
    net = trip["gross"] - trip["fees"]
    if trip["instrument"] in inverse:
        notional = scale / trip["entry_price"] if trip["entry_price"] else 0.0  # coin
    else:
        notional = trip["entry_price"] * scale
    return {
        "strategy": trip["strategy"],
        "instrument": trip["instrument"],
        "side": trip["side"],
        "size": trip["size"],
        "entry_time": trip["entry_time"],
        "exit_time": NO_TIME if exit_time is None else exit_time,
        "entry_price": trip["entry_price"],
        "exit_price": exit_price,
        "pnl": net,
        "gross_pnl": trip["gross"],
        "fees": trip["fees"],
        "currency": trip["currency"],
        "pnl_account": trip["account"],
        "return_pct": net / notional if notional else np.nan,
        "open": exit_time is None,
        "_scale": scale,
    }
