"""Codec: round trips, golden fixtures, upcasters, robustness to bad bytes."""

from __future__ import annotations

import contextlib
import typing
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidemark.core.codec import DEFAULT_CODEC, Codec, EventDecodeError, decode, encode
from tidemark.core.events import EVENT_TYPES, TAGS, Bar, Event

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "events"

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def _strategy_for(tp: typing.Any) -> st.SearchStrategy[typing.Any]:
    if tp is int:
        return ints
    if tp is float:
        return finite
    if tp is str:
        return st.text(max_size=20)
    if tp is bool:
        return st.booleans()
    if typing.get_origin(tp) is tuple:
        return st.lists(_strategy_for(typing.get_args(tp)[0]), max_size=5).map(tuple)
    raise TypeError(tp)


def events_of(cls: type[Event]) -> st.SearchStrategy[Event]:
    hints = typing.get_type_hints(cls)
    fields = {f.name: _strategy_for(hints[f.name]) for f in msgspec.structs.fields(cls)}
    return st.builds(cls, **fields)


any_event = st.one_of([events_of(cls) for cls in EVENT_TYPES])


@given(any_event)
@settings(max_examples=600)
def test_every_event_round_trips(event: Event) -> None:
    assert decode(encode(event)) == event


def test_tags_are_unique_and_stable() -> None:
    tags = list(TAGS.values())
    assert len(tags) == len(set(tags))
    fixtures = sorted(p.name.split(".")[0] for p in GOLDEN.glob("*.msgpack"))
    assert sorted(tags) == fixtures, "a tag was added, renamed or removed: add a golden fixture or an upcaster"


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.msgpack")), ids=lambda p: p.stem)
def test_golden_fixtures_decode(path: Path) -> None:
    event = decode(path.read_bytes())
    expected = msgspec.json.decode(path.with_suffix(".json").read_bytes())
    assert msgspec.json.decode(msgspec.json.encode(event))[: len(expected)] == expected
    assert decode(encode(event)) == event


def test_v_next_with_an_appended_field_reads_old_bytes() -> None:
    """msgspec's array-like rule: a field appended with a default keeps every
    old payload decodable by the new struct."""

    class BarNext(Event, frozen=True, tag="bar"):
        instrument: str
        open: float
        high: float
        low: float
        close: float
        volume: float
        interval: int
        last: bool = True
        ts_recv: int = 0
        vwap: float = 0.0

    older = encode(Bar(5, "X", 1.0, 2.0, 0.5, 1.5, 3.0, 60))
    assert msgspec.msgpack.Decoder(BarNext).decode(older).vwap == 0.0


def test_upcaster_lifts_an_old_shape() -> None:
    class BarV0(Event, frozen=True, tag="bar0"):
        """An imagined old bar: one price, volume in lots of 100."""

        instrument: str
        price: float
        lots: int

    def upcast(old: BarV0) -> Bar:
        return Bar(old.ts, old.instrument, old.price, old.price, old.price, old.price, old.lots * 100.0, 0)

    codec = Codec(EVENT_TYPES, legacy={BarV0: upcast})
    old_bytes = msgspec.msgpack.encode(BarV0(10, "X", 2.5, 3))
    assert codec.decode(old_bytes) == Bar(10, "X", 2.5, 2.5, 2.5, 2.5, 300.0, 0)
    block = b"\xdd" + (2).to_bytes(4, "big") + old_bytes + encode(Bar(11, "X", 1, 1, 1, 1, 1, 0))
    assert [type(e) for e in codec.decode_array(block)] == [Bar, Bar]


@given(st.binary(max_size=200))
@settings(max_examples=3000)
def test_random_bytes_only_raise_decode_error(data: bytes) -> None:
    try:
        event = decode(data)
    except EventDecodeError:
        return
    # What does decode is a whole event of a known type that round-trips exactly.
    assert type(event) in TAGS
    assert decode(encode(event)) == event


@given(any_event, st.data())
@settings(max_examples=2000)
def test_mutated_bytes_only_raise_decode_error(event: Event, data: st.DataObject) -> None:
    raw = bytearray(encode(event))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    for candidate in (bytes(raw), bytes(raw[:cut])):
        single: Event | None = None
        with contextlib.suppress(EventDecodeError):
            single = DEFAULT_CODEC.decode(candidate)
        if single is not None:
            assert type(single) in TAGS and DEFAULT_CODEC.decode(encode(single)) == single
        with contextlib.suppress(EventDecodeError):
            # One payload in an array decodes to what it decodes to alone.
            assert DEFAULT_CODEC.decode_array(b"\xdd\x00\x00\x00\x01" + candidate) == [single]
    assert DEFAULT_CODEC.decode(encode(event)) == event
