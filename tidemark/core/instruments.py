"""Instrument arithmetic: notional, PnL and contract value per instrument kind.

Linear (spot, linear perpetual/future, equity/commodity future):
    PnL = qty * contract_size * multiplier * (exit - entry)   [settle currency]
Inverse (coin-margined; contract_size is quote units per contract):
    PnL = qty * contract_size * (1/entry - 1/exit)             [base coin]
For inverse positions the average entry is kept as the contracts-weighted
mean of 1/price (see :class:`tidemark.core.accounts.portfolio.Position`).
"""

from __future__ import annotations

from tidemark.core.events import InstrumentDefinition

SPOT = "spot"
PERPETUAL = "perpetual"
FUTURE = "future"
EQUITY_FUTURE = "equity_future"
KINDS = (SPOT, PERPETUAL, FUTURE, EQUITY_FUTURE)


def spot(
    symbol: str, *, quote: str = "USD", base: str = "", taker_fee: float = 0.0, maker_fee: float = 0.0
) -> InstrumentDefinition:
    """A plain spot instrument (used when data gives no metadata)."""
    return InstrumentDefinition(
        0, symbol, kind=SPOT, base=base or symbol, quote=quote, settle=quote, taker_fee=taker_fee, maker_fee=maker_fee
    )


def point_value(inst: InstrumentDefinition) -> float:
    """Settlement-currency value of a 1.0 price move for one unit (linear)."""
    return inst.contract_size * inst.multiplier


def notional(inst: InstrumentDefinition, quantity: float, price: float) -> float:
    """Absolute notional in the quote currency (inverse: contracts * size)."""
    if inst.inverse:
        return abs(quantity) * inst.contract_size
    return abs(quantity) * price * inst.contract_size * inst.multiplier


def pnl(inst: InstrumentDefinition, quantity: float, entry: float, exit_price: float) -> float:
    """PnL of a signed ``quantity`` from ``entry`` to ``exit_price`` (settle currency)."""
    if inst.inverse:
        return quantity * inst.contract_size * (1.0 / entry - 1.0 / exit_price)
    return quantity * inst.contract_size * inst.multiplier * (exit_price - entry)


def settle_currency(inst: InstrumentDefinition) -> str:
    return inst.settle or inst.quote or "USD"
