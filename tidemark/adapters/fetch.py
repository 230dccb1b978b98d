"""``tidemark fetch``: download history through ccxt into a local Parquet cache.

Candles (``fetch_ohlcv``), funding rates (``fetch_funding_rate_history``) and
mark-price candles (``fetch_ohlcv`` with ``price=mark``) are paged forward
from ``since`` to ``until``. Each page is merged into the cache file, which
is rewritten atomically (temp file + rename), so an interrupted download
resumes from the last cached row. Network errors and rate limits are retried
with capped exponential backoff, a bounded number of times; anything else
stops with a one-line error. After a download the cache is checked for
duplicate and missing timestamps and the figures are reported.

Cache layout (``--cache``, default ``data/``): ``<exchange>/<SYMBOL>-<tf>.parquet``
(``date, open, high, low, close, volume``), ``...-funding.parquet`` (the rate
in ``open``: freqtrade's layout) and ``...-mark.parquet``. Backtests read
these files directly with ``--data`` / ``--funding`` / ``--mark``.

Any ccxt option can be set: ``--ccxt-option urls.api.public=http://...``
(dotted path, JSON values) or ``--ccxt-options file.json``. API keys are
never needed here and never logged.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tidemark.adapters import logs
from tidemark.adapters.ccxt_errors import ExchangeUnreachable, unreachable

COLUMNS = ["date", "open", "high", "low", "close", "volume"]
MAX_RETRIES = 5
BACKOFF_START = 0.5
BACKOFF_CAP = 8.0


class FetchError(RuntimeError):
    """A download could not complete; the message says why in one line."""


@dataclass
class FetchReport:
    kind: str
    path: Path
    rows: int
    added: int
    requests: int
    retries: int
    duplicates: int
    gaps: int
    first: str = ""
    last: str = ""
    notes: list[str] = field(default_factory=list)


def set_option(options: dict[str, Any], dotted: str, raw: str) -> None:
    """``urls.api.public=http://x`` -> options["urls"]["api"]["public"]."""
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    keys = dotted.split(".")
    node = options
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


def merge_options(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = (
            merge_options(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def cache_path(cache: Path, exchange: str, symbol: str, timeframe: str, kind: str) -> Path:
    safe = symbol.replace("/", "_").replace(":", "_")
    suffix = {"ohlcv": "", "funding": "-funding", "mark": "-mark"}[kind]
    return cache / exchange / f"{safe}-{timeframe}{suffix}.parquet"


async def _retry(
    call: Callable[[], Awaitable[Any]], what: str, report: FetchReport, sleep: Callable[[float], Awaitable[None]]
) -> Any:
    import ccxt

    delay = BACKOFF_START
    for attempt in range(MAX_RETRIES + 1):
        report.requests += 1
        try:
            return await call()
        except (ccxt.RateLimitExceeded, ccxt.DDoSProtection, ccxt.NetworkError) as exc:
            cause = unreachable(exc, first_contact=report.requests == 1)
            if cause is not None:
                raise ExchangeUnreachable(f"{what}: {cause}") from None
            if attempt == MAX_RETRIES:
                raise FetchError(f"{what}: gave up after {MAX_RETRIES + 1} attempts: {type(exc).__name__}") from None
            report.retries += 1
            logs.get("fetch").warning("retrying", what=what, error=type(exc).__name__, delay=delay)
            await sleep(delay)
            delay = min(BACKOFF_CAP, delay * 2)
        except ccxt.BaseError as exc:
            raise FetchError(f"{what}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
    raise AssertionError("unreachable")


def _load(path: Path) -> pd.DataFrame:
    if path.exists():
        return pd.read_parquet(path)
    return pd.DataFrame({c: pd.Series(dtype="datetime64[ns, UTC]" if c == "date" else float) for c in COLUMNS})


def _save(path: Path, frame: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def _merge(existing: pd.DataFrame, rows: list[list[float]]) -> tuple[pd.DataFrame, int, int]:
    new = pd.DataFrame(rows, columns=COLUMNS)
    new["date"] = pd.to_datetime(new["date"].astype("int64"), unit="ms", utc=True).astype("datetime64[ns, UTC]")
    both = pd.concat([existing, new], ignore_index=True) if len(existing) else new
    before = len(both)
    both = both.drop_duplicates(subset="date", keep="last").sort_values("date", ignore_index=True)
    return both, before - len(both), len(both) - len(existing)


def _check(frame: pd.DataFrame, step_ms: int | None, report: FetchReport) -> None:
    if not len(frame):
        return
    report.first = str(frame["date"].iloc[0])
    report.last = str(frame["date"].iloc[-1])
    if step_ms:
        diffs = frame["date"].astype("int64").diff().dropna() // 1_000_000
        report.gaps = int((diffs > step_ms).sum())
        if report.gaps:
            report.notes.append(f"{report.gaps} gap(s) longer than one {step_ms // 60_000}m step")


async def fetch(
    exchange_id: str,
    symbol: str,
    *,
    timeframe: str,
    since: int,
    until: int | None,
    cache: Path,
    funding: bool = False,
    mark: bool = False,
    options: dict[str, Any] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> list[FetchReport]:
    """Download what is missing between ``since`` and ``until`` (ms)."""
    import ccxt.async_support as ccxt_async

    factory = getattr(ccxt_async, exchange_id, None)
    if factory is None:
        raise FetchError(f"unknown exchange {exchange_id!r}")
    config = merge_options({"enableRateLimit": True, "options": {"fetchCurrencies": False}}, options or {})
    exchange = factory(config)
    try:
        report0 = FetchReport("markets", Path(), 0, 0, 0, 0, 0, 0)
        await _retry(exchange.load_markets, f"{exchange_id} load_markets", report0, sleep)
        if symbol not in exchange.markets:
            raise FetchError(f"{exchange_id} has no market {symbol!r}")
        step_ms = int(exchange.parse_timeframe(timeframe) * 1000)
        kinds = ["ohlcv"] + (["funding"] if funding else []) + (["mark"] if mark else [])
        return [
            await _fetch_kind(exchange, exchange_id, symbol, timeframe, step_ms, since, until, cache, kind, sleep)
            for kind in kinds
        ]
    finally:
        await exchange.close()


async def _fetch_kind(
    exchange: Any,
    exchange_id: str,
    symbol: str,
    timeframe: str,
    step_ms: int,
    since: int,
    until: int | None,
    cache: Path,
    kind: str,
    sleep: Callable[[float], Awaitable[None]],
) -> FetchReport:
    path = cache_path(cache, exchange_id, symbol, timeframe, kind)
    frame = _load(path)
    report = FetchReport(kind, path, 0, 0, 0, 0, 0, 0)
    cursor = since
    if len(frame):
        last = int(frame["date"].iloc[-1].value // 1_000_000)
        if last >= since:
            cursor = last + 1  # resume after the last cached row
    end = until if until is not None else exchange.milliseconds()
    what = f"{exchange_id} {symbol} {kind}"
    while cursor <= end:
        if kind == "funding":
            page = await _retry(
                lambda c=cursor: exchange.fetch_funding_rate_history(symbol, c, 1000), what, report, sleep
            )
            rows = [[p["timestamp"], p["fundingRate"], 0.0, 0.0, 0.0, 0.0] for p in page if p["timestamp"] <= end]
        else:
            params = {"price": "mark"} if kind == "mark" else {}
            page = await _retry(
                lambda c=cursor, p=params: exchange.fetch_ohlcv(symbol, timeframe, c, 1000, p), what, report, sleep
            )
            rows = [list(r[:6]) for r in page if r[0] <= end]
        if not rows:
            break
        frame, dupes, added = _merge(frame, rows)
        report.duplicates += dupes
        report.added += added
        _save(path, frame)
        cursor = int(rows[-1][0]) + 1
        if len(page) and int(page[-1][0] if kind != "funding" else page[-1]["timestamp"]) >= end:
            break
    report.rows = len(frame)
    _check(frame, step_ms if kind != "funding" else None, report)
    return report
