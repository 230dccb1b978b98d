"""Order state inside the simulated venue (not an event: events record it).

Lifecycle: ACCEPTED -> (TRIGGERED) -> PARTIALLY_FILLED -> FILLED, or
CANCELED / EXPIRED; a refused submission is REJECTED and never accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from tidemark.core.events import SubmitOrder

MARKET: Final = "market"
LIMIT: Final = "limit"
STOP: Final = "stop"
STOP_LIMIT: Final = "stop_limit"
MARKET_ON_CLOSE: Final = "market_on_close"
"""Fills at the close of the bar it is sent on (after ``latency_bars``),
whatever the run's fill model: a time stop, a liquidation on the last bar."""
MARKET_ON_OPEN: Final = "market_on_open"
"""Fills at the open of the next bar, whatever the run's fill model."""
ORDER_TYPES: Final = (MARKET, LIMIT, STOP, STOP_LIMIT, MARKET_ON_CLOSE, MARKET_ON_OPEN)
TAKER_TYPES: Final = (MARKET, STOP, MARKET_ON_CLOSE, MARKET_ON_OPEN)
"""Types that take liquidity when they fill (slippage and taker fees)."""
TIFS: Final = ("GTC", "IOC", "FOK", "GTD", "OPG")
"""``OPG`` (at the opening): a market order sent in ``on_open`` fills at the
open of the step opening now, on every instrument (``ctx`` sets it there)."""

ACCEPTED: Final = "accepted"
TRIGGERED: Final = "triggered"
PARTIALLY_FILLED: Final = "partially_filled"
FILLED: Final = "filled"
CANCELED: Final = "canceled"
EXPIRED: Final = "expired"
REJECTED: Final = "rejected"
TERMINAL: Final = frozenset({FILLED, CANCELED, EXPIRED, REJECTED})


@dataclass(slots=True, eq=False)
class Order:
    """A working order. ``wait``: bars still to skip (latency);
    ``fresh``: not yet matched against any bar (IOC/FOK decide then);
    ``sent_ts``: bus time the order was sent (book venue latency)."""

    cmd: SubmitOrder
    seq: int
    quantity: float
    wait: int = 0
    filled: float = 0.0
    state: str = ACCEPTED
    fresh: bool = True
    triggered: bool = False
    filled_at_open_ts: int = -1
    oco: str = ""
    sent_ts: int = 0
    children: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return self.cmd.order_id

    @property
    def leaves(self) -> float:
        return self.quantity - self.filled

    @property
    def active(self) -> bool:
        return self.state not in TERMINAL


def by_submission(order: Order) -> int:
    """Sort key: the order in which orders were accepted."""
    return order.seq


def validate(cmd: SubmitOrder) -> str | None:
    """A reason code if the command is malformed, else None."""
    if cmd.side not in ("buy", "sell"):
        return "bad_side"
    if not cmd.quantity > 0.0:
        return "bad_quantity"
    if cmd.order_type not in ORDER_TYPES:
        return "bad_order_type"
    if cmd.tif not in TIFS:
        return "bad_tif"
    if cmd.order_type in (LIMIT, STOP_LIMIT) and not cmd.price > 0.0:
        return "missing_limit_price"
    if cmd.order_type in (STOP, STOP_LIMIT) and not cmd.trigger_price > 0.0:
        return "missing_trigger_price"
    if cmd.tif == "GTD" and cmd.expire_ts <= 0:
        return "missing_expire_ts"
    if cmd.post_only and cmd.order_type != LIMIT:
        return "post_only_needs_limit"
    if cmd.tif == "OPG" and cmd.order_type != MARKET:
        return "opg_needs_market"
    return None
