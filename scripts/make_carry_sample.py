"""Build the cash-and-carry sample (seed 002) from the shared real data.

Provenance (all inputs in ../shared/data; see its PROVENANCE.md for repo,
commit, licence and SHA-256 of each file):

* spot ``BTCUSDT``: Binance spot BTC/USDT 5-minute candles
  (``ohlcv/binance_spot/BTC_USDT-5m.feather``), resampled to 15 minutes
  (open first, high max, low min, close last, volume sum; BTC). Real.
* inverse quarterlies ``BTCUSD_YYMMDD`` (COIN-M, 100 USD contracts): the
  shared data holds no long COIN-M quarterly history (PROVENANCE.md, "not
  found"), so each quarterly is derived from real series: the Binance USD-M
  BTC/USDT perpetual's 5-minute candles (``ohlcv/binance_usdm/
  BTC_USDT_USDT-5m-futures.feather``, resampled to 15 minutes) times a term
  basis ``1 + carry * tau``, where ``carry`` is the annualised mean of the
  perpetual's real funding prints over the trailing 30 days
  (``funding/binance_usdm/BTC_USDT_USDT-1h-funding_rate.feather``; rate per
  8 h * 3 * 365, causal: prints up to the bar's close) and ``tau`` the years
  to delivery (last Friday of Mar/Jun/Sep/Dec, 08:00 UTC). The basis thus
  decays to zero at delivery, where the quarterly meets the perpetual. Volume
  in contracts: the perpetual's BTC volume * close / 100. Prices are
  rounded to the contract's 0.1 USD tick. Bars end at delivery.
* contract metadata (lot, tick, minimum notional, contract size, margins):
  Binance exchangeInfo recorded in the shared data (spot BTCUSDT from
  GoCryptoTrader's recording; COIN-M BTCUSD quarterlies from cryptofeed's
  2021-07-22 session). Fees: Binance's published regular-tier rates (spot
  0.10 % maker and taker; COIN-M delivery 0.02 % maker, 0.05 % taker).

Run: python scripts/make_carry_sample.py [--shared ../shared/data]. It writes
three CSVs (date = candle open time, UTC ISO) for 2025-03-14 .. 2025-03-31
(entry, the roll of BTCUSD_250328 into BTCUSD_250627 two days before its
delivery, the final unwind) into tidemark/adapters/sample_data/cash_carry/, with ``run.json``: the
symbols, files, instruments and cross margin (the spot collateral backs the
short, as on an exchange's coin-margined wallet) that ``tidemark backtest
--strategy cash_carry`` uses when given no data.
Deterministic: the same inputs give byte-identical files. Tests import
:func:`carry_market` to derive longer windows from the shared data at test
time (nothing here is copied into the project but the small sample).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tidemark" / "adapters" / "sample_data" / "cash_carry"
SHARED = ROOT.parent / "shared" / "data"
SAMPLE_START, SAMPLE_END = "2025-03-14", "2025-03-31"
BAR = "15min"
CARRY_WINDOW = pd.Timedelta(days=30)
YEAR = pd.Timedelta(days=365)

SPOT = {
    "kind": "spot",
    "base": "BTC",
    "quote": "USD",
    "tick_size": 0.01,
    "lot_size": 0.00001,
    "min_notional": 5.0,
    "maker_fee": 0.001,
    "taker_fee": 0.001,
}
INVERSE = {
    "kind": "future",
    "inverse": True,
    "base": "BTC",
    "quote": "USD",
    "contract_size": 100.0,
    "tick_size": 0.1,
    "lot_size": 1.0,
    "maker_fee": 0.0002,
    "taker_fee": 0.0005,
    "initial_margin": 0.05,
    "maintenance_margin": 0.025,
}


def quarterly_expiry(year: int, month: int) -> pd.Timestamp:
    """Binance quarterly delivery: the last Friday of the month, 08:00 UTC."""
    last = (dt.date(year + (month == 12), month % 12 + 1, 1)) - dt.timedelta(days=1)
    while last.weekday() != 4:
        last -= dt.timedelta(days=1)
    return pd.Timestamp(dt.datetime.combine(last, dt.time(8, 0)), tz="UTC")


def quarterlies(start: pd.Timestamp, end: pd.Timestamp) -> list[pd.Timestamp]:
    """Deliveries from the first after ``start`` to the first after ``end``."""
    out: list[pd.Timestamp] = []
    year, month = start.year, 3 * ((start.month - 1) // 3 + 1)
    while not out or out[-1] <= end:
        expiry = quarterly_expiry(year, month)
        if expiry > start:
            out.append(expiry)
        month += 3
        if month > 12:
            year, month = year + 1, 3
    return out


def symbol_of(expiry: pd.Timestamp) -> str:
    return f"BTCUSD_{expiry:%y%m%d}"


def resample(frame: pd.DataFrame, rule: str = BAR) -> pd.DataFrame:
    """OHLCV candles (``date`` = open time) to ``rule`` candles."""
    grouped = frame.set_index("date").resample(rule, label="left", closed="left")
    out = grouped.agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    return out.dropna().reset_index()


def carry_market(shared: Path, start: str, end: str) -> dict[str, pd.DataFrame]:
    """``{symbol: 15-minute candles}`` for ``[start, end)``: the spot and every
    inverse quarterly alive in the window (see the module docstring)."""
    t0, t1 = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC")
    spot = pd.read_feather(shared / "ohlcv" / "binance_spot" / "BTC_USDT-5m.feather")
    perp = pd.read_feather(shared / "ohlcv" / "binance_usdm" / "BTC_USDT_USDT-5m-futures.feather")
    funding = pd.read_feather(shared / "funding" / "binance_usdm" / "BTC_USDT_USDT-1h-funding_rate.feather")
    spot15 = resample(spot[(spot["date"] >= t0) & (spot["date"] < t1)])
    perp15 = resample(perp[(perp["date"] >= t0) & (perp["date"] < t1)])
    close_time = perp15["date"] + pd.Timedelta(BAR)
    rates = funding.set_index("date")["open"].sort_index()
    carry = np.empty(len(perp15))
    for k, ts in enumerate(close_time):
        window = rates[(rates.index > ts - CARRY_WINDOW) & (rates.index <= ts)]
        carry[k] = float(window.mean()) * 3 * 365 if len(window) else 0.0
    market = {"BTCUSDT": spot15}
    for expiry in quarterlies(t0, t1):
        alive = (close_time <= expiry).to_numpy()
        tau = ((expiry - close_time) / YEAR).to_numpy(dtype=float)
        factor = (1.0 + carry * tau)[alive]
        leg = perp15.loc[alive, ["date"]].copy()
        for column in ("open", "high", "low", "close"):
            leg[column] = np.round(perp15.loc[alive, column].to_numpy() * factor, 1)  # the 0.1 tick
        leg["volume"] = perp15.loc[alive, "volume"].to_numpy() * perp15.loc[alive, "close"].to_numpy() / 100.0
        if len(leg):
            market[symbol_of(expiry)] = leg.reset_index(drop=True)
    return market


def instruments(market: dict[str, pd.DataFrame]) -> dict[str, dict[str, object]]:
    """The run config's ``instruments`` for a :func:`carry_market`."""
    out: dict[str, dict[str, object]] = {}
    for symbol in market:
        if symbol == "BTCUSDT":
            out[symbol] = dict(SPOT)
        else:
            expiry = quarterly_expiry(2000 + int(symbol[7:9]), int(symbol[9:11]))
            out[symbol] = {**INVERSE, "expiry": expiry.isoformat()}
    return out


def to_csv(frame: pd.DataFrame, path: Path) -> None:
    out = frame.copy()
    out["date"] = out["date"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    out = out.round({"open": 1, "high": 1, "low": 1, "close": 1, "volume": 2})
    out.to_csv(path, index=False, lineterminator="\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=SHARED)
    args = parser.parse_args()
    market = carry_market(args.shared, SAMPLE_START, SAMPLE_END)
    OUT.mkdir(parents=True, exist_ok=True)
    for symbol, frame in market.items():
        path = OUT / f"{symbol}-15m.csv"
        to_csv(frame, path)
        print(f"wrote {path} ({path.stat().st_size} bytes, {len(frame)} bars)")
    run = {
        "symbols": list(market),
        "data": [f"{symbol}-15m.csv" for symbol in market],
        "instruments": instruments(market),
        "margin_mode": "cross",
    }
    path = OUT / "run.json"
    path.write_text(json.dumps(run, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
