"""The simulated venue for bar data.

Rules (all documented behaviour; see also :mod:`tidemark.core.execution.orders`):

* ``fill="next_open"`` (default): an order sent while bar *i* is handled is
  matched from bar *i+1+latency_bars*. ``fill="close"``: a market order fills
  at once at the current bar's close; other types match from the next bar.
  Per order: ``market_on_close`` fills at the close of the bar it is sent on
  (of bar *i+latency_bars* with latency), ``market_on_open`` at the next
  open, whatever the run's fill model.
* Intrabar path: ``O -> L -> H -> C`` when ``C >= O`` else ``O -> H -> L -> C``
  (the adverse extreme first). Orders fill in the order the path reaches
  them; ties keep submission order. So a bracket whose stop and target are
  both inside one bar exits at whichever the path reaches first.
* Market orders fill at the open. Limits fill when the bar trades through the
  limit, at the limit; a bar that opens through it fills at the open. Stops
  trigger when the bar trades through the trigger and fill there; a gap
  through the trigger fills at the open. A triggered stop-limit then acts as
  a limit from the trigger point on.
* Taker fills (market, stop, and limits marketable on arrival) pay slippage
  and taker fees; resting limit fills are maker fills with no slippage.
* ``participation``: at most that fraction of the bar's volume fills per bar
  per instrument; the rest stays working (partial fills). IOC cancels what
  its first matching bar cannot fill; FOK fills all on that bar or nothing.
* ``fill_probability``: a resting limit that is touched fills with this
  probability (seeded generator; the seed is in the run header).
* Account (:mod:`tidemark.core.accounts.buying_power`): an order that adds
  exposure is refused (``OrderRejected``) when the account cannot pay for
  it or margin it beside its working orders, and a fill the account cannot
  pay for when it happens cancels the order (``OrderCanceled`` with the
  reason), so cash never goes below zero on a cash account.
* Contract rules (rules version 2): quantities must be whole lots
  (``bad_lot_size``), prices whole ticks (``bad_tick_size``) and an order
  that adds exposure must be worth ``min_notional`` (``below_min_notional``).
  ``ctx`` rounds what strategies send (quantities down to the lot).
* After ``TradingHalted`` every working order is canceled and every new one
  refused (``trading_halted``).
* Reduce-only orders are clipped to the position; with nothing to reduce
  they are canceled. Brackets: on each fill of the parent the stop-loss and
  take-profit children (reduce-only, one-cancels-other) are sized to the
  filled quantity; a child placed when its parent filled at the open is
  matched against that same bar.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from tidemark.core.accounts.buying_power import TRADING_HALTED, AccountRules, BuyingPower, opening_part
from tidemark.core.accounts.portfolio import Portfolio
from tidemark.core.accounts.risk import RiskEngine
from tidemark.core.bus import NEEDS_EVERY_BAR, QUIET_FOREVER, Actor, Handler
from tidemark.core.events import (
    BUY,
    SELL,
    Bar,
    CancelOrder,
    Event,
    InstrumentDefinition,
    ModifyOrder,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderTriggered,
    RiskRejected,
    SubmitBracketOrder,
    SubmitOrder,
    TradingHalted,
)
from tidemark.core.execution.fees import FeeModel
from tidemark.core.execution.orders import (
    CANCELED,
    EXPIRED,
    FILLED,
    LIMIT,
    MARKET,
    MARKET_ON_CLOSE,
    MARKET_ON_OPEN,
    PARTIALLY_FILLED,
    STOP,
    STOP_LIMIT,
    TAKER_TYPES,
    TRIGGERED,
    Order,
    by_submission,
    validate,
)
from tidemark.core.execution.slippage import SlippageModel
from tidemark.core.ids import rng
from tidemark.core.instruments import notional, on_step, round_quantity

FILL_MODES = ("next_open", "close")


@dataclass(frozen=True)
class ExecutionConfig:
    fill: str = "next_open"
    latency_bars: int = 0
    participation: float | None = None
    fill_probability: float | None = None
    slippage: SlippageModel = field(default_factory=SlippageModel)
    fees: FeeModel = field(default_factory=FeeModel)
    atr_period: int = 14
    account: AccountRules = field(default_factory=AccountRules)
    intrabar: str = "path"
    """Which exit a bar reaches first: ``path`` (the documented O-L-H-C /
    O-H-L-C path; a bar opening through a limit fills it at the open) or
    ``pessimistic`` (stops before everything else in the bar, and a resting
    limit never fills better than its price: seed 000's model)."""
    limit_slippage_bps: float = 0.0
    """Slippage on resting limit fills (off by default): a take-profit at T
    fills at T * (1 - bps) for a sell, recorded on the fill (``limit_bps``)."""
    rules: int = 2
    """Simulation rules version (:mod:`tidemark.core.config`): 2 enforces
    lot, tick and minimum-notional rules and sizes bracket exits from the
    position they protect; 1 replays earlier journals as they ran."""

    def __post_init__(self) -> None:
        if self.fill not in FILL_MODES:
            raise ValueError(f"fill must be one of {', '.join(FILL_MODES)}, not {self.fill!r}")
        if self.latency_bars < 0:
            raise ValueError("latency_bars must be >= 0")
        if self.participation is not None and not 0.0 < self.participation <= 1.0:
            raise ValueError("participation must be in (0, 1]")
        if self.fill_probability is not None and not 0.0 < self.fill_probability <= 1.0:
            raise ValueError("fill_probability must be in (0, 1]")
        if self.intrabar not in ("path", "pessimistic"):
            raise ValueError(f"intrabar must be path or pessimistic, not {self.intrabar!r}")


def _path(bar: Bar) -> tuple[float, float, float, float]:
    if bar.close >= bar.open:
        return bar.open, bar.low, bar.high, bar.close
    return bar.open, bar.high, bar.low, bar.close


def touch_time(path: tuple[float, float, float, float], level: float, upward: bool) -> float | None:
    """Where on the path (0 = open .. 3 = close) price first reaches ``level``
    going ``upward`` (>= level) or downward (<= level); None if never."""
    start = path[0]
    if (start >= level) if upward else (start <= level):
        return 0.0
    for k in range(3):
        a, b = path[k], path[k + 1]
        if (a < level <= b) if upward else (b <= level < a):
            return k + (level - a) / (b - a)
    return None


def touch_time_after(path: tuple[float, float, float, float], level: float, upward: bool, start: float) -> float | None:
    """Like :func:`touch_time`, but only from path time ``start`` on: where
    price next reaches ``level`` after ``start`` (a stop-limit's limit after
    its trigger); None if it does not."""
    k = min(int(start), 2)
    a, b = path[k], path[k + 1]
    here = a + (b - a) * (start - k)
    if (here >= level) if upward else (here <= level):
        return start
    if (here < level <= b) if upward else (b <= level < here):
        return k + (level - a) / (b - a)
    for j in range(k + 1, 3):
        a, b = path[j], path[j + 1]
        if (a < level <= b) if upward else (b <= level < a):
            return j + (level - a) / (b - a)
    return None


Touch = tuple[float, float | None, bool, bool]
"""How a bar reaches an order: ``(when, price, maker, triggers)``: path time
(0 = open .. 3 = close), fill price (None: triggered only), maker or taker,
and whether this touch triggers a stop."""

_UNLIMITED = float("inf")
_IMMEDIATE = ("IOC", "FOK")


def _due_key(item: tuple[float, int, Order, Touch]) -> tuple[float, int]:
    return item[0], item[1]


def _stops_first(item: tuple[float, int, Order, Touch]) -> tuple[bool, float, int]:
    """Pessimistic order in a bar: whatever a stop triggers comes first."""
    return not item[3][3], item[0], item[1]


def _exit_cap(cmd: SubmitOrder, child_id: str) -> float:
    """The most a bracket exit may close (0: what the parent filled)."""
    if type(cmd) is not SubmitBracketOrder:
        return 0.0
    return cmd.take_profit_quantity if child_id.endswith(".tp") else cmd.stop_loss_quantity


class SimulatedVenue(Actor):
    """Accepts commands, matches working orders against bars, books fills."""

    name = "venue"

    def __init__(
        self,
        portfolio: Portfolio,
        risk: RiskEngine,
        config: ExecutionConfig,
        *,
        seed: int = 0,
    ) -> None:
        self.portfolio = portfolio
        self.risk = risk
        self.config = config
        self.orders: dict[str, Order] = {}
        self.working: dict[str, list[Order]] = {}
        self._working_count = 0  # orders in ``working`` (all instruments)
        self.bars: dict[str, Bar] = {}
        self._atr: dict[str, tuple[float, float, int]] = {}
        self._track_atr = config.slippage.model == "atr"
        self._fills = 0
        self._n_orders = 0
        self._rng = rng(seed) if config.fill_probability is not None else None
        self._expiries: dict[str, int] = {}
        self._settled: set[str] = set()
        self.account = BuyingPower(config.account, portfolio)
        self.halted = False
        self._v2 = config.rules >= 2
        self._pessimistic = config.intrabar == "pessimistic"
        self._used: dict[str, tuple[int, float]] = {}
        """Per instrument: (bar ts, quantity filled on that bar) under participation (rules version 2)."""

    def subscriptions(self) -> Iterable[tuple[type[Event], Handler, bool]]:
        return (
            (InstrumentDefinition, self.on_instrument, False),
            (SubmitOrder, self.on_submit, False),
            (SubmitBracketOrder, self.on_submit, False),
            (CancelOrder, self.on_cancel, False),
            (ModifyOrder, self.on_modify, False),
            (Bar, self.on_bar, False),
            (TradingHalted, self.on_halt, False),
        )

    def on_halt(self, event: TradingHalted) -> None:
        """The account stopped trading: nothing works any more."""
        self.halted = True
        self.cancel_all(TRADING_HALTED)

    def on_instrument(self, inst: InstrumentDefinition) -> None:
        if inst.expiry:
            self._expiries[inst.instrument] = inst.expiry

    def _expire_instrument(self, instrument: str, bar: Bar) -> None:
        """At the first bar ending at or after expiry: cancel its orders and
        settle open positions at the settlement price (the close of the last
        bar ending at or before expiry; this bar's close if it ends exactly
        there, else its open)."""
        if instrument in self._settled:
            return
        self._settled.add(instrument)
        expiry = self._expiries[instrument]
        previous = self.bars.get(instrument)
        price = bar.close if bar.ts == expiry else (previous.close if previous is not None else bar.open)
        for order in list(self.working.get(instrument, [])):
            if order.active:
                self._cancel(order, "instrument_expired")
        for pos in [p for p in self.portfolio.positions.values() if p.instrument == instrument and p.quantity != 0.0]:
            self._fills += 1
            fill = OrderFilled(
                self.bus.now(),
                pos.strategy,
                f"settle-{instrument}",
                f"settle-{instrument}.{self._fills}",
                instrument,
                SELL if pos.quantity > 0 else BUY,
                abs(pos.quantity),
                price,
                expiry,
                0.0,
                "settlement",
                0.0,
                self.portfolio.instruments[instrument].settle,
                "settlement",
            )
            self.bus.publish(fill)
            self.bus.publish(self.portfolio.apply_fill(fill))
        self.bars[instrument] = bar

    # -- commands -----------------------------------------------------------------

    def on_submit(self, cmd: SubmitOrder) -> None:
        bus = self.bus
        ts = bus.now()
        reason = self._refusal(cmd)
        last = self.bars.get(cmd.instrument)
        if (
            reason is None
            and cmd.post_only
            and last is not None
            and ((cmd.price >= last.close) if cmd.side == BUY else (cmd.price <= last.close))
        ):
            reason = "post_only_would_cross"
        if reason is not None:
            bus.publish(OrderRejected(ts, cmd.strategy, cmd.order_id, cmd.instrument, reason))
            return
        price = cmd.price or cmd.trigger_price or (last.close if last is not None else 0.0)
        refusal = self.risk.check(
            cmd,
            price,
            self.working_orders() if self.risk.limits.pending_risk else (),
            self.working.get(cmd.instrument, ()) if self.risk.check_reversals else (),
        )
        if refusal is not None:
            bus.publish(RiskRejected(ts, cmd.strategy, cmd.order_id, cmd.instrument, refusal[0], refusal[1]))
            return
        refusal = self._unaffordable(cmd, price)
        if refusal is not None:
            bus.publish(OrderRejected(ts, cmd.strategy, cmd.order_id, cmd.instrument, refusal[0], refusal[1]))
            return
        bus.publish(OrderAccepted(ts, cmd.strategy, cmd.order_id, cmd.instrument))
        self._n_orders += 1
        order = Order(cmd, self._n_orders, cmd.quantity, wait=self.config.latency_bars)
        self.orders[cmd.order_id] = order
        if cmd.parent_id:
            self._link_child(order)
        kind = cmd.order_type
        if (
            (kind == MARKET_ON_CLOSE or (kind == MARKET and self.config.fill == "close" and cmd.tif != "OPG"))
            and self.config.latency_bars == 0
            and last is not None
            and (last.ts == ts or not self._v2)  # sent at a step's open (on_open): fills at its close
        ):
            self._fill_now(order, last, last.close, last.ts)
            if order.active and cmd.tif in _IMMEDIATE:
                self._cancel(order, cmd.tif.lower() if self._v2 else "ioc")
            if order.active:
                self._add_working(order)
            return
        if cmd.tif == "OPG" and last is not None and last.ts == ts:
            # Sent at the open of this step, after its bar of this instrument was handled: that open.
            self._fill_now(order, last, last.open, last.ts - last.interval, last.ts)
            if order.active:
                self._add_working(order)
            return
        self._add_working(order)
        parent = self.orders.get(cmd.parent_id) if cmd.parent_id else None
        if parent is not None and last is not None and parent.filled_at_open_ts == last.ts:
            # Children of a parent filled at this bar's open see the same bar,
            # all together, so the intrabar path decides which exit comes first.
            children = [self.orders.get(child) for child in parent.children]
            if all(child is not None for child in children):
                ready = [child for child in children if child is not None]
                for child in ready:
                    child.wait = 0
                self._match_bar(last, ready)

    def _fill_now(self, order: Order, bar: Bar, price: float, exec_ts: int, at_open_ts: int = -1) -> None:
        """Fill a new order at once on ``bar`` (at its close, or its open for
        OPG). Under rules version 2 this takes its share of the bar's
        participation budget like any other fill on that bar; what the budget
        cannot fill keeps working (FOK: nothing fills). Version 1 filled it all."""
        quantity = order.quantity
        if self._v2 and self.config.participation is not None:
            budget = self._budget(bar)
            if order.cmd.tif == "FOK" and quantity > budget:
                return
            if quantity > budget:
                quantity = round_quantity(self.portfolio.instruments[order.cmd.instrument], budget)
            if quantity <= 0.0:
                return
        filled = self._fill_at(order, bar, price, exec_ts, False, quantity, at_open_ts)
        self._spend(bar, filled)

    def _budget(self, bar: Bar) -> float:
        """What participation still allows to fill on ``bar`` (its instrument)."""
        participation = self.config.participation
        if participation is None:
            return _UNLIMITED
        budget = participation * bar.volume
        if self._v2:
            used = self._used.get(bar.instrument)
            if used is not None and used[0] == bar.ts:
                budget = max(budget - used[1], 0.0)
        return budget

    def _spend(self, bar: Bar, quantity: float) -> None:
        """Count ``quantity`` filled on ``bar`` against its participation budget (version 2)."""
        if not self._v2 or self.config.participation is None or quantity <= 0.0:
            return
        used = self._used.get(bar.instrument)
        before = used[1] if used is not None and used[0] == bar.ts else 0.0
        self._used[bar.instrument] = (bar.ts, before + quantity)

    def _refusal(self, cmd: SubmitOrder) -> str | None:
        """Why a command cannot be accepted at all (before risk), or None."""
        reason = validate(cmd)
        if reason is None and cmd.instrument not in self.portfolio.instruments:
            reason = "unknown_instrument"
        if reason is None and cmd.order_id in self.orders:
            reason = "duplicate_order_id"
        if reason is None and cmd.instrument in self._settled:
            reason = "instrument_expired"
        if reason is None and self.halted:
            reason = TRADING_HALTED
        if reason is None and self._v2:
            reason = self._contract_refusal(cmd)
        return reason

    def _contract_refusal(self, cmd: SubmitOrder) -> str | None:
        """Lot and tick multiples, and the minimum notional of an order that
        adds exposure (valued at its limit or trigger, else the last close)."""
        inst = self.portfolio.instruments[cmd.instrument]
        if not on_step(cmd.quantity, inst.lot_size):
            return "bad_lot_size"
        if not (on_step(cmd.price, inst.tick_size) and on_step(cmd.trigger_price, inst.tick_size)):
            return "bad_tick_size"
        if inst.min_notional > 0 and not cmd.reduce_only:
            pos = self.portfolio.positions.get((cmd.strategy, cmd.instrument))
            opening = opening_part(pos.quantity if pos is not None else 0.0, cmd.side, cmd.quantity)
            price = cmd.price or cmd.trigger_price or self._reference(cmd.instrument)
            if opening > 0.0 and price > 0.0 and notional(inst, cmd.quantity, price) < inst.min_notional:
                return "below_min_notional"
        return None

    def _reference(self, instrument: str) -> float:
        """The price a market order is valued at before it fills (last close)."""
        last = self.bars.get(instrument)
        return last.close if last is not None else self.portfolio.marks.get(instrument, 0.0)

    def working_orders(self) -> list[Order]:
        """Every working order (claims on the account), in submission order."""
        orders = [order for queue in self.working.values() for order in queue if order.active]
        orders.sort(key=by_submission)
        return orders

    def _unaffordable(self, cmd: SubmitOrder, price: float) -> tuple[str, str] | None:
        """The account's refusal of ``cmd`` at reference ``price``, or None.
        Taker orders are valued with slippage and a taker fee."""
        account = self.account
        if not account.rules.checked or cmd.reduce_only or price <= 0.0:
            return None
        inst = self.portfolio.instruments[cmd.instrument]
        if cmd.order_type in TAKER_TYPES:
            atr = self._atr_value(cmd.instrument) if self._track_atr else 0.0
            price = self.config.slippage.apply(inst, cmd.side, price, atr)[0]
        fee = self.config.fees.fee(inst, cmd.quantity, price, False)[0]
        return account.admit(cmd, price, fee, self.working_orders())

    def _working(self, cmd: CancelOrder | ModifyOrder, reason: str) -> Order | None:
        """The working order a command names, or None after rejecting it."""
        order = self.orders.get(cmd.order_id)
        if order is not None and order.active:
            return order
        instrument = order.cmd.instrument if order is not None else ""
        self.bus.publish(OrderRejected(self.bus.now(), cmd.strategy, cmd.order_id, instrument, reason))
        return None

    def on_cancel(self, cmd: CancelOrder) -> None:
        order = self._working(cmd, "cancel_not_working")
        if order is not None:
            self._cancel(order, "user")

    def on_modify(self, cmd: ModifyOrder) -> None:
        order = self._working(cmd, "modify_not_working")
        if order is None:
            return
        changes: dict[str, Any] = {}
        if cmd.price:
            changes["price"] = cmd.price
        if cmd.trigger_price:
            changes["trigger_price"] = cmd.trigger_price
        if changes:
            order.cmd = msgspec.structs.replace(order.cmd, **changes)
            if cmd.trigger_price and order.cmd.reduce_only and order.cmd.order_type == STOP and self._v2:
                self.risk.move_stop(order.cmd.strategy, order.cmd.instrument, cmd.trigger_price)
        if cmd.quantity:
            if cmd.quantity < order.filled:
                self.bus.publish(
                    OrderRejected(
                        self.bus.now(), cmd.strategy, cmd.order_id, order.cmd.instrument, "modify_below_filled"
                    )
                )
                return
            order.quantity = cmd.quantity
            if order.leaves <= 0.0:
                order.state = FILLED
                self._remove_working(order)

    # -- market data ----------------------------------------------------------------

    def on_bar(self, bar: Bar) -> None:
        instrument = bar.instrument
        if instrument in self._expiries and bar.ts >= self._expiries[instrument]:
            self._expire_instrument(instrument, bar)
            return
        self.bars[instrument] = bar
        if self._track_atr:
            self._update_atr(bar)
        orders = self.working.get(instrument)
        if orders:
            self._match_bar(bar, orders)

    def bars_quiet_until(self) -> int:
        """Quiet while no order works and no instrument is due to expire
        (ATR slippage needs every bar)."""
        if self._track_atr:
            return NEEDS_EVERY_BAR
        if self._working_count:
            return 0
        if self._expiries:
            pending = [ts for inst, ts in self._expiries.items() if inst not in self._settled]
            if pending:
                return min(pending)
        return QUIET_FOREVER

    def skip_bars(self, latest: dict[str, Bar]) -> None:
        expiries = self._expiries
        for instrument, bar in latest.items():
            if instrument not in expiries or bar.ts < expiries[instrument]:  # settled ones ignore bars
                self.bars[instrument] = bar

    def _match_bar(self, bar: Bar, orders: list[Order]) -> None:
        """Match ``orders`` (working, submission order) against one bar."""
        path = _path(bar)
        open_ts = bar.ts - bar.interval
        due: list[tuple[float, int, Order, Touch]] = []
        for order in tuple(orders):  # expiring or canceling an order removes it from ``orders``
            if not order.active:
                continue
            if order.wait > 0:
                order.wait -= 1
                continue
            cmd = order.cmd
            tif = cmd.tif
            if tif == "GTD" and open_ts >= cmd.expire_ts:
                self._expire(order)
                continue
            kind = cmd.order_type
            if kind in (MARKET, MARKET_ON_OPEN):
                touch: Touch | None = (0.0, path[0], False, False)
            elif kind == MARKET_ON_CLOSE:
                touch = (3.0, path[3], False, False)
            else:
                touch = self._touch(order, path)
            if touch is not None:
                due.append((touch[0], order.seq, order, touch))
            elif order.fresh and tif in _IMMEDIATE:
                self._cancel(order, tif.lower())
            order.fresh = False
        if not due:
            return
        if len(due) > 1:
            due.sort(key=_stops_first if self._pessimistic else _due_key)
        budget = start = self._budget(bar)
        for when, _, order, (_, price, maker, triggers) in due:
            if not order.active:
                continue
            if triggers and not order.triggered:
                self._trigger(order)
            if price is None:
                continue
            tif = order.cmd.tif
            lucky = not maker or self._rng is None or self._rng.random() < (self.config.fill_probability or 1.0)
            wanted = order.leaves
            if lucky and tif == "FOK" and wanted > budget:
                lucky = False
            quantity = wanted if wanted <= budget else budget
            if quantity < wanted and self._v2:
                quantity = round_quantity(self.portfolio.instruments[order.cmd.instrument], quantity)
            if lucky and quantity > 0.0:
                budget -= self._fill_at(order, bar, price, open_ts, maker, quantity, bar.ts if when == 0.0 else -1)
            if tif in _IMMEDIATE and order.active:
                self._cancel(order, tif.lower())
        if budget != _UNLIMITED:
            self._spend(bar, start - budget)

    def _touch(self, order: Order, path: tuple[float, float, float, float]) -> Touch | None:
        """How the bar reaches a limit, stop or stop-limit order, if it does
        (no state is changed)."""
        cmd = order.cmd
        kind = cmd.order_type
        buy = cmd.side == BUY
        if kind == LIMIT or (kind == STOP_LIMIT and order.triggered):
            when = touch_time(path, cmd.price, upward=not buy)
            if when is None:
                return None
            marketable_on_arrival = order.fresh and when == 0.0 and not cmd.post_only and kind == LIMIT
            at_open = when == 0.0 and (marketable_on_arrival or not self._pessimistic)
            return (when, path[0] if at_open else cmd.price, not marketable_on_arrival, False)
        if kind == STOP and order.triggered and self._v2:
            # A stop triggered on an earlier bar and only partly filled there
            # (participation) is a market order now: the rest fills at the open
            # whether or not price is still through the trigger.
            return (0.0, path[0], False, False)
        when = touch_time(path, cmd.trigger_price, upward=buy)
        if when is None:
            return None
        trigger_fill = path[0] if when == 0.0 else cmd.trigger_price
        if kind == STOP:
            return (when, trigger_fill, False, True)
        limit = cmd.price
        if (trigger_fill <= limit) if buy else (trigger_fill >= limit):
            return (when, trigger_fill, False, True)
        rest = touch_time(path, limit, upward=not buy)
        if rest is not None and rest < when and self._v2:
            # The limit was reached before the trigger: what counts is whether
            # price comes back to it after the trigger, later in the bar
            # (version 1 looked only at the first touch).
            rest = touch_time_after(path, limit, not buy, when)
        if rest is not None and rest >= when:
            return (when, limit, True, True)
        return (when, None, True, True)

    def _trigger(self, order: Order) -> None:
        order.triggered = True
        if order.filled == 0.0:
            order.state = TRIGGERED
        cmd = order.cmd
        self.bus.publish(OrderTriggered(self.bus.now(), cmd.strategy, cmd.order_id, cmd.instrument, cmd.trigger_price))

    # -- fills --------------------------------------------------------------------------

    def _fill_at(
        self, order: Order, bar: Bar, price: float, exec_ts: int, maker: bool, quantity: float, at_open_ts: int = -1
    ) -> float:
        """Fill ``quantity`` of ``order`` at ``price`` (before taker slippage)
        on ``bar``; ``at_open_ts``: the bar's ts when filled at its open."""
        slip, model = 0.0, "none"
        if not maker:
            cmd = order.cmd
            inst = self.portfolio.instruments[cmd.instrument]
            atr = self._atr_value(cmd.instrument) if self._track_atr else 0.0
            price, slip, model = self.config.slippage.apply(inst, cmd.side, price, atr)
        elif self.config.limit_slippage_bps:
            slip = price * self.config.limit_slippage_bps / 10_000.0
            price, model = (price + slip if order.cmd.side == BUY else price - slip), "limit_bps"
        return self._execute(
            order, quantity, price, exec_ts, maker, slip, model, 0, 0, self.config.latency_bars, at_open_ts
        )

    def _execute(
        self,
        order: Order,
        quantity: float,
        price: float,
        exec_ts: int,
        maker: bool,
        slippage: float = 0.0,
        slippage_model: str = "none",
        source_seq: int = 0,
        levels: int = 0,
        latency: int = 0,
        at_open_ts: int = -1,
        fee_label: bool = False,
    ) -> float:
        """Book one execution of ``quantity`` at ``price``: reduce-only
        clipping, fees, order state, the fill and position events, bracket
        children and one-cancels-other. Returns the quantity filled."""
        cmd = order.cmd
        order.fresh = False
        if cmd.reduce_only:
            pos = self.portfolio.positions.get((cmd.strategy, cmd.instrument))
            held = pos.quantity if pos is not None else 0.0
            reducible = -held if cmd.side == BUY else held
            if reducible <= 0.0:
                self._cancel(order, "reduce_only")
                return 0.0
            quantity = min(quantity, reducible)
        inst = self.portfolio.instruments[cmd.instrument]
        fees = self.config.fees
        fee, fee_model = fees.fee(inst, quantity, price, maker)
        refusal = self.account.afford(cmd, quantity, price, fee)
        if refusal is not None:
            self._cancel(order, refusal[0])
            return 0.0
        if fee_label:
            fee_model = f"{fee_model}@{fees.rate(inst, maker)!r}"
        order.filled = filled = order.filled + quantity
        size = order.quantity
        leaves = size - filled
        if leaves <= 1e-12 * (size if size > 1.0 else 1.0):
            leaves = 0.0
            order.state = FILLED
            self._remove_working(order)
        else:
            order.state = PARTIALLY_FILLED
        if at_open_ts >= 0:
            order.filled_at_open_ts = at_open_ts
        self._fills = fills = self._fills + 1
        bus = self.bus
        fill = OrderFilled(
            bus.now(),
            cmd.strategy,
            cmd.order_id,
            f"{cmd.order_id}.{fills}",
            cmd.instrument,
            cmd.side,
            quantity,
            price,
            exec_ts,
            leaves,
            "maker" if maker else "taker",
            fee,
            inst.settle or inst.quote,
            fee_model,
            slippage,
            slippage_model,
            source_seq,
            levels,
            latency,
        )
        bus.publish(fill)
        bus.publish(self.portfolio.apply_fill(fill))
        if cmd.stop_loss or cmd.take_profit:
            self._size_children(order)
        if order.oco:
            self._reduce_sibling(order, quantity)
        return quantity

    # -- brackets ------------------------------------------------------------------------

    def _size_children(self, parent: Order) -> None:
        cmd = parent.cmd
        exit_side = SELL if cmd.side == BUY else BUY
        if not parent.children:
            ids = []
            if cmd.stop_loss:
                ids.append((f"{cmd.order_id}.sl", STOP, 0.0, cmd.stop_loss))
            if cmd.take_profit:
                ids.append((f"{cmd.order_id}.tp", LIMIT, cmd.take_profit, 0.0))
            parent.children = tuple(child_id for child_id, *_ in ids)
            for child_id, kind, price, trigger in ids:
                cap = _exit_cap(cmd, child_id)
                self.bus.publish(
                    SubmitOrder(
                        self.bus.now(),
                        cmd.strategy,
                        child_id,
                        cmd.instrument,
                        exit_side,
                        min(cap, parent.filled) if cap else parent.filled,
                        order_type=kind,
                        price=price,
                        trigger_price=trigger,
                        reduce_only=True,
                        parent_id=cmd.order_id,
                        tag="bracket",
                    )
                )
            return
        for child_id in parent.children:
            child = self.orders.get(child_id)
            if child is not None and child.active:
                sibling = self.orders.get(child.oco) if child.oco else None
                sibling_filled = sibling.filled if sibling is not None else 0.0
                if self._v2:  # the child closes what its sibling has not, up to its own size
                    cap = _exit_cap(cmd, child_id) or parent.filled
                    child.quantity = min(cap, parent.filled - sibling_filled)
                else:  # version 1 (kept for replay): counted the child's own fills twice
                    child.quantity = parent.filled - child.filled - sibling_filled

    def _link_child(self, child: Order) -> None:
        parent = self.orders.get(child.cmd.parent_id)
        if parent is None or len(parent.children) != 2:
            return
        a, b = parent.children
        other = b if child.id == a else a
        child.oco = other
        sibling = self.orders.get(other)
        if sibling is not None:
            sibling.oco = child.id

    def _reduce_sibling(self, order: Order, quantity: float) -> None:
        sibling = self.orders.get(order.oco)
        if sibling is None or not sibling.active:
            return
        sibling.quantity -= quantity
        if sibling.leaves <= 1e-12 * max(1.0, sibling.quantity + quantity):
            self._cancel(sibling, "oco")

    # -- terminal transitions ------------------------------------------------------------

    def _cancel(self, order: Order, reason: str) -> None:
        order.state = CANCELED
        self._remove_working(order)
        cmd = order.cmd
        self.bus.publish(
            OrderCanceled(self.bus.now(), cmd.strategy, cmd.order_id, cmd.instrument, reason, order.leaves)
        )

    def _expire(self, order: Order) -> None:
        order.state = EXPIRED
        self._remove_working(order)
        cmd = order.cmd
        self.bus.publish(OrderExpired(self.bus.now(), cmd.strategy, cmd.order_id, cmd.instrument, order.leaves))

    def _add_working(self, order: Order) -> None:
        self.working.setdefault(order.cmd.instrument, []).append(order)
        self._working_count += 1

    def _remove_working(self, order: Order) -> None:
        orders = self.working.get(order.cmd.instrument)
        if orders is not None and order in orders:
            orders.remove(order)
            self._working_count -= 1

    def cancel_all(self, reason: str = "run_end") -> None:
        """Cancel every working order (end of a run), in submission order."""
        for instrument in list(self.working):
            for order in list(self.working[instrument]):
                if order.active:
                    self._cancel(order, reason)

    # -- ATR for slippage -------------------------------------------------------------------

    def _update_atr(self, bar: Bar) -> None:
        prev = self._atr.get(bar.instrument)
        if prev is None:
            self._atr[bar.instrument] = (bar.high - bar.low, bar.close, 1)
            return
        atr, prev_close, n = prev
        tr = max(bar.high - bar.low, abs(bar.high - prev_close), abs(bar.low - prev_close))
        period = self.config.atr_period
        n += 1
        atr = atr + (tr - atr) / min(n, period)
        self._atr[bar.instrument] = (atr, bar.close, n)

    def _atr_value(self, instrument: str) -> float:
        state = self._atr.get(instrument)
        if state is None or state[2] < self.config.atr_period:
            return 0.0
        return state[0]
