"""Deterministic sample values for every event type (golden fixtures, tests)."""

from __future__ import annotations

import typing
from typing import Any

import msgspec

from tidemark.core.events import Event


def _value(tp: Any, name: str, k: int) -> Any:
    origin = typing.get_origin(tp)
    if tp is int:
        return (
            1_700_000_000_000_000_000 + k
            if name in ("ts", "exec_ts", "expire_ts", "ts_recv", "next_funding_ts", "funding_ts", "expiry")
            else 7 + k
        )
    if tp is float:
        return 100.25 + k
    if tp is str:
        return f"{name}-{k}"
    if tp is bool:
        return k % 2 == 0
    if origin is tuple:
        item = typing.get_args(tp)[0]
        return (f"{name}-{k}",) if item is str else (1.5 + k, 2.5 + k)
    raise TypeError(f"no sample for {tp!r}")


def sample_event(cls: type[Event]) -> Event:
    hints = typing.get_type_hints(cls)
    values = {f.name: _value(hints[f.name], f.name, i) for i, f in enumerate(msgspec.structs.fields(cls))}
    return cls(**values)
