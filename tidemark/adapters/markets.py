"""ccxt market structures -> tidemark instrument definitions.

Instrument names are ccxt's unified symbols (``BTC/USDT:USDT``). Prices and
amounts use ccxt's TICK_SIZE precision where the exchange has it; for
DECIMAL_PLACES precision the number of places is turned into a tick.
Fees are fractions of notional as ccxt gives them.
"""

from __future__ import annotations

from typing import Any

from tidemark.core.events import InstrumentDefinition


class MarketError(ValueError):
    """A requested symbol is not listed, or its metadata is unusable."""


def _step(value: Any, tick_mode: bool) -> float:
    if value is None:
        return 0.0
    value = float(value)
    return value if tick_mode or value < 1 else 10.0 ** (-value)


def instrument_from_market(market: dict[str, Any], ts: int, *, tick_mode: bool = True) -> InstrumentDefinition:
    """One ccxt market as an :class:`InstrumentDefinition` stamped ``ts``."""
    if market.get("spot"):
        kind = "spot"
    elif market.get("swap"):
        kind = "perpetual"
    elif market.get("future"):
        kind = "future"
    else:
        raise MarketError(f"{market.get('symbol')}: market type {market.get('type')!r} is not supported")
    precision = market.get("precision") or {}
    limits = market.get("limits") or {}
    inverse = bool(market.get("inverse"))
    settle = market.get("settle") or market.get("quote") or ""
    expiry = market.get("expiry")
    return InstrumentDefinition(
        ts,
        str(market["symbol"]),
        kind=kind,
        base=str(market.get("base") or ""),
        quote=str(market.get("quote") or ""),
        settle=str(settle),
        inverse=inverse,
        tick_size=_step(precision.get("price"), tick_mode),
        lot_size=_step(precision.get("amount"), tick_mode),
        min_notional=float((limits.get("cost") or {}).get("min") or 0.0),
        contract_size=float(market.get("contractSize") or 1.0),
        maker_fee=float(market.get("maker") or 0.0),
        taker_fee=float(market.get("taker") or 0.0),
        expiry=int(expiry) * 1_000_000 if expiry else 0,
    )


def instruments_for_symbols(
    markets: dict[str, dict[str, Any]], symbols: list[str], ts: int, *, tick_mode: bool = True
) -> list[InstrumentDefinition]:
    missing = [s for s in symbols if s not in markets]
    if missing:
        raise MarketError(f"not listed on this exchange: {', '.join(missing)}")
    return [instrument_from_market(markets[s], ts, tick_mode=tick_mode) for s in symbols]
