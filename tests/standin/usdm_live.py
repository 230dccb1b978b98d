"""A local stand-in for Binance USD-M's live market data (REST + websocket).

It replays a recorded hftbacktest capture (REST depth snapshot, diff-depth,
trades) on a clock that runs ``speed`` times faster than real time from the
capture's first exchange timestamp (plus ``skip_ms``; the clock starts at the
first request that reads it), and serves, consistently with that clock:

* ``wss://.../ws`` streams (``<sym>@depth@100ms``, ``<sym>@trade``) with
  Binance's SUBSCRIBE protocol, raw (non-combined) payloads;
* ``GET /fapi/v1/depth``: the book as rebuilt from the capture up to now,
  with ``lastUpdateId`` = the last diff applied (so diffs chain onto it);
* ``GET /fapi/v1/premiumIndex``: mark = last trade price, the next 8-hour
  funding time and ``time`` on the stand-in clock, ``lastFundingRate`` =
  :attr:`predicted_rate`;
* ``GET /fapi/v1/ticker/24hr``: last trade price, volumes traded since the
  clock started, ``closeTime`` on the stand-in clock;
* ``GET /fapi/v1/fundingRate``: prints from :attr:`funding_prints`
  (``{funding ms: rate}``; none by default: the capture window has no
  recorded print);
* everything else (exchangeInfo, ...) from the recorded REST responses.

Faults (each counted in :attr:`faults_done`): ``drop_depth`` (skip the n-th
diff sent: a sequence gap), ``cross_depth`` (add a bid above the best ask to
the n-th diff: a crossed book), ``disconnect_after`` (close every stream
socket after n messages), ``pause_depth`` (stop sending diffs for a while),
``fail_next`` (HTTP 429 on the next REST requests), ``delay_next`` (answer
the next REST requests, or only those for ``delay_path`` when it is set,
after ``delay`` seconds: a timeout).
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import time
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from tests.standin.binance import BinanceStandIn

FUNDING_MS = 8 * 3_600_000


@functools.lru_cache(maxsize=4)
def load_capture(path: Path) -> tuple[dict[str, Any], list[tuple[int, str, dict[str, Any]]]]:
    """(REST snapshot, [(exchange ms, kind 'depth'|'trade', payload)]) in file order.

    Read once per test process (about 2 s each time otherwise): every
    stand-in only reads them (a faulty diff is a copy)."""
    snapshot: dict[str, Any] = {}
    messages = []
    with gzip.open(path, "rt") as handle:
        for line in handle:
            _, body = line.split(" ", 1)
            msg = json.loads(body)
            if "lastUpdateId" in msg:
                snapshot = msg
                continue
            data = msg["data"]
            kind = data.get("e")
            if kind == "depthUpdate":
                messages.append((int(data["E"]), "depth", data))
            elif kind == "trade":
                messages.append((int(data["T"]), "trade", data))
    return snapshot, messages


class StraightBook:
    """The plainest possible rebuild: a dict per side, Binance's drop rule."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.bids = {p: q for p, q in snapshot["bids"]}
        self.asks = {p: q for p, q in snapshot["asks"]}
        self.last = int(snapshot["lastUpdateId"])

    def apply(self, diff: dict[str, Any]) -> None:
        if int(diff["u"]) < self.last:
            return
        for book, levels in ((self.bids, diff["b"]), (self.asks, diff["a"])):
            for price, qty in levels:
                if float(qty) == 0.0:
                    book.pop(price, None)
                else:
                    book[price] = qty
        self.last = int(diff["u"])

    def depth(self, limit: int) -> dict[str, Any]:
        bids = sorted(self.bids.items(), key=lambda kv: -float(kv[0]))[:limit]
        asks = sorted(self.asks.items(), key=lambda kv: float(kv[0]))[:limit]
        return {"lastUpdateId": self.last, "bids": [list(b) for b in bids], "asks": [list(a) for a in asks]}


class UsdmLiveStandIn(BinanceStandIn):
    def __init__(self, shared_data: Path, *, speed: float = 30.0, symbol: str = "BTCUSDT", skip_ms: int = 0) -> None:
        super().__init__(shared_data)
        capture = shared_data / "book" / "hftbacktest_binance_usdm" / f"{symbol.lower()}_20240808.gz"
        self.snapshot, self.messages = load_capture(capture)
        self.symbol = symbol
        self.speed = speed
        self.t0 = min(m[0] for m in self.messages)
        self.t_end = max(m[0] for m in self.messages)
        self.clock_start = self.t0 + skip_ms
        self._started: float | None = None
        self.book = StraightBook(self.snapshot)
        self._cursor = 0
        self.last_price = float(next(m[2]["p"] for m in self.messages if m[1] == "trade"))
        self.predicted_rate = 0.0001
        self.traded = 0.0  # base volume traded since the clock started (the ticker's "24 h" volume)
        self.traded_quote = 0.0
        self.funding_prints: dict[int, float] = {}
        self.drop_depth: int | None = None
        self.cross_depth: int | None = None
        self.disconnect_after: int | None = None
        self.pause_depth: tuple[int, float] | None = None
        self.delay_next = 0
        self.delay = 0.0
        self.delay_path: str | None = None
        self.faults_done: dict[str, int] = {}
        self.sent_depth = 0
        self.sockets: list[web.WebSocketResponse] = []

    # -- the clock ----------------------------------------------------------------

    def now_ms(self) -> int:
        if self._started is None:
            self._started = time.monotonic()
        return self.clock_start + int((time.monotonic() - self._started) * self.speed * 1000)

    def finished(self) -> bool:
        return self.now_ms() > self.t_end

    def _advance(self) -> None:
        """Apply every captured message up to the clock to the REST view."""
        now = self.now_ms()
        while self._cursor < len(self.messages) and self.messages[self._cursor][0] <= now:
            _, kind, data = self.messages[self._cursor]
            if kind == "depth":
                self.book.apply(data)
            else:
                self.last_price = float(data["p"])
                self.traded += float(data["q"])
                self.traded_quote += float(data["q"]) * self.last_price
            self._cursor += 1

    def _fault(self, name: str) -> None:
        self.faults_done[name] = self.faults_done.get(name, 0) + 1

    # -- REST ---------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self.stream(request)
        if self.delay_next > 0 and self.delay_path in (None, request.path):
            self.delay_next -= 1
            self._fault("delay")
            await asyncio.sleep(self.delay)
        path, q = request.path, request.query
        if path == "/fapi/v1/depth" and self.fail_next == 0:
            self.requests.append(request.path_qs)
            self._advance()
            return web.json_response(self.book.depth(int(q.get("limit", 1000))))
        if path == "/fapi/v1/premiumIndex" and self.fail_next == 0:
            self.requests.append(request.path_qs)
            self._advance()
            now = self.now_ms()
            mark = f"{self.last_price:.2f}"
            return web.json_response(
                {
                    "symbol": q.get("symbol", self.symbol),
                    "markPrice": mark,
                    "indexPrice": mark,
                    "estimatedSettlePrice": mark,
                    "lastFundingRate": repr(self.predicted_rate),
                    "interestRate": "0.00010000",
                    "nextFundingTime": (now // FUNDING_MS + 1) * FUNDING_MS,
                    "time": now,
                }
            )
        if path == "/fapi/v1/ticker/24hr" and self.fail_next == 0:
            self.requests.append(request.path_qs)
            self._advance()
            now = self.now_ms()
            last = f"{self.last_price:.2f}"
            return web.json_response(
                {
                    "symbol": q.get("symbol", self.symbol),
                    "lastPrice": last,
                    "openPrice": last,
                    "highPrice": last,
                    "lowPrice": last,
                    "volume": f"{self.traded:.3f}",
                    "quoteVolume": f"{self.traded_quote:.2f}",
                    "openTime": now - 86_400_000,
                    "closeTime": now,
                    "count": 1,
                }
            )
        if path == "/fapi/v1/fundingRate" and self.fail_next == 0:
            self.requests.append(request.path_qs)
            start = int(q.get("startTime", 0))
            rows = [
                {"symbol": q.get("symbol"), "fundingTime": t, "fundingRate": repr(r), "markPrice": ""}
                for t, r in sorted(self.funding_prints.items())
                if t >= start
            ]
            return web.json_response(rows[: int(q.get("limit", 100))])
        if self.fail_next:
            self._fault("429")
        return await super().handle(request)

    # -- websocket ------------------------------------------------------------------------

    async def stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.sockets.append(ws)
        topics: set[str] = set()
        sender: asyncio.Task[None] | None = None
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            body = json.loads(msg.data)
            if body.get("method") == "SUBSCRIBE":
                topics.update(str(p).split("@")[1] for p in body.get("params", []))
                await ws.send_json({"result": None, "id": body.get("id")})
                if sender is None:
                    sender = asyncio.ensure_future(self._send(ws, topics))
            elif body.get("method") == "UNSUBSCRIBE":
                for p in body.get("params", []):
                    topics.discard(str(p).split("@")[1])
                await ws.send_json({"result": None, "id": body.get("id")})
        if sender is not None:
            sender.cancel()
        return ws

    async def _send(self, ws: web.WebSocketResponse, topics: set[str]) -> None:
        now = self.now_ms()
        k = next((i for i, m in enumerate(self.messages) if m[0] > now), len(self.messages))
        sent = 0
        paused_until = 0.0
        while k < len(self.messages) and not ws.closed:
            stamp, kind, data = self.messages[k]
            wait = (stamp - self.now_ms()) / 1000 / self.speed
            if wait > 0:
                await asyncio.sleep(wait)
            k += 1
            if kind not in topics:
                continue
            if kind == "depth":
                if time.monotonic() < paused_until:
                    continue
                self.sent_depth += 1
                n = self.sent_depth
                if self.pause_depth is not None and n == self.pause_depth[0]:
                    self._fault("pause")
                    paused_until = time.monotonic() + self.pause_depth[1]
                    continue
                if self.drop_depth is not None and n == self.drop_depth:
                    self._fault("gap")
                    continue
                if self.cross_depth is not None and n == self.cross_depth:
                    self._fault("cross")
                    best_ask = min(float(p) for p in self.book.asks)
                    data = {**data, "b": [*data["b"], [f"{best_ask + 50:.2f}", "1.000"]]}
            await ws.send_str(json.dumps(data))
            sent += 1
            if self.disconnect_after is not None and sent >= self.disconnect_after:
                self.disconnect_after = None
                self._fault("disconnect")
                await ws.close()
                return

    def ccxt_options(self) -> dict[str, Any]:
        options = super().ccxt_options()
        ws = self.base.replace("http://", "ws://") + "/ws"
        options["urls"]["api"]["ws"] = {"linear": ws, "spot": ws, "inverse": ws, "margin": ws}
        options["options"] = {"fetchMarkets": {"types": ["linear"]}}
        return options
