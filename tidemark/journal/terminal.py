"""The record that ends a run that did not finish, built from its cause.

A run that raises, is interrupted or loses its writer ends with a chained
:class:`RunFailed` naming the status, the error in one line and where it was
raised, so the status a journal claims is proved by its chain. The summary
keeps file names without their folders, so two machines running the same
code write the same bytes.
"""

from __future__ import annotations

import contextlib
import signal
import traceback
from pathlib import PurePath
from typing import Final, Protocol

from tidemark.core.bus import BusFault
from tidemark.core.events import RunFailed
from tidemark.journal.errors import JournalError
from tidemark.journal.meta import STATUS_FAILED, STATUS_INTERRUPTED
from tidemark.journal.seal import Sealed

TRACE_FRAMES: Final = 8
"""Innermost frames kept in a traceback summary."""


class RunInterrupted(Exception):
    """A stop was asked for by a signal; the run stopped between batches."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal_name(signum)}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal number (SIGINT 130, SIGTERM 143)."""
        return 128 + self.signum


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def error_line(error: BaseException) -> str:
    """The error in one line: a handler's fault as the bus words it, any
    other error as ``Type: message``."""
    if isinstance(error, (BusFault, RunInterrupted)):
        text = str(error)
    else:
        message = str(error)
        text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    return " ".join(text.split())


def trace_summary(error: BaseException, frames: int = TRACE_FRAMES) -> tuple[str, ...]:
    """Where ``error`` was raised (a handler's fault: where the handler
    raised), innermost last, as ``file:line in function``."""
    cause = error.error if isinstance(error, BusFault) else error
    stack = traceback.extract_tb(cause.__traceback__)[-frames:]
    return tuple(f"{PurePath(frame.filename).name}:{frame.lineno} in {frame.name}" for frame in stack)


def failure_status(error: BaseException | None) -> str:
    return STATUS_INTERRUPTED if isinstance(error, (RunInterrupted, KeyboardInterrupt)) else STATUS_FAILED


def run_failed(ts: int, status: str, error: BaseException | None) -> RunFailed:
    """The final record of a run that ended with ``status`` because of ``error``."""
    if error is None:
        return RunFailed(ts, status)
    fault_seq = error.seq if isinstance(error, BusFault) else 0
    trace = () if isinstance(error, (RunInterrupted, KeyboardInterrupt)) else trace_summary(error)
    return RunFailed(ts, status, error_line(error), trace, fault_seq)


class _Sealable(Protocol):
    async def close(self, status: str = ..., error: BaseException | None = ...) -> Sealed: ...


async def seal_after(writer: _Sealable, error: BaseException) -> None:
    """Seal the journal of a run that raised ``error``: ``interrupted`` for a
    stop signal, else ``failed``, with ``error`` in its final record. The
    error then says where the journal is (``error.sealed``: a
    :class:`Sealed`), or why it could not be sealed (``error.seal_error``);
    the caller re-raises it."""
    try:
        sealed = await writer.close(failure_status(error), error)
    except JournalError as exc:
        with contextlib.suppress(AttributeError):
            error.seal_error = exc  # type: ignore[attr-defined]
        return
    with contextlib.suppress(AttributeError):
        error.sealed = sealed  # type: ignore[attr-defined]
