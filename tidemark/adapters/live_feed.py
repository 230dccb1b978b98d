"""A live market-data feed through ccxt: books, trades, marks and funding.

Each stream runs as its own task and puts tidemark events on one queue, in
arrival order, each stamped with its exchange time (``ts``) and its local
receive time (``ts_recv``, the wall clock; adapters may read it). Fault
reports, and messages without an exchange time (REST snapshots), carry
``ts=0``: the session stamps them with the bus clock, so every ``ts`` stays
in the exchange's time domain (which may differ from the local clock).

Books: ccxt.pro ``watch_order_book`` where the exchange has websockets (ccxt
applies the exchange's snapshot+diff sequence rules and raises on a gap),
else ``fetch_order_book`` polling. The top ``depth`` levels are journaled: a
``BookSnapshot`` after every (re)subscription, then a ``BookDelta`` per
update holding exactly the levels that changed (size 0 = removed), chained
by update id. A mirror :class:`~core.book.OrderBook` applies the same
events; a crossed book, a sequence error or silence beyond ``max_book_age``
is reported as a ``FeedGap`` (reason ``book:<cause>``) and the stream
resynchronises from a fresh snapshot.

A disconnect seen on another stream of the same websocket also marks the
book stale (``book:connection_lost``): it went silent with the socket.

Trades: ``watch_trades`` (or ``fetch_trades`` polling), deduplicated by
trade id. Tickers: ``fetch_ticker`` every ``ticker_poll`` seconds.
Perpetuals: ``fetch_funding_rate`` every ``funding_poll`` seconds gives a
``MarkPrice`` (with the next funding time); when the next funding time
rolls over, the settled rate for the time that passed is read from
``fetch_funding_rate_history`` and fed as a ``FundingRate``. If it cannot be
had, nothing is invented: the funding actor reports it unavailable.

Faults are classified (:mod:`adapters.ccxt_errors`): every retry loop is
bounded, every fault becomes a ``FeedGap`` event and a log line, and a fatal
error stops the session with a one-line message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tidemark.adapters import ccxt_errors
from tidemark.core.events import BookDelta, BookSnapshot, Event, FeedGap, FundingRate, MarkPrice, Ticker, Trade
from tidemark.core.execution.book import OrderBook

MS = 1_000_000


class FeedError(RuntimeError):
    """The feed cannot continue (fatal error, or retries exhausted)."""


@dataclass(frozen=True)
class FeedSettings:
    depth: int = 50
    max_book_age: float = 10.0
    poll_interval: float = 1.0
    funding_poll: float = 5.0
    ticker_poll: float = 5.0  # seconds between tickers; 0: none
    retries: int = 8
    websocket: bool = True


def wall_ns() -> int:
    """Local receive stamp (journaled data, never read inside core)."""
    return time.time_ns()


def _levels(side: list[Any], depth: int) -> dict[float, float]:
    return {float(level[0]): float(level[1]) for level in side[:depth]}


def _changes(old: dict[float, float], new: dict[float, float]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    prices = [p for p, s in new.items() if old.get(p) != s]
    prices.extend(p for p in old if p not in new)
    prices.sort()
    return tuple(prices), tuple(new.get(p, 0.0) for p in prices)


class LiveFeed:
    """The streams of one exchange for a list of symbols."""

    def __init__(
        self,
        exchange: Any,
        symbols: list[str],
        perpetuals: list[str],
        settings: FeedSettings,
        put: Callable[[Event], None],
        log: Any,
    ) -> None:
        self.exchange = exchange
        self.symbols = symbols
        self.perpetuals = perpetuals
        self.settings = settings
        self.put = put
        self.log = log
        self.websocket = settings.websocket and bool(exchange.has.get("watchOrderBook"))
        self.book_seen: dict[str, float] = {}
        self._resync: dict[str, bool] = {s: True for s in symbols}
        self._stale: dict[str, bool] = {s: True for s in symbols}
        self.faults = 0

    # -- plumbing ---------------------------------------------------------------

    def _fault(self, symbol: str, stream: str, error: BaseException, attempt: int) -> str:
        kind = ccxt_errors.classify(error)
        cause = ccxt_errors.reason(error)
        detail = ccxt_errors.one_line(error)
        self.faults += 1
        self.put(FeedGap(0, symbol, f"{stream}:{cause}", detail, False, wall_ns()))
        self.log.warning("feed_fault", symbol=symbol, stream=stream, kind=kind, attempt=attempt, error=detail)
        if kind == ccxt_errors.FATAL or kind == ccxt_errors.STOP:
            raise FeedError(f"{symbol} {stream}: {detail}") from error
        if attempt > self.settings.retries:
            raise FeedError(f"{symbol} {stream}: gave up after {self.settings.retries} retries: {detail}") from error
        return kind

    async def _retrying(
        self,
        symbol: str,
        stream: str,
        call: Callable[[], Awaitable[Any]],
        on_fault: Callable[[str], Awaitable[None]] | None = None,
    ) -> Any:
        """``await call()`` until it succeeds; each failure is reported
        (:meth:`_fault`, which raises when fatal or out of retries), then
        ``on_fault(kind)`` runs and the loop backs off (retry) or goes again
        at once (resubscribe)."""
        attempt = 0
        while True:
            try:
                return await call()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                kind = self._fault(symbol, stream, exc, attempt)
                if on_fault is not None:
                    await on_fault(kind)
                await asyncio.sleep(ccxt_errors.backoff(attempt) if kind == ccxt_errors.RETRY else 0.05)

    async def run(self) -> None:
        tasks = []
        for symbol in self.symbols:
            tasks.append(self._books(symbol))
            tasks.append(self._trades(symbol))
            if symbol in self.perpetuals:
                tasks.append(self._funding(symbol))
            if self.settings.ticker_poll > 0 and self.exchange.has.get("fetchTicker"):
                tasks.append(self._tickers(symbol))
        tasks.append(self._watchdog())
        await asyncio.gather(*tasks)

    # -- books ------------------------------------------------------------------

    async def _books(self, symbol: str) -> None:
        ex = self.exchange
        depth = self.settings.depth
        mirror = OrderBook(symbol)
        bids: dict[float, float] = {}
        asks: dict[float, float] = {}
        last_id = 0

        async def fetch() -> Any:
            if self.websocket and self._resync[symbol] and symbol in self.book_seen:
                # Resubscribing: if the stream does not come back in time,
                # resync from a REST snapshot rather than sit stale.
                try:
                    return await asyncio.wait_for(ex.watch_order_book(symbol), self.settings.max_book_age)
                except TimeoutError:
                    self.log.warning("resync_by_rest", symbol=symbol)
                    return await ex.fetch_order_book(symbol, depth)
            if self.websocket:
                return await ex.watch_order_book(symbol)
            book = await ex.fetch_order_book(symbol, depth)
            await asyncio.sleep(self.settings.poll_interval)
            return book

        async def on_book_fault(kind: str) -> None:
            self._mark_stale(symbol)
            if kind == ccxt_errors.RESUBSCRIBE:
                await self._drop_book(symbol)

        while True:
            book = await self._retrying(symbol, "book", fetch, on_book_fault)
            recv = wall_ns()
            self.book_seen[symbol] = time.monotonic()
            ts = int(book.get("timestamp") or 0) * MS
            nonce = book.get("nonce")
            update_id = nonce if isinstance(nonce, int) and nonce > last_id else last_id + 1
            new_bids = _levels(book["bids"], depth)
            new_asks = _levels(book["asks"], depth)
            event: BookSnapshot | BookDelta
            if self._resync[symbol]:
                event = BookSnapshot(
                    ts,
                    symbol,
                    tuple(new_bids),
                    tuple(new_bids.values()),
                    tuple(new_asks),
                    tuple(new_asks.values()),
                    update_id,
                    recv,
                )
                mirror.apply_snapshot(event)
                self._resync[symbol] = False
                self._stale[symbol] = False
            else:
                bid_p, bid_s = _changes(bids, new_bids)
                ask_p, ask_s = _changes(asks, new_asks)
                if not bid_p and not ask_p:
                    continue
                event = BookDelta(ts, symbol, bid_p, bid_s, ask_p, ask_s, last_id + 1, update_id, last_id, recv)
                broken = mirror.apply_delta(event)
                if broken is not None:
                    self.put(event)
                    self.faults += 1
                    self.put(FeedGap(ts, symbol, f"book:{broken}", f"after update {update_id}", False, recv))
                    self.log.warning("book_broken", symbol=symbol, reason=broken, update_id=update_id)
                    self._mark_stale(symbol)
                    await self._drop_book(symbol)
                    continue
            bids, asks, last_id = new_bids, new_asks, update_id
            self.put(event)

    def _mark_stale(self, symbol: str) -> None:
        """The journaled book is no longer known to be current: the next
        update is journaled as a fresh snapshot."""
        self._resync[symbol] = True
        self._stale[symbol] = True

    async def _connection_lost(self, symbol: str, kind: str) -> None:
        """A network fault on another stream of a shared websocket: the book
        went silent with it. Report the book stale (once) and resync."""
        if not self.websocket or kind != ccxt_errors.RETRY or self._stale[symbol]:
            return
        self._mark_stale(symbol)
        self.faults += 1
        detail = "a websocket shared with the book failed"
        self.put(FeedGap(0, symbol, "book:connection_lost", detail, False, wall_ns()))
        self.log.warning("book_stale", symbol=symbol, why="connection_lost")

    async def _drop_book(self, symbol: str) -> None:
        """Make ccxt forget its book so the next watch starts from a snapshot."""
        ex = self.exchange
        if not self.websocket:
            return
        try:
            if ex.has.get("unWatchOrderBook"):
                await ex.un_watch_order_book(symbol)
        except Exception as exc:  # best effort: the next snapshot is taken as a resync either way
            self.log.warning("unwatch_failed", symbol=symbol, error=ccxt_errors.one_line(exc))

    async def _watchdog(self) -> None:
        """Report books silent for longer than ``max_book_age`` (once each);
        the next update arrives as a fresh snapshot."""
        limit = self.settings.max_book_age
        while True:
            await asyncio.sleep(min(1.0, limit / 2))
            now = time.monotonic()
            for symbol in self.symbols:
                seen = self.book_seen.get(symbol)
                if seen is not None and now - seen > limit and not self._stale[symbol]:
                    self._mark_stale(symbol)
                    self.faults += 1
                    detail = f"no update for {now - seen:.1f}s"
                    self.put(FeedGap(0, symbol, "book:stale_age", detail, False, wall_ns()))
                    self.log.warning("book_stale", symbol=symbol, age=round(now - seen, 1))

    # -- trades -----------------------------------------------------------------------

    async def _trades(self, symbol: str) -> None:
        ex = self.exchange
        websocket = self.websocket and bool(ex.has.get("watchTrades"))
        last_key: tuple[int, str] = (0, "")

        async def fetch() -> Any:
            if websocket:
                return await ex.watch_trades(symbol)
            trades = await ex.fetch_trades(symbol)
            await asyncio.sleep(self.settings.poll_interval)
            return trades

        while True:
            trades = await self._retrying(symbol, "trades", fetch, lambda kind: self._connection_lost(symbol, kind))
            recv = wall_ns()
            for trade in trades:
                stamp = int(trade.get("timestamp") or 0)
                key = (stamp, str(trade.get("id") or ""))
                if key <= last_key:
                    continue
                last_key = key
                self.put(
                    Trade(
                        stamp * MS,
                        symbol,
                        float(trade["price"]),
                        float(trade["amount"]),
                        str(trade.get("side") or ""),
                        key[1],
                        recv,
                    )
                )

    # -- tickers -----------------------------------------------------------------------------

    async def _tickers(self, symbol: str) -> None:
        """Poll the exchange's ticker (last price, 24 h volumes, best bid/ask
        where the exchange's ticker has them)."""
        ex = self.exchange
        while True:
            info = await self._retrying(symbol, "ticker", lambda: ex.fetch_ticker(symbol))
            recv = wall_ns()
            last = info.get("last") or info.get("close")
            if last:
                self.put(
                    Ticker(
                        int(info.get("timestamp") or 0) * MS,
                        symbol,
                        float(last),
                        float(info.get("bid") or 0.0),
                        float(info.get("ask") or 0.0),
                        float(info.get("baseVolume") or 0.0),
                        float(info.get("quoteVolume") or 0.0),
                        recv,
                    )
                )
            await asyncio.sleep(self.settings.ticker_poll)

    # -- marks and funding ----------------------------------------------------------------

    async def _funding(self, symbol: str) -> None:
        ex = self.exchange
        next_ts = 0
        while True:
            info = await self._retrying(symbol, "funding", lambda: ex.fetch_funding_rate(symbol))
            recv = wall_ns()
            ts = int(info.get("timestamp") or 0) * MS
            upcoming = int(info.get("fundingTimestamp") or 0) * MS
            mark = info.get("markPrice")
            if mark:
                index = float(info.get("indexPrice") or 0.0)
                self.put(MarkPrice(ts, symbol, float(mark), index, recv, upcoming))
            if next_ts and upcoming > next_ts:
                await self._settled_rate(symbol, next_ts, upcoming, ts)
            if upcoming:
                next_ts = upcoming
            await asyncio.sleep(self.settings.funding_poll)

    async def _settled_rate(self, symbol: str, funding_ts: int, upcoming: int, ts: int) -> None:
        """Feed the rate settled at ``funding_ts`` (from history), if it can be had."""
        ex = self.exchange
        since = funding_ts // MS - 60_000
        for attempt in range(1, self.settings.retries + 1):
            try:
                history = await ex.fetch_funding_rate_history(symbol, since, 10)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                kind = ccxt_errors.classify(exc)
                self.faults += 1
                cause = f"funding:{ccxt_errors.reason(exc)}"
                self.put(FeedGap(0, symbol, cause, ccxt_errors.one_line(exc), False, wall_ns()))
                if kind != ccxt_errors.RETRY:
                    return
                await asyncio.sleep(ccxt_errors.backoff(attempt))
        else:
            self.log.warning("funding_unavailable", symbol=symbol, funding_ts=funding_ts, why="retries exhausted")
            return
        for row in history:
            stamp = int(row.get("timestamp") or 0) * MS
            if abs(stamp - funding_ts) <= 60_000 * MS and row.get("fundingRate") is not None:
                recv = wall_ns()
                self.put(FundingRate(ts, symbol, float(row["fundingRate"]), upcoming, upcoming - funding_ts, recv))
                return
        self.log.warning("funding_unavailable", symbol=symbol, funding_ts=funding_ts, why="no print in history")
