"""The HTML report of a run: kept as the import path the CLI uses; the
report itself lives in :mod:`tidemark.adapters.report`."""

from __future__ import annotations

from tidemark.adapters.report import render, write_report

__all__ = ["render", "write_report"]
