"""Instrument arithmetic: notional, PnL and contract value per instrument kind.

Linear (spot, linear perpetual/future, equity/commodity future):
    PnL = qty * contract_size * multiplier * (exit - entry)   [settle currency]
Inverse (coin-margined; contract_size is quote units per contract):
    PnL = qty * contract_size * (1/entry - 1/exit)             [base coin]
For inverse positions the average entry is kept as the contracts-weighted
mean of 1/price (see :class:`tidemark.core.accounts.portfolio.Position`).
"""

from __future__ import annotations

import math
from decimal import Decimal

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


def is_derivative(inst: InstrumentDefinition) -> bool:
    """Perpetuals and futures: margined, never bought outright with cash."""
    return inst.kind != SPOT


def _decimals(step: float) -> int:
    """Decimal places of a lot or tick size as written (0.001 -> 3, 5 -> 0)."""
    exponent = Decimal(repr(step)).normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def to_step(value: float, step: float, *, up: bool = False) -> float:
    """``value`` rounded down (``up``: up) to a multiple of ``step`` (> 0),
    written with ``step``'s decimals so multiples compare exactly.

    A value within floating-point noise of a multiple is that multiple. The
    noise of a sum of fills grows with its size, so the tolerance is
    relative (``1e-12`` of the number of steps, at least ``1e-9`` step): an
    absolute ``1e-9`` step dropped a whole lot from a position of 10^8 lots
    (72.43386555 BTC in lots of 1e-8 summed from 45 fills)."""
    units = value / step
    tolerance = 1e-9 + 1e-12 * abs(units)
    whole = math.ceil(units - tolerance) if up else math.floor(units + tolerance)
    return round(whole * step, _decimals(step))


def on_grid(value: float, step: float) -> float:
    """``value`` (a sum of multiples of ``step``) written with ``step``'s
    decimals: the multiple it is, without the float noise of the sum. A
    value that is no multiple of ``step`` (more than noise away) is kept as
    it is: the grid only removes noise, it never moves a quantity."""
    if step <= 0 or not on_step(value, step):
        return value
    return round(value, _decimals(step))


def on_step(value: float, step: float) -> bool:
    """True when ``value`` is a multiple of ``step`` (0: no step)."""
    if step <= 0:
        return True
    units = value / step
    return abs(units - round(units)) <= 1e-9 * max(1.0, abs(units))


def round_quantity(inst: InstrumentDefinition, quantity: float) -> float:
    """``quantity`` (>= 0) rounded down to the lot size: an order never asks
    for more than the strategy sized (unchanged when the instrument has none)."""
    return to_step(quantity, inst.lot_size) if inst.lot_size > 0 else quantity


def round_price(inst: InstrumentDefinition, price: float, *, up: bool) -> float:
    """``price`` rounded to the tick, ``up`` or down (unchanged without a tick).
    Limit buys and sell stops round down, limit sells and buy stops up, so
    an order is never more aggressive than asked."""
    return to_step(price, inst.tick_size, up=up) if inst.tick_size > 0 and price > 0 else price
