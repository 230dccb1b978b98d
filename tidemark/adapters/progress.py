"""Progress of long work on stderr: a bar redrawn in place on a terminal, a
plain line every few seconds otherwise (CI logs, notebooks, pipes)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """``bar(done, total)``; ``close()`` ends the line. ``every``: seconds
    between lines when the stream is not a terminal."""

    def __init__(
        self, label: str, width: int = 30, *, stream: TextIO | None = None, every: float = 5.0, unit: str = "bars"
    ) -> None:
        self.label = label
        self.unit = unit
        self.width = width
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = self.stream.isatty()
        self.every = 0.1 if self.terminal else every
        self._start = time.monotonic()
        self._last = self._start
        self._shown = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last < self.every and (done < total or not self._shown):
            return
        self._last = now
        self._shown = True
        frac = done / total if total else 1.0
        rate = done / max(now - self._start, 1e-9)
        left = (total - done) / rate if rate > 0 else 0.0
        if self.terminal:
            filled = int(frac * self.width)
            bar = f"[{'#' * filled}{'.' * (self.width - filled)}]"
            self.stream.write(f"\r{self.label} {bar} {frac:6.1%} {rate:,.0f} {self.unit}/s, {left:,.0f} s left")
        else:
            self.stream.write(
                f"{self.label}: {done:,}/{total:,} {self.unit} ({frac:.0%}), {rate:,.0f} {self.unit}/s, "
                f"{left:,.0f} s left\n"
            )
        self.stream.flush()

    def close(self) -> None:
        if self.terminal and self._shown:
            self.stream.write("\n")
            self.stream.flush()
