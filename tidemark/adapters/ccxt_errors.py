"""What to do about an exception from ccxt (or the network under it).

* ``resubscribe``: the stream's state is broken (a book sequence gap or
  checksum failure); drop it, resynchronise from a fresh snapshot.
* ``retry``: transient (network error, timeout, rate limit, exchange
  unavailable or in maintenance, a garbled response); back off and retry,
  a bounded number of times.
* ``stop``: the client was closed on purpose.
* ``fatal``: retrying cannot help (bad symbol, not supported, authentication,
  any other exchange error); stop with a one-line error.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Iterator
from typing import Final

import ccxt

from tidemark.adapters import logs

RESUBSCRIBE: Final = "resubscribe"
RETRY: Final = "retry"
STOP: Final = "stop"
FATAL: Final = "fatal"

BACKOFF_START: Final = 0.5
BACKOFF_CAP: Final = 15.0


def classify(error: BaseException) -> str:
    if isinstance(error, ccxt.InvalidNonce):  # includes ChecksumError; before NetworkError (its base)
        return RESUBSCRIBE
    if isinstance(error, ccxt.ExchangeClosedByUser):
        return STOP
    if isinstance(error, (ccxt.NetworkError, ccxt.BadResponse)):
        return RETRY
    if isinstance(error, (asyncio.TimeoutError, ConnectionError, OSError)):
        return RETRY
    return FATAL


class ExchangeUnreachable(RuntimeError):
    """The exchange cannot be reached from this machine (no DNS, refused, no
    route, or no answer to the first request): retrying will not help."""


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def unreachable(error: BaseException, *, first_contact: bool = False) -> str | None:
    """The root cause when ``error`` says the exchange cannot be reached at
    all (DNS, connection refused, no route; on ``first_contact`` also a
    timeout), else None. Used to fail at once where a retry would only wait."""
    where = ""
    for exc in _chain(error):
        host = getattr(exc, "host", None)
        if host and not where:
            port = getattr(exc, "port", None)
            where = f"{host}:{port}" if port else str(host)
        if isinstance(exc, socket.gaierror):
            return f"DNS: cannot resolve {where or 'the exchange host'} ({exc.strerror})"
        if isinstance(exc, ConnectionRefusedError):
            return f"connection refused by {where or 'the exchange'}"
        if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return f"no route to {where or 'the exchange'} ({exc.strerror})"
    if first_contact and isinstance(error, (ccxt.RequestTimeout, asyncio.TimeoutError)):
        return "timeout: no answer to the first request"
    return None


def reason(error: BaseException) -> str:
    """A short machine-readable cause for FeedGap events and logs."""
    if isinstance(error, ccxt.InvalidNonce):
        return "sequence_gap"
    if isinstance(error, (ccxt.RateLimitExceeded, ccxt.DDoSProtection)):
        return "rate_limit"
    if isinstance(error, (ccxt.RequestTimeout, asyncio.TimeoutError)):
        return "timeout"
    if isinstance(error, ccxt.ExchangeNotAvailable):
        return "unavailable"
    if isinstance(error, (ccxt.NetworkError, ConnectionError, OSError)):
        return "disconnect"
    if isinstance(error, ccxt.BadResponse):
        return "bad_response"
    return type(error).__name__


def backoff(attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (1-based): capped doubling."""
    return float(min(BACKOFF_CAP, BACKOFF_START * 2 ** (attempt - 1)))


def one_line(error: BaseException) -> str:
    """The error in one line, any secret it echoes (a header, a signed URL) masked:
    what a FeedGap journals and a log shows."""
    text = logs.mask(" ".join(str(error).split()))
    return f"{type(error).__name__}: {text[:300]}"
