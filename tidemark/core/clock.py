"""Time for actors: the bus clock in simulation, the wall clock only live.

Inside core, "now" is the timestamp of the event being handled. The only
reader of the wall clock is :class:`LiveClock`, used by live adapters to
stamp receive times (which are then journaled as data).
"""

from __future__ import annotations

import heapq
import time
from datetime import UTC, datetime
from typing import Protocol


def iso_utc(ns: int) -> str:
    """ns since the epoch as ISO-8601 UTC (``2024-01-03T03:00:00Z``; with
    the fraction of a second when there is one)."""
    seconds, rest = divmod(int(ns), 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{rest:09d}".rstrip("0") + "Z" if rest else stamp + "Z"


class Clock(Protocol):
    def now(self) -> int:
        """Current time, ns since the Unix epoch (UTC)."""
        ...


class SimulatedClock:
    """Event-time clock. ``advance`` never goes backwards.

    Timers are kept in a heap ordered by (fire time, insertion order), so two
    timers at the same time fire in the order they were set.
    """

    __slots__ = ("_count", "_now", "_timers")

    def __init__(self, start: int = 0) -> None:
        self._now = start
        self._timers: list[tuple[int, int, str]] = []
        self._count = 0

    def now(self) -> int:
        return self._now

    def advance(self, ts: int) -> None:
        """Move to ``ts`` (ns). Raises ``ValueError`` if ``ts`` is earlier."""
        if ts < self._now:
            raise ValueError(f"clock cannot go backwards: {ts} < {self._now} (by {self._now - ts} ns)")
        self._now = ts

    def set_timer(self, name: str, fire_at: int) -> None:
        """Fire ``name`` at ``fire_at`` ns (must not be in the past)."""
        if fire_at < self._now:
            raise ValueError(f"timer {name!r} at {fire_at} is before now ({self._now})")
        self._count += 1
        heapq.heappush(self._timers, (fire_at, self._count, name))

    def next_timer(self) -> int | None:
        return self._timers[0][0] if self._timers else None

    def pop_next(self, until: int) -> tuple[int, str] | None:
        """Remove and return the earliest timer due at or before ``until``."""
        timers = self._timers
        if timers and timers[0][0] <= until:
            fire_at, _, name = heapq.heappop(timers)
            return fire_at, name
        return None


class LiveClock(SimulatedClock):
    """Wall-clock source for live adapters: ``wall_ns`` stamps receive times.

    The bus still runs on event time (``now``); only adapters call ``wall_ns``.
    """

    __slots__ = ()

    @staticmethod
    def wall_ns() -> int:
        return time.time_ns()

    @staticmethod
    def monotonic_ns() -> int:
        return time.monotonic_ns()
