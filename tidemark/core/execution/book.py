"""A level-2 order book kept from a snapshot plus sequenced diffs.

Sequencing follows Binance's rules, expressed on :class:`BookDelta` fields:

* a diff whose last id ``update_id`` is at or below the book's id is old and
  dropped (counted in ``dropped``);
* the first diff after a snapshot must straddle it:
  ``first_update_id <= book id + 1 <= update_id``;
* later diffs must chain: ``prev_update_id == book id`` when the feed gives
  ``prev_update_id`` (futures), else ``first_update_id == book id + 1`` (spot);
* a size of 0 removes the level.

A broken chain, or a crossed book after a diff, makes the book *stale*: it
says why and refuses to be walked until a new snapshot resynchronises it.
No fill is ever taken from a stale book.
"""

from __future__ import annotations

from dataclasses import dataclass

from tidemark.core.events import BookDelta, BookSnapshot

GAP = "sequence_gap"
CROSSED = "crossed_book"
NO_SNAPSHOT = "no_snapshot"


@dataclass(frozen=True, slots=True)
class Walk:
    """Result of walking the book: ``filled`` at ``vwap`` over ``levels``."""

    filled: float
    vwap: float
    levels: int
    remaining: float


class OrderBook:
    def __init__(self, instrument: str) -> None:
        self.instrument = instrument
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.update_id = 0
        self.stale_reason: str | None = NO_SNAPSHOT
        self.dropped = 0
        self._synced = False

    @property
    def stale(self) -> bool:
        return self.stale_reason is not None

    def apply_snapshot(self, snapshot: BookSnapshot) -> None:
        self.bids = {p: s for p, s in zip(snapshot.bid_prices, snapshot.bid_sizes, strict=True) if s > 0}
        self.asks = {p: s for p, s in zip(snapshot.ask_prices, snapshot.ask_sizes, strict=True) if s > 0}
        self.update_id = snapshot.update_id
        self.stale_reason = None
        self._synced = False

    def apply_delta(self, delta: BookDelta) -> str | None:
        """Apply one diff; returns the reason the book went stale, if it did."""
        if self.stale_reason is not None:
            return self.stale_reason
        if delta.update_id <= self.update_id:
            self.dropped += 1
            return None
        if not self._synced:
            if not delta.first_update_id <= self.update_id + 1 <= delta.update_id:
                return self._break(GAP)
            self._synced = True
        elif delta.prev_update_id:
            if delta.prev_update_id != self.update_id:
                return self._break(GAP)
        elif delta.first_update_id != self.update_id + 1:
            return self._break(GAP)
        _apply(self.bids, delta.bid_prices, delta.bid_sizes)
        _apply(self.asks, delta.ask_prices, delta.ask_sizes)
        self.update_id = delta.update_id
        if self.bids and self.asks and max(self.bids) >= min(self.asks):
            return self._break(CROSSED)
        return None

    def _break(self, reason: str) -> str:
        self.stale_reason = reason
        return reason

    def best_bid(self) -> float | None:
        return max(self.bids) if self.bids else None

    def best_ask(self) -> float | None:
        return min(self.asks) if self.asks else None

    def levels(self, side: str, depth: int | None = None) -> list[tuple[float, float]]:
        """``side`` 'bids' (descending) or 'asks' (ascending)."""
        book = self.bids if side == "bids" else self.asks
        prices = sorted(book, reverse=side == "bids")
        return [(p, book[p]) for p in prices[:depth]]

    def walk(self, side: str, quantity: float) -> Walk:
        """Fill a market order of ``quantity`` (``side`` buy takes asks, sell
        takes bids) level by level; partial when depth runs out."""
        if self.stale_reason is not None:
            raise ValueError(f"{self.instrument}: book is stale ({self.stale_reason}); no fill from a stale book")
        levels = self.levels("asks" if side == "buy" else "bids")
        remaining = quantity
        cost = 0.0
        used = 0
        for price, size in levels:
            if remaining <= 0:
                break
            take = min(size, remaining)
            cost += take * price
            remaining -= take
            used += 1
        filled = quantity - remaining
        return Walk(filled, cost / filled if filled else 0.0, used, remaining)


def _apply(book: dict[float, float], prices: tuple[float, ...], sizes: tuple[float, ...]) -> None:
    for price, size in zip(prices, sizes, strict=True):
        if size == 0.0:
            book.pop(price, None)
        else:
            book[price] = size
