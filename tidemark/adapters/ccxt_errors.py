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
