"""Isolated margin and liquidation on bars.

Each position posts initial margin ``M = |q| * entry_value * initial_margin``.
It is liquidated when its margin plus unrealized PnL falls to the
maintenance margin, i.e. when price reaches the liquidation price:

    linear  long  p = entry * (1 - im) / (1 - mm)     short p = entry * (1 + im) / (1 + mm)
    inverse long  p = entry * (1 + mm) / (1 + im)     short p = entry * (1 - mm) / (1 - im)

On a bar whose range reaches that price the position is closed at the
liquidation price (at the open if the bar opens beyond it) with a
liquidation fee of ``fee_bps`` of notional, once: a ``MarginCall``, a
``Liquidation`` and the closing ``OrderFilled`` (liquidity ``liquidation``)
are published. Instruments with no maintenance margin are never liquidated.

Cross margin (``mode="cross"``): the whole account backs every position. At
the close of each time step, if account equity is below the sum of the
maintenance margins of all margined positions (``|notional| * mm`` at the
closes), every margined position is liquidated at its close, with the fee.

Solvency (rules version 2, ``solvency`` given): at the close of each time
step when the account holds a margined position (a derivative, or spot on a
margin account), if equity is at or below zero every open position is
liquidated at its close (no fee: nothing is left to pay it) and ``TradingHalted`` stops the
account: no order is accepted after it. Checked at step closes, so a gap can
leave equity below zero; it never keeps trading there.
"""

from __future__ import annotations

from collections.abc import Iterable

from tidemark.core.accounts.buying_power import BuyingPower
from tidemark.core.accounts.portfolio import Portfolio, Position
from tidemark.core.bus import QUIET_FOREVER, Actor, Handler
from tidemark.core.events import (
    BUY,
    SELL,
    Bar,
    Event,
    InstrumentDefinition,
    Liquidation,
    MarginCall,
    OrderFilled,
    TradingHalted,
)
from tidemark.core.instruments import notional, settle_currency


def liquidation_price(inst: InstrumentDefinition, quantity: float, entry: float) -> float:
    """Price at which an isolated position's equity meets maintenance."""
    im, mm = inst.initial_margin, inst.maintenance_margin
    if inst.inverse:
        return entry * (1 + mm) / (1 + im) if quantity > 0 else entry * (1 - mm) / (1 - im)
    return entry * (1 - im) / (1 - mm) if quantity > 0 else entry * (1 + im) / (1 + mm)


class MarginActor(Actor):
    name = "margin"

    def __init__(
        self,
        portfolio: Portfolio,
        *,
        fee_bps: float = 50.0,
        mode: str = "isolated",
        solvency: BuyingPower | None = None,
    ) -> None:
        if mode not in ("isolated", "cross"):
            raise ValueError(f"margin mode must be isolated or cross, not {mode!r}")
        self.mode = mode
        self.portfolio = portfolio
        self.fee_rate = fee_bps / 10_000.0
        self.solvency = solvency
        self.halted = False
        self._margined: set[str] = set()
        self._count = 0

    def subscriptions(self) -> Iterable[tuple[type[Event], Handler, bool]]:
        return ((InstrumentDefinition, self.on_instrument, False), (Bar, self.on_bar, False))

    def on_instrument(self, inst: InstrumentDefinition) -> None:
        if inst.maintenance_margin > 0 and inst.initial_margin > inst.maintenance_margin:
            self._margined.add(inst.instrument)

    def on_bar(self, bar: Bar) -> None:
        if self.mode == "cross":
            if bar.last:
                self._check_account(bar)
        elif bar.instrument in self._margined:
            self._check_isolated(bar)
        if bar.last and self.solvency is not None and not self.halted:
            self._check_solvency()

    def bars_quiet_until(self) -> int:
        """Quiet while no position is open in a margined instrument."""
        pf = self.portfolio
        solvency = self.solvency
        for pos in pf.open_positions():
            if pos.instrument in self._margined:
                return 0
            if solvency is not None and not self.halted and solvency.margined(pf.instruments[pos.instrument]):
                return 0
        return QUIET_FOREVER

    def _check_solvency(self) -> None:
        """Equity at or below zero with margined positions open: liquidate
        everything at the marks and halt the account."""
        pf = self.portfolio
        solvency = self.solvency
        assert solvency is not None
        if not any(solvency.margined(pf.instruments[pos.instrument]) for pos in pf.open_positions()):
            return
        equity = pf.equity()
        if equity > 0.0:
            return
        self.halted = True
        now = self.bus.now()
        for pos in [p for p in pf.positions.values() if p.quantity != 0.0]:
            inst = pf.instruments[pos.instrument]
            self._liquidate(inst, pos, pf.marks.get(pos.instrument, pos.avg_price), now, charge_fee=False)
        self.bus.publish(TradingHalted(now, "equity_zero", equity))

    def _check_isolated(self, bar: Bar) -> None:
        pf = self.portfolio
        inst = pf.instruments[bar.instrument]
        for pos in [p for p in pf.positions.values() if p.instrument == bar.instrument and p.quantity != 0.0]:
            price = liquidation_price(inst, pos.quantity, pos.avg_price)
            if pos.quantity > 0 and bar.low <= price:
                self._liquidate(inst, pos, min(price, bar.open), bar.ts - bar.interval)
            elif pos.quantity < 0 and bar.high >= price:
                self._liquidate(inst, pos, max(price, bar.open), bar.ts - bar.interval)

    def maintenance(self) -> float:
        """Sum of maintenance margins of margined positions at the marks (account currency)."""
        pf = self.portfolio
        total = 0.0
        for pos in pf.open_positions():
            if pos.instrument in self._margined:
                inst = pf.instruments[pos.instrument]
                mark = pf.marks.get(pos.instrument, pos.avg_price)
                rate = 1.0 if inst.inverse else pf.rate(settle_currency(inst))
                total += notional(inst, pos.quantity, mark) * inst.maintenance_margin * rate
        return total

    def _check_account(self, bar: Bar) -> None:
        pf = self.portfolio
        required = self.maintenance()
        if required <= 0.0 or pf.equity() >= required:
            return
        for pos in [p for p in pf.positions.values() if p.quantity != 0.0 and p.instrument in self._margined]:
            inst = pf.instruments[pos.instrument]
            self._liquidate(inst, pos, pf.marks[pos.instrument], bar.ts - bar.interval)

    def _liquidate(
        self, inst: InstrumentDefinition, pos: Position, price: float, exec_ts: int, *, charge_fee: bool = True
    ) -> None:
        """Close ``pos`` at ``price`` (market time ``exec_ts``), with the
        liquidation fee unless the account has nothing left to pay it."""
        bus = self.bus
        ts = bus.now()
        quantity = pos.quantity
        value = notional(inst, quantity, price)
        fee = value * self.fee_rate / (price if inst.inverse else 1.0) if charge_fee else 0.0
        maintenance = value * inst.maintenance_margin / (price if inst.inverse else 1.0)
        self._count += 1
        bus.publish(MarginCall(ts, inst.instrument, self.portfolio.equity(), maintenance))
        bus.publish(Liquidation(ts, pos.strategy, inst.instrument, quantity, price, fee))
        fill = OrderFilled(
            ts,
            pos.strategy,
            f"liq-{self._count}",
            f"liq-{self._count}.1",
            inst.instrument,
            SELL if quantity > 0 else BUY,
            abs(quantity),
            price,
            exec_ts,
            0.0,
            "liquidation",
            fee,
            settle_currency(inst),
            "liquidation",
        )
        bus.publish(fill)
        bus.publish(self.portfolio.apply_fill(fill))
