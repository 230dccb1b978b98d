"""structlog set-up: console lines by default, JSON lines with --log-json.

Secrets never reach logs: keys named like credentials are masked by a
processor before rendering.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

SECRET_WORDS = (
    "secret",
    "apikey",
    "api_key",
    "password",
    "passphrase",
    "token",
    "private",
    "signature",
    "auth",
    "cookie",
)


_SECRET_VALUES: list[str] = []


def register_secret(value: str) -> None:
    """Mask this exact value wherever it appears in a log line (e.g. inside
    an exchange error message that echoes a URL or header)."""
    if value and value not in _SECRET_VALUES:
        _SECRET_VALUES.append(value)


def mask(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for secret in _SECRET_VALUES:
        text = text.replace(secret, "***")
    return text


def mask_secrets(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if any(word in key.lower().replace("-", "_") for word in SECRET_WORDS):
            event[key] = "***"
        elif _SECRET_VALUES and isinstance(event[key], str):
            text = event[key]
            for secret in _SECRET_VALUES:
                text = text.replace(secret, "***")
            event[key] = text
    return event


def configure(*, json_lines: bool = False, verbose: bool = False) -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer(sort_keys=True) if json_lines else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            mask_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG if verbose else logging.WARNING),
        logger_factory=_to_current_stderr,
        cache_logger_on_first_use=False,
    )


def _to_current_stderr(*args: Any) -> structlog.PrintLogger:
    """A logger writing to ``sys.stderr`` as it is when a line is logged, not
    as it was when logging was configured: ``main()`` called in-process
    (a notebook, a test capturing output) may have had a stderr that is
    closed by the time something logs."""
    return structlog.PrintLogger(file=sys.stderr)


def get(name: str) -> Any:
    return structlog.get_logger(name)
