"""What book-driven strategies see: a read-only book view and top-of-book quotes.

Both are derived from the journaled ``BookSnapshot``/``BookDelta`` inputs (a
strategy runner keeps its own :class:`~core.book.OrderBook` per instrument),
so a replay shows a strategy exactly the books it saw live. Prices are in the
quote currency, sizes in base units (contracts for contract markets).
"""

from __future__ import annotations

from tidemark.core.events import Quote
from tidemark.core.execution.book import OrderBook


class BookView:
    """Read-only access to a strategy's copy of one order book."""

    __slots__ = ("_book",)

    def __init__(self, book: OrderBook) -> None:
        self._book = book

    @property
    def instrument(self) -> str:
        return self._book.instrument

    @property
    def stale(self) -> bool:
        """True until a snapshot arrives, and after a gap until the resync."""
        return self._book.stale

    @property
    def update_id(self) -> int:
        return self._book.update_id

    @property
    def best_bid(self) -> float | None:
        return self._book.best_bid()

    @property
    def best_ask(self) -> float | None:
        return self._book.best_ask()

    @property
    def mid(self) -> float | None:
        bid, ask = self._book.best_bid(), self._book.best_ask()
        return None if bid is None or ask is None else (bid + ask) / 2

    @property
    def spread(self) -> float | None:
        bid, ask = self._book.best_bid(), self._book.best_ask()
        return None if bid is None or ask is None else ask - bid

    def bids(self, depth: int | None = None) -> list[tuple[float, float]]:
        """(price, size) from the best bid down."""
        return self._book.levels("bids", depth)

    def asks(self, depth: int | None = None) -> list[tuple[float, float]]:
        """(price, size) from the best ask up."""
        return self._book.levels("asks", depth)

    def depth(self, side: str, within: float) -> float:
        """Size resting on ``side`` ('bids' or 'asks') within ``within`` (a
        price distance) of that side's best price."""
        levels = self._book.levels(side)
        if not levels:
            return 0.0
        best = levels[0][0]
        return sum(size for price, size in levels if abs(price - best) <= within)

    def quote(self, ts: int) -> Quote | None:
        bids, asks = self._book.bids, self._book.asks
        if not bids or not asks:
            return None
        bid, ask = max(bids), min(asks)
        return Quote(ts, self._book.instrument, bid, bids[bid], ask, asks[ask])
