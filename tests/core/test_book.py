"""Order book from recorded Binance captures: agrees with an independent
straightforward reconstruction at every update and with the exchange's own
best bid/ask; gaps and crossed books go stale; the book walk is hand-checked."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tidemark.core.events import BookDelta, BookSnapshot
from tidemark.core.execution.book import CROSSED, GAP, OrderBook


def side(levels: list[list[str]]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return tuple(float(p) for p, _ in levels), tuple(float(q) for _, q in levels)


def capture(path: Path) -> Iterator[tuple[str, object]]:
    """('snapshot' | 'delta' | 'ticker', event or dict) in file order."""
    with gzip.open(path, "rt") as handle:
        for line in handle:
            stamp, body = line.split(" ", 1)
            msg = json.loads(body)
            if "lastUpdateId" in msg:
                bids, asks = side(msg["bids"]), side(msg["asks"])
                yield "snapshot", BookSnapshot(int(stamp), "BTCUSDT", *bids, *asks, update_id=msg["lastUpdateId"])
                continue
            data = msg["data"]
            if data.get("e") == "depthUpdate":
                bids, asks = side(data["b"]), side(data["a"])
                yield "delta", BookDelta(int(stamp), "BTCUSDT", *bids, *asks, data["U"], data["u"], data.get("pu", 0))
            elif msg["stream"].endswith("bookTicker"):
                yield "ticker", data


@pytest.mark.parametrize("market", ["hftbacktest_binance_usdm", "hftbacktest_binance_spot"])
def test_book_matches_an_independent_reconstruction_and_the_exchange(shared_data: Path, market: str) -> None:
    book = OrderBook("BTCUSDT")
    naive_bids: dict[float, float] = {}
    naive_asks: dict[float, float] = {}
    last = None
    applied = checked_tickers = 0
    events = list(capture(shared_data / "book" / market / "btcusdt_20240808.gz"))
    first_snapshot = next(k for k, (kind, _) in enumerate(events) if kind == "snapshot")
    buffered = [e for e in events[:first_snapshot] if e[0] == "delta"]  # Binance: buffer diffs, then replay
    ordered = [events[first_snapshot], *buffered, *events[first_snapshot + 1 :]]
    for kind, item in ordered:
        if kind == "snapshot":
            assert isinstance(item, BookSnapshot)
            book.apply_snapshot(item)
            naive_bids = dict(zip(item.bid_prices, item.bid_sizes, strict=True))
            naive_asks = dict(zip(item.ask_prices, item.ask_sizes, strict=True))
            last = item.update_id
        elif kind == "delta" and last is not None:
            assert isinstance(item, BookDelta)
            assert book.apply_delta(item) is None, f"stale at update {item.update_id}: {book.stale_reason}"
            if item.update_id <= last:
                continue
            for prices, sizes, naive in (
                (item.bid_prices, item.bid_sizes, naive_bids),
                (item.ask_prices, item.ask_sizes, naive_asks),
            ):
                for p, s in zip(prices, sizes, strict=True):
                    if s == 0:
                        naive.pop(p, None)
                    else:
                        naive[p] = s
            last = item.update_id
            applied += 1
            assert book.bids == naive_bids and book.asks == naive_asks
        elif kind == "ticker" and last is not None and isinstance(item, dict) and int(item["u"]) == book.update_id:
            assert (book.best_bid(), book.best_ask()) == (float(item["b"]), float(item["a"]))
            checked_tickers += 1
    assert applied > 1_000 and not book.stale
    if market.endswith("usdm"):
        assert checked_tickers > 50  # best bid/ask equal the exchange's own at every coinciding id
    else:
        assert checked_tickers == 0  # spot's 100 ms depth ids never coincide with bookTicker ids in this capture


def test_gap_makes_the_book_stale_and_a_snapshot_resyncs() -> None:
    book = OrderBook("X")
    book.apply_snapshot(BookSnapshot(0, "X", (99.0,), (1.0,), (101.0,), (1.0,), update_id=10))
    assert book.apply_delta(BookDelta(1, "X", (99.5,), (2.0,), (), (), 9, 11, 0)) is None
    assert book.apply_delta(BookDelta(2, "X", (), (), (), (), 5, 8, 0)) is None and book.dropped == 1  # old: dropped
    assert book.apply_delta(BookDelta(3, "X", (98.0,), (1.0,), (), (), 13, 14, 0)) == GAP  # 12 is missing
    with pytest.raises(ValueError, match="stale"):
        book.walk("buy", 1.0)
    book.apply_snapshot(BookSnapshot(4, "X", (99.0,), (1.0,), (101.0,), (1.0,), update_id=20))
    assert not book.stale and book.walk("buy", 1.0).vwap == 101.0


def test_crossed_book_goes_stale() -> None:
    book = OrderBook("X")
    book.apply_snapshot(BookSnapshot(0, "X", (99.0,), (1.0,), (101.0,), (1.0,), update_id=1))
    assert book.apply_delta(BookDelta(1, "X", (102.0,), (1.0,), (), (), 2, 2, 1)) == CROSSED


def test_book_walk_vwap_by_hand() -> None:
    book = OrderBook("X")
    book.apply_snapshot(
        BookSnapshot(0, "X", (99.0, 98.0, 97.0), (1.0, 2.0, 5.0), (100.0, 101.0, 103.0), (0.5, 1.5, 1.0), update_id=1)
    )
    buy = book.walk("buy", 2.5)
    assert (buy.filled, buy.levels, buy.remaining) == (2.5, 3, 0.0)
    assert buy.vwap == pytest.approx((0.5 * 100 + 1.5 * 101 + 0.5 * 103) / 2.5)
    sell = book.walk("sell", 10.0)  # more than the depth: partial
    assert (sell.filled, sell.remaining, sell.levels) == (8.0, 2.0, 3)
    assert sell.vwap == pytest.approx((99 + 2 * 98 + 5 * 97) / 8)
