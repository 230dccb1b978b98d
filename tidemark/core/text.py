"""Words for counts in what tidemark prints: ``1 order``, ``2 orders``."""

from __future__ import annotations


def plural(count: int, noun: str, many: str | None = None, *, grouped: bool = False) -> str:
    """``count`` and ``noun``, singular for exactly one (``1 order
    refused``), else ``many`` (default ``noun + "s"``); ``grouped``
    separates thousands (``1,234 steps``)."""
    word = noun if count == 1 else (many if many is not None else noun + "s")
    return f"{count:,} {word}" if grouped else f"{count} {word}"
