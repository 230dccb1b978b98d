"""Log lines go to stderr as it is when they are logged."""

from __future__ import annotations

import io
import sys

import pytest

from tidemark.adapters import logs


def test_a_line_goes_to_the_current_stderr_not_the_one_logging_was_configured_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``main()`` called in-process configures logging with the stderr of the
    moment (a notebook cell's, a test's capture), which may be closed by the
    time something logs: a warning then raised "I/O operation on closed
    file" in whatever ran next."""
    then = io.StringIO()
    monkeypatch.setattr(sys, "stderr", then)
    logs.configure()
    then.close()
    now = io.StringIO()
    monkeypatch.setattr(sys, "stderr", now)
    logs.get("test").warning("feed_fault", attempt=1)
    assert "feed_fault" in now.getvalue() and "attempt=1" in now.getvalue()
