"""Execution algorithms: work a parent order through child orders over time.

TWAP: ``slots`` slots of ``slot_interval`` ns from ``start_ts`` (slot k holds
the bars closing in ``(start + k*dt, start + (k+1)*dt]``). At the close of a
bar in slot k the target is ``quantity * (w_0 + .. + w_k) / sum(w)``
(weights from a volume profile, or equal); the child is the target minus
what has filled (so a shortfall is caught up in the next slot), capped at
``participation * bar volume`` when set. In the last slot the child is all
that remains, uncapped (the final sweep). POV: each bar's child is
``participation * bar volume`` until done.

Children are IOC market orders with ``parent_id`` set, sent by the parent's
strategy, so every child fill is attributed to both. With ``child_type``
``"limit"`` the children work limits instead (an IOC limit is matched
against the next bar: filled at the limit when the bar trades through it,
else canceled): priced off the bar just closed at ``close +/- offset *
(high - low)`` (the bar's range stands in for the spread bars do not
carry; a positive offset is toward crossing: above the close for a buy),
with ``offsets[k]`` for the k-th child in a row that did not fill (the
last offset once k passes the end), so a missed child is retried more
aggressively and its shortfall caught up; the last slot sweeps at market
(seed 002's final sweep). A final sweep the venue or the account refuses
ends the parent with what has filled (``AlgoFinished.filled`` below its
quantity) instead of sweeping again on every later bar. Under the contract rules
(``contract_rules``) each child is rounded down to the instrument's lot size
(the parent is a whole number of lots, so the final sweep is too). The actor subscribes to
bars only once the first parent arrives (plain runs pay nothing). When a
parent is done an ``AlgoFinished`` event gives its filled quantity and
average price.

Under the same rules a parent stops early when a child is refused for a
reason that would refuse every later child as well: the account cannot pay
or margin it, borrowing is off, trading is halted (:data:`REPEATING`), or a
pre-trade risk limit refused it. An ``AlgoCanceled`` event names the reason
and what had filled; no more children are sent (a cash account's TWAP
bigger than its cash stops at the first refusal instead of sending one
refused child per slot).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tidemark.core.accounts.buying_power import REASONS as ACCOUNT_REASONS
from tidemark.core.bus import Actor, Handler
from tidemark.core.events import (
    BUY,
    AlgoCanceled,
    AlgoFinished,
    Bar,
    Event,
    InstrumentDefinition,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    RiskRejected,
    SubmitAlgo,
    SubmitOrder,
)
from tidemark.core.instruments import on_grid, round_price, to_step

EPSILON = 1e-9

REPEATING = frozenset(ACCOUNT_REASONS)
"""Refusals of a child that every later child would meet too (the risk
engine's refusals count as well)."""


@dataclass
class _Parent:
    cmd: SubmitAlgo
    cumulative: list[float]
    filled: float = 0.0
    notional: float = 0.0
    pending: float = 0.0
    next_slot: int = 0
    children: int = 0
    child_sizes: dict[str, float] = field(default_factory=dict)
    misses: int = 0
    """Limit children in a row that did not fill in full (the retry ladder)."""

    @property
    def remaining(self) -> float:
        return self.cmd.quantity - self.filled - self.pending


class AlgoActor(Actor):
    name = "algos"

    def __init__(self, *, contract_rules: bool = False) -> None:
        self.parents: dict[str, _Parent] = {}
        self._child_parent: dict[str, str] = {}
        self._watching = False
        self.contract_rules = contract_rules
        self.stop_on_refusal = contract_rules
        """Cancel a parent whose child met a refusal that repeats (rules version 2)."""
        self._lots: dict[str, float] = {}
        self._instruments: dict[str, InstrumentDefinition] = {}

    def subscriptions(self) -> Iterable[tuple[type[Event], Handler, bool]]:
        return (
            (InstrumentDefinition, self.on_instrument, False),
            (SubmitAlgo, self.on_algo, False),
            (OrderFilled, self.on_fill, False),
            (OrderCanceled, self.on_child_done, False),
            (OrderRejected, self.on_child_done, False),
            (RiskRejected, self.on_child_done, False),
        )

    def on_instrument(self, inst: InstrumentDefinition) -> None:
        self._instruments[inst.instrument] = inst
        if self.contract_rules and inst.lot_size > 0:
            self._lots[inst.instrument] = inst.lot_size

    def on_algo(self, cmd: SubmitAlgo) -> None:
        if cmd.algo not in ("twap", "pov") or not cmd.quantity > 0:
            raise ValueError(f"algo {cmd.algo_id}: unknown algo {cmd.algo!r} or quantity {cmd.quantity}")
        if cmd.algo == "twap" and (cmd.slots < 1 or cmd.slot_interval <= 0):
            raise ValueError(f"algo {cmd.algo_id}: twap needs slots >= 1 and a slot interval")
        if cmd.algo == "pov" and not 0 < cmd.participation <= 1:
            raise ValueError(f"algo {cmd.algo_id}: pov needs participation in (0, 1]")
        if cmd.child_type not in ("market", "limit") or (cmd.child_type == "limit" and not cmd.offsets):
            raise ValueError(f"algo {cmd.algo_id}: child_type 'market', or 'limit' with offsets")
        weights = list(cmd.weights) or [1.0] * max(cmd.slots, 1)
        if len(weights) != max(cmd.slots, 1) or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"algo {cmd.algo_id}: weights must be {cmd.slots} non-negative numbers")
        total = sum(weights)
        cumulative = []
        running = 0.0
        for w in weights:
            running += w
            cumulative.append(running / total)
        self.parents[cmd.algo_id] = _Parent(cmd, cumulative)
        if not self._watching:
            self._watching = True
            self.bus.subscribe(Bar, self.on_bar, late=True)

    def on_bar(self, bar: Bar) -> None:
        for parent in [p for p in self.parents.values() if p.cmd.instrument == bar.instrument]:
            cmd = parent.cmd
            if cmd.algo == "pov":
                self._child(parent, min(parent.remaining, cmd.participation * bar.volume), bar)
                continue
            if bar.ts <= cmd.start_ts:
                continue
            slot = min(
                cmd.slots - 1, (bar.ts - cmd.start_ts - 1) // cmd.slot_interval
            )  # slot k: (start+k*dt, start+(k+1)*dt]
            if slot < parent.next_slot and slot < cmd.slots - 1:
                continue
            parent.next_slot = slot + 1
            if slot == cmd.slots - 1:
                self._child(parent, parent.remaining, None)  # final sweep, at market
                continue
            size = cmd.quantity * parent.cumulative[slot] - parent.filled - parent.pending
            if cmd.participation > 0:
                size = min(size, cmd.participation * bar.volume)
            self._child(parent, size, bar)

    def _limit_price(self, parent: _Parent, bar: Bar) -> float:
        """The next limit child's price: the retry ladder off the bar just closed."""
        cmd = parent.cmd
        offset = cmd.offsets[min(parent.misses, len(cmd.offsets) - 1)]
        buy = cmd.side == BUY
        price = bar.close + (offset if buy else -offset) * (bar.high - bar.low)
        inst = self._instruments.get(cmd.instrument)
        if self.contract_rules and inst is not None:
            price = round_price(inst, price, up=not buy)
        return price

    def _child(self, parent: _Parent, size: float, bar: Bar | None) -> None:
        cmd = parent.cmd
        lot = self._lots.get(cmd.instrument)
        if lot is not None:
            size = to_step(size, lot)
        if size <= EPSILON:
            return
        limit = cmd.child_type == "limit" and bar is not None
        price = self._limit_price(parent, bar) if limit and bar is not None else 0.0
        if limit and not price > 0.0:
            return
        parent.children += 1
        child_id = f"{cmd.algo_id}.{parent.children}"
        parent.pending += size
        parent.child_sizes[child_id] = size
        self._child_parent[child_id] = cmd.algo_id
        bus = self.bus
        bus.publish(
            SubmitOrder(
                bus.now(),
                cmd.strategy,
                child_id,
                cmd.instrument,
                cmd.side,
                size,
                order_type="limit" if limit else "market",
                price=price,
                tif="IOC",
                parent_id=cmd.algo_id,
                tag=cmd.tag,
            )
        )

    def on_fill(self, fill: OrderFilled) -> None:
        algo_id = self._child_parent.get(fill.order_id)
        if algo_id is None:
            return
        parent = self.parents.get(algo_id)
        if parent is None:
            return  # its parent was canceled
        lot = self._lots.get(fill.instrument)
        parent.filled = on_grid(parent.filled + fill.quantity, lot) if lot else parent.filled + fill.quantity
        parent.notional += fill.quantity * fill.price
        parent.pending -= fill.quantity
        if fill.leaves == 0.0:
            parent.misses = 0
            self._settle_child(parent, fill.order_id, 0.0)
        self._maybe_finish(parent)

    def on_child_done(self, event: OrderCanceled | OrderRejected | RiskRejected) -> None:
        algo_id = self._child_parent.get(event.order_id)
        if algo_id is None:
            return
        parent = self.parents.get(algo_id)
        if parent is None:
            return
        unfilled = event.leaves if isinstance(event, OrderCanceled) else parent.child_sizes.get(event.order_id, 0.0)
        if unfilled > 0.0:
            parent.misses += 1
        self._settle_child(parent, event.order_id, unfilled)
        if self.stop_on_refusal and (isinstance(event, RiskRejected) or event.reason in REPEATING):
            self._cancel(parent, event)
        elif self.stop_on_refusal and not isinstance(event, OrderCanceled) and parent.next_slot >= parent.cmd.slots:
            self._finish(parent)  # the final sweep was refused (rules v2): done with what filled

    def _cancel(self, parent: _Parent, refusal: OrderCanceled | OrderRejected | RiskRejected) -> None:
        """Stop ``parent``: its last child met a refusal its next ones would meet too."""
        cmd = parent.cmd
        del self.parents[cmd.algo_id]
        avg = parent.notional / parent.filled if parent.filled else 0.0
        detail = getattr(refusal, "detail", "")
        bus = self.bus
        bus.publish(
            AlgoCanceled(
                bus.now(),
                cmd.strategy,
                cmd.algo_id,
                cmd.instrument,
                cmd.quantity,
                parent.filled,
                avg,
                parent.children,
                refusal.reason,
                f"child {refusal.order_id}: {detail}" if detail else f"child {refusal.order_id}",
            )
        )

    def _settle_child(self, parent: _Parent, child_id: str, unfilled: float) -> None:
        parent.child_sizes.pop(child_id, None)
        parent.pending = max(0.0, parent.pending - unfilled)
        if not parent.child_sizes:
            parent.pending = 0.0

    def _maybe_finish(self, parent: _Parent) -> None:
        cmd = parent.cmd
        if parent.filled < cmd.quantity - EPSILON * max(1.0, cmd.quantity):
            return
        self._finish(parent)

    def _finish(self, parent: _Parent) -> None:
        cmd = parent.cmd
        if self.parents.pop(cmd.algo_id, None) is None:
            return
        avg = parent.notional / parent.filled if parent.filled else 0.0
        bus = self.bus
        bus.publish(
            AlgoFinished(
                bus.now(), cmd.strategy, cmd.algo_id, cmd.instrument, cmd.quantity, parent.filled, avg, parent.children
            )
        )
