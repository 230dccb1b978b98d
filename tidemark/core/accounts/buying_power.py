"""Buying power: what an order may spend or borrow, checked when it is sent
and again when it fills.

Account kinds (:class:`AccountRules`):

* ``cash``: spot is bought with cash and sold from holdings. A buy needs
  cash in the instrument's settlement currency for its notional, fees and
  (for taker orders) slippage; a sell needs the quantity the strategy holds
  (``no_borrow`` otherwise: no naked spot shorts).
* ``margin``: spot positions are margined like derivatives (initial margin
  ``1/leverage`` of notional), so they may be levered up to ``leverage``
  times equity; spot shorts need borrowing (``borrow``, charged by
  :mod:`tidemark.core.accounts.borrow`).
* ``unchecked``: no checks (runs under version 1 of the rules).

Derivatives (perpetuals, futures) are margined on either account: an order
that adds exposure needs initial margin (the instrument's
``initial_margin``, else ``1/leverage`` of notional) plus its fee, within
equity less the margin of open positions and of working orders
(``insufficient_margin``). Equity counts spot holdings at their marks, so a
hedged book (spot long, future short) backs its own hedge.

Claims: a working order that adds exposure holds a claim on cash, on the
asset, or on margin, valued at its limit or trigger price, or at the
reference price (last close) for a market order. A new order must fit in
what the claims leave. When an order fills, the fill must fit in what the
account has at that moment (cash never goes below zero on a cash account;
margin used never above equity); a fill that does not is refused and the
venue cancels the order with the reason. Orders that only reduce a
position (reduce-only, or the closing part of an order) are never refused.
All amounts are in the account currency except cash, which is per currency.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from tidemark.core.accounts.portfolio import Portfolio
from tidemark.core.events import BUY, InstrumentDefinition, SubmitOrder
from tidemark.core.execution.orders import LIMIT, MARKET, STOP, Order
from tidemark.core.instruments import SPOT, notional, point_value, settle_currency

INSUFFICIENT_CASH: Final = "insufficient_cash"
INSUFFICIENT_MARGIN: Final = "insufficient_margin"
NO_BORROW: Final = "no_borrow"
TRADING_HALTED: Final = "trading_halted"
REASONS: Final = (INSUFFICIENT_CASH, INSUFFICIENT_MARGIN, NO_BORROW, TRADING_HALTED)

Refusal = tuple[str, str]
"""``(reason code, detail)``."""


@dataclass(frozen=True, slots=True)
class AccountRules:
    """``kind``: cash | margin | unchecked; ``leverage``: > 0 (initial margin
    is 1/leverage of notional where the instrument sets none); ``borrow``:
    spot shorts allowed (margin accounts)."""

    kind: str = "cash"
    leverage: float = 1.0
    borrow: bool = False

    @property
    def checked(self) -> bool:
        return self.kind != "unchecked"


def opening_part(held: float, side: str, quantity: float) -> float:
    """The part of an order of ``quantity`` on ``side`` that opens or adds to
    a position, given the position ``held`` (signed); the rest closes."""
    if side == BUY:
        return quantity - min(quantity, max(0.0, -held))
    return quantity - min(quantity, max(0.0, held))


class BuyingPower:
    """Admission and fill checks for one account (see the module docstring)."""

    def __init__(self, rules: AccountRules, portfolio: Portfolio) -> None:
        self.rules = rules
        self.portfolio = portfolio

    # -- what an instrument needs ----------------------------------------------------

    def margined(self, inst: InstrumentDefinition) -> bool:
        """Positions in ``inst`` post margin (derivatives; spot on a margin account)."""
        return inst.kind != SPOT or self.rules.kind == "margin"

    def initial_margin_rate(self, inst: InstrumentDefinition) -> float:
        return inst.initial_margin if inst.initial_margin > 0 else 1.0 / self.rules.leverage

    def _margin_of(self, inst: InstrumentDefinition, quantity: float, price: float) -> float:
        """Initial margin of ``quantity`` at ``price``, account currency."""
        rate = 1.0 if inst.inverse else self.portfolio.rate(settle_currency(inst))
        return notional(inst, quantity, price) * self.initial_margin_rate(inst) * rate

    def _fee_in_account(self, inst: InstrumentDefinition, fee: float) -> float:
        return fee * self.portfolio.rate(settle_currency(inst))

    def margin_used(self) -> float:
        """Initial margin of the margined open positions at their marks."""
        pf = self.portfolio
        total = 0.0
        for pos in pf.open_positions():
            inst = pf.instruments[pos.instrument]
            if self.margined(inst):
                total += self._margin_of(inst, pos.quantity, pf.marks.get(pos.instrument, pos.avg_price))
        return total

    def _held(self, strategy: str, instrument: str) -> float:
        pos = self.portfolio.positions.get((strategy, instrument))
        return pos.quantity if pos is not None else 0.0

    # -- admission ----------------------------------------------------------------------

    def admit(self, cmd: SubmitOrder, price: float, fee: float, working: Sequence[Order]) -> Refusal | None:
        """Whether ``cmd`` may be accepted. ``price``: its reference price
        (slippage included for taker orders); ``fee``: its estimated fee
        (settlement currency) on the whole quantity; ``working``: the orders
        already working (their claims come first, and the position they
        would leave decides what this order opens)."""
        if not self.rules.checked or cmd.reduce_only:
            return None
        pf = self.portfolio
        inst = pf.instruments[cmd.instrument]
        held = self._held(cmd.strategy, cmd.instrument)
        for order in working:
            other = order.cmd
            if other.strategy == cmd.strategy and other.instrument == cmd.instrument and not other.reduce_only:
                held += order.leaves if other.side == BUY else -order.leaves
        opening = opening_part(held, cmd.side, cmd.quantity)
        if opening <= 0.0:
            return None
        fee_part = fee * opening / cmd.quantity
        if not self.margined(inst):
            return self._admit_cash(cmd, inst, held, opening, price, fee_part, working)
        return self._admit_margin(cmd, inst, opening, price, fee_part, working)

    def _admit_cash(
        self,
        cmd: SubmitOrder,
        inst: InstrumentDefinition,
        held: float,
        opening: float,
        price: float,
        fee: float,
        working: Iterable[Order],
    ) -> Refusal | None:
        """A spot order on a cash account."""
        if cmd.side != BUY:
            return NO_BORROW, f"sell {cmd.quantity:g} but {cmd.strategy} holds {max(held, 0.0):g}"
        currency = settle_currency(inst)
        claimed = sum(self._cash_claim(order) for order in working if self._claims_cash(order, currency))
        free = self.portfolio.cash_in(currency) - claimed
        cost = opening * price * point_value(inst) + fee
        if cost > free:
            return INSUFFICIENT_CASH, f"needs {cost:,.2f} {currency}, free cash {free:,.2f} {currency}"
        return None

    def _admit_margin(
        self,
        cmd: SubmitOrder,
        inst: InstrumentDefinition,
        opening: float,
        price: float,
        fee: float,
        working: Iterable[Order],
    ) -> Refusal | None:
        """A margined order (derivative, or spot on a margin account)."""
        if inst.kind == SPOT and cmd.side != BUY and not self.rules.borrow:
            held = self._held(cmd.strategy, cmd.instrument)
            return NO_BORROW, f"sell {cmd.quantity:g} but {cmd.strategy} holds {max(held, 0.0):g} and borrowing is off"
        pf = self.portfolio
        claimed = sum(self._margin_claim(order) for order in working)
        free = pf.equity() - self.margin_used() - claimed
        needed = self._margin_of(inst, opening, price) + self._fee_in_account(inst, fee)
        if needed > free:
            return (
                INSUFFICIENT_MARGIN,
                f"needs {needed:,.2f} {pf.account_currency} margin, free {free:,.2f} {pf.account_currency}",
            )
        return None

    # -- claims of working orders -----------------------------------------------------

    def _claims_cash(self, order: Order, currency: str) -> bool:
        inst = self.portfolio.instruments[order.cmd.instrument]
        return (
            order.cmd.side == BUY
            and not order.cmd.reduce_only
            and not self.margined(inst)
            and settle_currency(inst) == currency
        )

    def _cash_claim(self, order: Order) -> float:
        inst = self.portfolio.instruments[order.cmd.instrument]
        return order.leaves * _claim_price(order, self.portfolio) * point_value(inst)

    def _margin_claim(self, order: Order) -> float:
        cmd = order.cmd
        inst = self.portfolio.instruments[cmd.instrument]
        if cmd.reduce_only or not self.margined(inst):
            return 0.0
        opening = opening_part(self._held(cmd.strategy, cmd.instrument), cmd.side, order.leaves)
        return self._margin_of(inst, opening, _claim_price(order, self.portfolio)) if opening > 0.0 else 0.0

    # -- fills --------------------------------------------------------------------------

    def afford(self, cmd: SubmitOrder, quantity: float, price: float, fee: float) -> Refusal | None:
        """Whether a fill of ``quantity`` at ``price`` (fee in the settlement
        currency) fits the account as it is now (claims aside)."""
        if not self.rules.checked or cmd.reduce_only:
            return None
        pf = self.portfolio
        inst = pf.instruments[cmd.instrument]
        held = self._held(cmd.strategy, cmd.instrument)
        opening = opening_part(held, cmd.side, quantity)
        if opening <= 0.0:
            return None
        fee_part = fee * opening / quantity
        if not self.margined(inst):
            if cmd.side != BUY:
                return NO_BORROW, f"sell {quantity:g} but {cmd.strategy} holds {max(held, 0.0):g}"
            currency = settle_currency(inst)
            cost = opening * price * point_value(inst) + fee_part
            cash = pf.cash_in(currency)
            if cost > cash:
                return INSUFFICIENT_CASH, f"fill needs {cost:,.2f} {currency}, cash {cash:,.2f} {currency}"
            return None
        if inst.kind == SPOT and cmd.side != BUY and not self.rules.borrow:
            return NO_BORROW, f"sell {quantity:g} but {cmd.strategy} holds {max(held, 0.0):g} and borrowing is off"
        free = pf.equity() - self.margin_used()
        needed = self._margin_of(inst, opening, price) + self._fee_in_account(inst, fee_part)
        if needed > free:
            return (
                INSUFFICIENT_MARGIN,
                f"fill needs {needed:,.2f} {pf.account_currency} margin, free {free:,.2f} {pf.account_currency}",
            )
        return None


def _claim_price(order: Order, portfolio: Portfolio) -> float:
    """The price a working order's claim is valued at: its limit, else its
    trigger, else the instrument's mark."""
    cmd = order.cmd
    if cmd.order_type == LIMIT or (cmd.order_type not in (MARKET, STOP) and cmd.price > 0):
        return cmd.price
    if cmd.trigger_price > 0:
        return cmd.trigger_price
    return portfolio.marks.get(cmd.instrument, 0.0)
