"""Stopping a run on SIGINT, SIGTERM or SIGHUP, between batches.

What ``timeout``, a CI cancel, a closed terminal and Ctrl-C send. A handler
only notes the signal; the run checks between batches of inputs (a few
thousand bars: a fraction of a second) and stops there, where every input
fed so far has had all its outputs, so the journal it seals ``interrupted``
replays. A second signal of the same kind while the first is pending
raises :class:`KeyboardInterrupt` at once (an impatient user gets out).
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any, Final

from tidemark.journal.terminal import RunInterrupted

STOP_SIGNALS: Final = tuple(
    sig for sig in (getattr(signal, name, None) for name in ("SIGINT", "SIGTERM", "SIGHUP")) if sig is not None
)


class StopSignals:
    """A context in which the stop signals are noted, not fatal. Outside the
    main thread (where Python cannot install handlers) it notes nothing."""

    def __init__(self, on_signal: Callable[[int], None] | None = None) -> None:
        self.received: int | None = None
        self._on_signal = on_signal
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._note)
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _note(self, signum: int, frame: FrameType | None) -> None:
        if self.received == signum and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.received is None:
            self.received = signum
        if self._on_signal is not None:
            self._on_signal(signum)

    def check(self) -> None:
        """Raise :class:`RunInterrupted` if a stop signal arrived."""
        if self.received is not None:
            raise RunInterrupted(self.received)


class LoopStopSignals:
    """For a live session (the loop waits on inputs, so it sees signals at
    once): each stop signal sets ``stop``, and the session ends cleanly.
    Where the loop cannot take signal handlers, nothing is installed."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
        self._loop = loop
        self._stop = stop
        self._installed: list[int] = []

    def __enter__(self) -> LoopStopSignals:
        for sig in STOP_SIGNALS:
            try:
                self._loop.add_signal_handler(sig, self._stop.set)
            except (NotImplementedError, RuntimeError, ValueError):
                continue
            self._installed.append(sig)
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        for sig in self._installed:
            self._loop.remove_signal_handler(sig)
        self._installed.clear()
