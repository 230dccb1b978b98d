"""Encoding and decoding of events: one encoder, one decoder, upcasters.

The wire format is msgpack of array-like tagged structs. Decoding accepts
every current tag plus any registered legacy tag; a legacy event is lifted to
its current shape by its upcaster, so old journals stay readable without
being rewritten.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from tidemark.core.events import EVENT_TYPES, TAGS, Event


class EventDecodeError(ValueError):
    """Bytes that are not a valid event of any known tag and shape."""


Upcaster = Callable[[Any], Event]

_BAD_BYTES = (msgspec.MsgspecError, UnicodeDecodeError, ValueError, RecursionError)
"""What msgspec raises on malformed input (invalid UTF-8 is a UnicodeDecodeError;
arrays nested deeper than the interpreter's recursion limit, a RecursionError)."""


class Codec:
    """Encoder/decoder pair built once for a fixed set of event types.

    ``legacy`` maps an old struct type (with its own old tag) to a function
    returning the equivalent current event.
    """

    __slots__ = ("_decoder", "_encode", "_list_decoder", "_upcasters", "encoder")

    def __init__(
        self,
        types: Iterable[type[Event]] = EVENT_TYPES,
        legacy: dict[type[Any], Upcaster] | None = None,
    ) -> None:
        self._upcasters: dict[type[Any], Upcaster] = dict(legacy or {})
        union = tuple(types) + tuple(self._upcasters)
        self.encoder = msgspec.msgpack.Encoder()
        self._encode = self.encoder.encode
        self._decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(_union_of(union))
        self._list_decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(list[_union_of(union)])  # type: ignore[misc]

    def encode(self, event: Event) -> bytes:
        return self._encode(event)

    def decode(self, data: bytes | memoryview) -> Event:
        """Decode one payload; raises :class:`EventDecodeError` on bad bytes."""
        try:
            event = self._decoder.decode(data)
        except _BAD_BYTES as exc:
            raise EventDecodeError(str(exc)) from exc
        return self._upcast(event) if self._upcasters else event

    def decode_array(self, buffer: bytes | memoryview) -> list[Event]:
        """Decode a msgpack array of payloads (a journal block) in one call."""
        try:
            events: list[Event] = self._list_decoder.decode(buffer)
        except _BAD_BYTES as exc:
            raise EventDecodeError(str(exc)) from exc
        if self._upcasters:
            events = [self._upcast(e) for e in events]
        return events

    def _upcast(self, event: Any) -> Event:
        upcast = self._upcasters.get(type(event))
        while upcast is not None:
            event = upcast(event)
            upcast = self._upcasters.get(type(event))
        return event


def _union_of(types: tuple[type[Any], ...]) -> Any:
    union: Any = types[0]
    for cls in types[1:]:
        union = union | cls
    return union


DEFAULT_CODEC = Codec()
"""The codec for the current schema; module-level so it is built once."""

encode = DEFAULT_CODEC.encode
decode = DEFAULT_CODEC.decode


def tag(event: Event) -> str:
    return TAGS[type(event)]
