"""Deterministic identifiers and seeded randomness.

Ids are counters, never uuid4: the same run gives the same ids. Random
numbers come only from :func:`rng`, a seeded NumPy generator whose seed is in
the run header.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np


class IdSequence:
    """``prefix-1``, ``prefix-2``, ... for one owner (a strategy, a venue)."""

    __slots__ = ("_n", "_prefix")

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._n = 0

    def next(self) -> str:
        self._n += 1
        return f"{self._prefix}-{self._n}"

    @property
    def count(self) -> int:
        return self._n


def content_id(*parts: str, length: int = 16) -> str:
    """A stable id derived from content (e.g. a run id from its config hash)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\x00")
    return h.hexdigest()[:length]


def rng(seed: int) -> np.random.Generator:
    """The one source of randomness: PCG64 seeded with ``seed``."""
    return np.random.Generator(np.random.PCG64(seed))


def canonical_json(obj: Any) -> str:
    """Canonical JSON (sorted keys, no spaces, ASCII): the form that is hashed."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def sha256_hex(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()
