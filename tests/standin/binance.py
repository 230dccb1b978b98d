"""A local stand-in for Binance's public REST API, for tests (127.0.0.1 only).

It serves the recorded ``exchangeInfo`` responses (GoCryptoTrader's
recording) and implements the klines, mark-price klines and funding-rate
endpoints with Binance's paging semantics over the real recorded candles,
marks and funding prints in ../shared/data. Faults can be injected: the next
``n`` requests answer HTTP 429 with Binance's error body.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
from pathlib import Path
from typing import Any

import pandas as pd
from aiohttp import web

SERIES = {
    ("/api/v3/klines", "BTCUSDT"): ("ohlcv/binance_spot/BTC_USDT-{tf}.feather", 1000),
    ("/api/v3/klines", "ETHUSDT"): ("ohlcv/binance_spot/ETH_USDT-{tf}.feather", 1000),
    ("/fapi/v1/klines", "BTCUSDT"): ("ohlcv/binance_usdm/BTC_USDT_USDT-{tf}-futures.feather", 1500),
    ("/fapi/v1/markPriceKlines", "BTCUSDT"): ("funding/binance_usdm/BTC_USDT_USDT-{tf}-mark.feather", 1500),
}
FUNDING = {"BTCUSDT": "funding/binance_usdm/BTC_USDT_USDT-1h-funding_rate.feather"}
STEP_MS = {"5m": 300_000, "1h": 3_600_000, "1d": 86_400_000}


class BinanceStandIn:
    def __init__(self, shared_data: Path) -> None:
        self.data = shared_data
        with gzip.open(shared_data / "exchange-responses" / "gocryptotrader" / "binance_http_mock.json.gz") as handle:
            recorded = json.load(handle)
        self.routes = recorded["routes"]
        self.requests: list[str] = []
        self.fail_next = 0
        self._frames: dict[str, pd.DataFrame] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self.base = ""

    # -- data -----------------------------------------------------------------------

    def _frame(self, relative: str) -> pd.DataFrame:
        if relative not in self._frames:
            frame = pd.read_feather(self.data / relative)
            frame["t"] = frame["date"].astype("int64") // 1_000_000
            self._frames[relative] = frame
        return self._frames[relative]

    @staticmethod
    def _window(frame: pd.DataFrame, q: Any, limit_default: int, limit_max: int) -> pd.DataFrame:
        if "startTime" in q:
            frame = frame[frame["t"] >= int(q["startTime"])]
        if "endTime" in q:
            frame = frame[frame["t"] <= int(q["endTime"])]
        limit = min(int(q.get("limit", limit_default)), limit_max)
        return frame.head(limit) if "startTime" in q or "endTime" not in q else frame.tail(limit)

    # -- handlers ---------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.json_response({"code": -1003, "msg": "Too many requests; stand-in fault."}, status=429)
        path, q = request.path, request.query
        if path.endswith("/exchangeInfo"):
            return web.json_response(self.routes[path]["GET"][0]["data"])
        if path.endswith("/time"):
            return web.json_response({"serverTime": 1_770_000_000_000})
        if path == "/fapi/v1/fundingRate":
            symbol = q.get("symbol", "")
            if symbol not in FUNDING:
                return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
            rows = self._window(self._frame(FUNDING[symbol]), q, 100, 1000)
            body = [
                {"symbol": symbol, "fundingTime": int(r.t), "fundingRate": repr(float(r.open)), "markPrice": ""}
                for r in rows.itertuples()
            ]
            return web.json_response(body)
        key = (path, q.get("symbol", q.get("pair", "")))
        if key in SERIES:
            template, limit_max = SERIES[key]
            tf = q.get("interval", "1h")
            rows = self._window(self._frame(template.format(tf=tf)), q, 500, limit_max)
            step = STEP_MS[tf]
            body = [
                [
                    int(r.t),
                    repr(float(r.open)),
                    repr(float(r.high)),
                    repr(float(r.low)),
                    repr(float(r.close)),
                    repr(float(r.volume)),
                    int(r.t) + step - 1,
                    "0",
                    0,
                    "0",
                    "0",
                    "0",
                ]
                for r in rows.itertuples()
            ]
            return web.json_response(body)
        return web.json_response({"code": -1000, "msg": f"stand-in has no route {path}"}, status=404)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> str:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_route("GET", "/{tail:.*}", self.handle)
            self._runner = web.AppRunner(app)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.base = f"http://127.0.0.1:{port}"
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self.base

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def ccxt_options(self) -> dict[str, Any]:
        """Every Binance API URL pointed at this stand-in."""
        import ccxt

        api = ccxt.binance().describe()["urls"]["api"]
        urls = {}
        for name, url in api.items():
            path = "/" + url.split("://", 1)[1].split("/", 1)[1]
            urls[name] = self.base + path
        return {"urls": {"api": urls}, "options": {"fetchMarkets": {"types": ["spot", "linear"]}}}
