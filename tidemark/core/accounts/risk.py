"""Pre-trade risk checks between strategy and execution.

Only orders that add exposure are checked; reduce-only orders and orders that
shrink a position always pass. A reversal (through zero to the other side)
adds exposure even when the new position is smaller than the old: under rules
version 2 it is checked as closing the position and opening the remainder on
the other side (version 1 let it pass as a reduction). Likewise an entry sent
behind its position's pending reduce-only exit (a flatten, then the new
side) is checked as the new position, not as a reduction of the old one. A refusal is a ``RiskRejected`` event whose
``reason`` is one of the codes below, so rejection counts per reason come
straight out of the journal. Fractions are of current account equity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import msgspec

from tidemark.core.accounts.portfolio import Portfolio, Position
from tidemark.core.events import BUY, SELL, SubmitOrder
from tidemark.core.execution.orders import Order
from tidemark.core.instruments import notional, point_value

MAX_POSITIONS: Final = "max_positions"
STRATEGY_MAX_POSITIONS: Final = "strategy_max_positions"
MAX_GROSS_EXPOSURE: Final = "max_gross_exposure"
MAX_LEVERAGE: Final = "max_leverage"
MAX_OPEN_RISK: Final = "max_open_risk"
STRATEGY_NOTIONAL: Final = "strategy_notional_budget"
STRATEGY_RISK: Final = "strategy_risk_budget"
DRAWDOWN: Final = "drawdown_cutoff"
DAILY_LOSS: Final = "daily_loss_limit"
NO_PRICE: Final = "no_price"

REASONS: Final = (
    MAX_POSITIONS,
    STRATEGY_MAX_POSITIONS,
    MAX_GROSS_EXPOSURE,
    MAX_LEVERAGE,
    MAX_OPEN_RISK,
    STRATEGY_NOTIONAL,
    STRATEGY_RISK,
    DRAWDOWN,
    DAILY_LOSS,
    NO_PRICE,
)

DAY_NS: Final = 86_400_000_000_000


@dataclass(frozen=True)
class RiskLimits:
    """Limits; ``None`` disables a check. Fractions are of equity
    (``max_gross_exposure=1.4`` allows gross notional of 140% of equity)."""

    max_positions: int | None = None
    max_gross_exposure: float | None = None
    max_leverage: float | None = None
    max_open_risk: float | None = None
    max_drawdown: float | None = None
    daily_loss: float | None = None
    strategy_max_positions: dict[str, int] = field(default_factory=dict)
    strategy_notional: dict[str, float] = field(default_factory=dict)
    strategy_risk: dict[str, float] = field(default_factory=dict)
    open_risk_basis: str = "mark"
    """Open risk of a position with a stop: ``mark`` (what is still at risk,
    ``max(0, (mark - stop) * qty)``) or ``entry`` (``|entry - stop| * |qty|``,
    the sizing definition of seeds 000 and 003)."""
    pending_risk: bool = False
    """Count working orders that would open or add (their stop distance) in
    open risk, as well as positions."""

    def __post_init__(self) -> None:
        if self.open_risk_basis not in ("mark", "entry"):
            raise ValueError(f"open_risk_basis must be mark or entry, not {self.open_risk_basis!r}")

    @property
    def unlimited(self) -> bool:
        """True when no check is configured (every order passes)."""
        return self == RiskLimits()

    @property
    def watches_equity(self) -> bool:
        """True when the checks need the equity path (peak, day start)."""
        return self.max_drawdown is not None or self.daily_loss is not None


class RiskEngine:
    """Evaluates orders against :class:`RiskLimits` using the live portfolio.

    ``stops`` remembers the protective stop per (strategy, instrument) from
    ``risk_price``/``stop_loss`` on orders; a position with no known stop
    counts its whole notional as open risk.
    """

    def __init__(
        self, limits: RiskLimits, portfolio: Portfolio, *, current_stops: bool = False, check_reversals: bool = False
    ) -> None:
        self.limits = limits
        self.portfolio = portfolio
        self.stops: dict[tuple[str, str], float] = {}
        self.current_stops = current_stops
        """Stops follow positions (rules version 2): an entry without a stop
        forgets the last one, and a modified stop order moves it."""
        self.check_reversals = check_reversals
        """A reversal is checked for the exposure it opens on the other side
        (rules version 2); version 1 passed it as a reduction."""
        self._day = -1
        self._day_start_equity = portfolio.initial_cash
        self._unlimited = limits.unlimited  # limits are frozen

    def observe(self, ts: int) -> None:
        """Track the equity path (once per bar group, only when needed)."""
        equity = self.portfolio.update_peak()
        day = ts // DAY_NS
        if day != self._day:
            self._day = day
            self._day_start_equity = equity

    def move_stop(self, strategy: str, instrument: str, stop: float) -> None:
        """A protective stop order of a position moved (trailing stops)."""
        if self.current_stops:
            self.stops[(strategy, instrument)] = stop

    def check(
        self, cmd: SubmitOrder, price: float, working: Sequence[Order] = (), queued: Sequence[Order] = ()
    ) -> tuple[str, str] | None:
        """``None`` if the order may go on, else ``(reason, detail)``.
        ``working``: the orders already working (pending risk); ``queued``:
        the working orders of the order's instrument (rules version 2: its
        strategy's reduce-only exits count as already done, so an entry
        sent behind a pending flatten is checked as the new position it is)."""
        pf = self.portfolio
        signed = cmd.quantity if cmd.side == BUY else -cmd.quantity
        pos = pf.positions.get((cmd.strategy, cmd.instrument))
        held = pos.quantity if pos is not None else 0.0
        current = held
        if self.check_reversals and held and queued:
            exit_side = BUY if held < 0 else SELL
            closing = sum(
                o.leaves
                for o in queued
                if o.active and o.cmd.reduce_only and o.cmd.strategy == cmd.strategy and o.cmd.side == exit_side
            )
            current = math.copysign(max(0.0, abs(held) - closing), held)
        after = current + signed
        reverses = self.check_reversals and current * after < 0.0
        if cmd.reduce_only or (abs(after) < abs(current) and not reverses):
            return None
        risk_stop = cmd.risk_price or cmd.stop_loss
        if risk_stop:
            self.stops[(cmd.strategy, cmd.instrument)] = risk_stop
        elif (current == 0.0 or reverses) and self.current_stops:
            self.stops.pop((cmd.strategy, cmd.instrument), None)  # a new position: the old stop is not its
        released_exposure = released_risk = 0.0
        if reverses or (pos is not None and abs(current) < abs(held)):
            # what is closed before this order opens (a pending exit, the
            # first leg of a reversal) no longer counts; a reversal is
            # checked for the remainder it opens on the other side
            assert pos is not None
            share = 1.0 if reverses else 1.0 - abs(current) / abs(held)
            released_exposure = share * notional(pf.instruments[cmd.instrument], held, self._mark(pos))
            released_risk = share * self._position_risk(pos)
            if reverses:
                cmd = msgspec.structs.replace(cmd, quantity=abs(after))
        limits = self.limits
        if price <= 0.0:
            return NO_PRICE, "no price to value the order"
        if self._unlimited:
            return None
        equity = pf.equity()
        if limits.max_drawdown is not None and pf.peak_equity > 0:
            drawdown = 1.0 - equity / pf.peak_equity
            if drawdown >= limits.max_drawdown:
                return DRAWDOWN, f"drawdown {drawdown:.4f} >= {limits.max_drawdown}"
        if limits.daily_loss is not None and self._day_start_equity > 0:
            loss = 1.0 - equity / self._day_start_equity
            if loss >= limits.daily_loss:
                return DAILY_LOSS, f"daily loss {loss:.4f} >= {limits.daily_loss}"
        opening = held == 0.0
        if opening and limits.max_positions is not None:
            count = sum(1 for _ in pf.open_positions())
            if count >= limits.max_positions:
                return MAX_POSITIONS, f"{count} open >= {limits.max_positions}"
        strategy_cap = limits.strategy_max_positions.get(cmd.strategy)
        if opening and strategy_cap is not None:
            count = sum(1 for p in pf.open_positions() if p.strategy == cmd.strategy)
            if count >= strategy_cap:
                return STRATEGY_MAX_POSITIONS, f"{count} open >= {strategy_cap}"
        inst = pf.instruments[cmd.instrument]
        added = notional(inst, cmd.quantity, price)
        if limits.max_gross_exposure is not None or limits.max_leverage is not None:
            gross = pf.gross_exposure() - released_exposure + added
            cap = min(x for x in (limits.max_gross_exposure, limits.max_leverage) if x is not None)
            if equity <= 0 or gross > cap * equity:
                reason = MAX_GROSS_EXPOSURE if limits.max_gross_exposure is not None else MAX_LEVERAGE
                return reason, f"gross {gross:.2f} > {cap} x equity {equity:.2f}"
        budget = limits.strategy_notional.get(cmd.strategy)
        if budget is not None:
            used = pf.gross_exposure(cmd.strategy) - released_exposure + added
            if used > budget * equity:
                return STRATEGY_NOTIONAL, f"{used:.2f} > {budget} x equity"
        if limits.max_open_risk is not None or cmd.strategy in limits.strategy_risk:
            new_risk = self._order_risk(cmd, price)
            if limits.max_open_risk is not None:
                heat = self.open_risk(working=working) - released_risk + new_risk
                if heat > limits.max_open_risk * equity:
                    return MAX_OPEN_RISK, f"heat {heat:.2f} > {limits.max_open_risk} x equity"
            strategy_budget = limits.strategy_risk.get(cmd.strategy)
            if strategy_budget is not None:
                used = self.open_risk(cmd.strategy, working=working) - released_risk + new_risk
                if used > strategy_budget * equity:
                    return STRATEGY_RISK, f"{used:.2f} > {strategy_budget} x equity"
        return None

    def _mark(self, pos: Position) -> float:
        return self.portfolio.marks.get(pos.instrument, pos.avg_price)

    def _position_risk(self, pos: Position) -> float:
        """One position's share of :meth:`open_risk`."""
        inst = self.portfolio.instruments[pos.instrument]
        stop = self.stops.get((pos.strategy, pos.instrument))
        if stop and self.limits.open_risk_basis == "entry":
            return abs(pos.avg_price - stop) * abs(pos.quantity) * point_value(inst)
        if stop:
            return max(0.0, (self._mark(pos) - stop) * pos.quantity) * point_value(inst)
        return notional(inst, pos.quantity, self._mark(pos))

    def _order_risk(self, cmd: SubmitOrder, price: float) -> float:
        inst = self.portfolio.instruments[cmd.instrument]
        stop = cmd.risk_price or cmd.stop_loss
        if stop:
            return abs(price - stop) * cmd.quantity * point_value(inst)
        return notional(inst, cmd.quantity, price)

    def open_risk(self, strategy: str | None = None, working: Sequence[Order] = ()) -> float:
        """Money lost if every open position hit its stop (portfolio heat),
        measured per :attr:`RiskLimits.open_risk_basis`; with
        ``pending_risk``, working orders that add exposure count too."""
        pf = self.portfolio
        total = 0.0
        for pos in pf.open_positions():
            if strategy is not None and pos.strategy != strategy:
                continue
            total += self._position_risk(pos)
        if self.limits.pending_risk:
            for order in working:
                cmd = order.cmd
                if not cmd.reduce_only and (strategy is None or cmd.strategy == strategy):
                    price = cmd.price or cmd.trigger_price or pf.marks.get(cmd.instrument, 0.0)
                    total += self._order_risk(cmd, price) * order.leaves / cmd.quantity
        return total
