"""Bus: sequencing, journal-before-delivery, FIFO run to completion, phases."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pytest

from tidemark.core.bus import Actor, Bus, BusFault, Handler
from tidemark.core.clock import SimulatedClock
from tidemark.core.events import Bar, Event, Log, Timer


def bar(ts: int, symbol: str = "X") -> Bar:
    return Bar(ts, symbol, 1.0, 1.0, 1.0, 1.0, 0.0, 1)


class Recorder:
    def __init__(self) -> None:
        self.records: list[tuple[int, str, bool, int]] = []
        self.delivered: set[int] = set()

    def record(self, seq: int, event: Event, is_input: bool, cause: int) -> None:
        self.records.append((seq, type(event).__name__, is_input, cause))


class Echo(Actor):
    """On each bar publishes two logs; on each log with 'a' publishes one more."""

    def __init__(self, name: str, seen: list[str]) -> None:
        self.name = name
        self.seen = seen

    def subscriptions(self) -> Iterable[tuple[type[Event], Handler, bool]]:
        return ((Bar, self.on_bar, False), (Log, self.on_log, False))

    def on_bar(self, event: Bar) -> None:
        self.seen.append(f"{self.name}:bar{event.ts}")
        if self.name == "first":
            self.bus.publish(Log(self.bus.now(), self.name, "info", "a"))
            self.bus.publish(Log(self.bus.now(), self.name, "info", "b"))

    def on_log(self, event: Log) -> None:
        self.seen.append(f"{self.name}:log{event.message}")
        if event.message == "a" and self.name == "first":
            self.bus.publish(Log(self.bus.now(), self.name, "info", "c"))


def test_fifo_run_to_completion_and_fixed_subscriber_order() -> None:
    seen: list[str] = []
    sink = Recorder()
    bus = Bus(sink)
    bus.add(Echo("first", seen))
    bus.add(Echo("second", seen))
    bus.feed(bar(1))
    assert seen == [
        "first:bar1",
        "second:bar1",
        "first:loga",
        "second:loga",
        "first:logb",
        "second:logb",
        "first:logc",
        "second:logc",
    ]
    assert sink.records == [(1, "Bar", True, 0), (2, "Log", False, 1), (3, "Log", False, 1), (4, "Log", False, 2)]


def test_late_subscribers_run_after_everything_the_early_phase_caused() -> None:
    order: list[str] = []
    bus = Bus()

    def early(event: Bar) -> None:
        order.append("early")
        bus.publish(Log(event.ts, "venue", "info", "fill"))

    bus.subscribe(Bar, early)
    bus.subscribe(Bar, lambda e: order.append("late"), late=True)
    bus.subscribe(Log, lambda e: order.append("log"))
    bus.feed(bar(5))
    assert order == ["early", "log", "late"]


def test_journal_sees_every_event_before_any_handler() -> None:
    sink = Recorder()
    bus = Bus(sink)
    bus.subscribe(Bar, lambda e: sink.delivered.add(len(sink.records)))
    bus.feed(bar(1))
    assert sink.delivered == {1}


def test_clock_is_the_event_time_and_never_goes_back() -> None:
    bus = Bus()
    times: list[int] = []
    bus.subscribe(Bar, lambda e: times.append(bus.now()))
    bus.feed(bar(10))
    bus.feed(bar(20))
    assert times == [10, 20]
    with pytest.raises(ValueError, match="backwards"):
        bus.feed(bar(15))


def test_simulated_timers_fire_as_outputs_before_the_input() -> None:
    sink = Recorder()
    clock = SimulatedClock()
    bus = Bus(sink, clock)
    fired: list[tuple[int, str]] = []
    bus.subscribe(Timer, lambda e: fired.append((e.ts, e.name)))
    clock.set_timer("b", 7)
    clock.set_timer("a", 5)
    clock.set_timer("c", 7)
    bus.feed(bar(8))
    assert fired == [(5, "a"), (7, "b"), (7, "c")]
    assert [r[1:3] for r in sink.records] == [("Timer", False)] * 3 + [("Bar", True)]


def test_a_timer_set_by_a_timer_fires_in_time_order_among_those_already_due() -> None:
    """A slow feed can make several timers due at once; one whose handler
    sets the next (a bar clock) must not be overtaken by a later one."""
    clock = SimulatedClock()
    bus = Bus(Recorder(), clock)
    fired: list[tuple[int, str]] = []

    def on_timer(timer: Timer) -> None:
        fired.append((timer.ts, timer.name))
        if timer.name == "bars" and timer.ts < 5:
            clock.set_timer("bars", timer.ts + 1)

    bus.subscribe(Timer, on_timer)
    clock.set_timer("bars", 1)
    clock.set_timer("funding", 4)
    bus.feed(bar(10))
    assert fired == [(1, "bars"), (2, "bars"), (3, "bars"), (4, "funding"), (4, "bars"), (5, "bars")]


def test_handler_failure_stops_the_bus_and_names_the_event() -> None:
    faults: list[str] = []

    class Boom(Actor):
        name = "boom"

        def subscriptions(self) -> Iterable[tuple[type[Event], Handler, bool]]:
            return ((Bar, self.on_bar, False),)

        def on_bar(self, event: Bar) -> None:
            raise RuntimeError("bad strategy")

        def on_fault(self, event: Event, error: BaseException) -> None:
            faults.append(str(error))

    bus = Bus()
    bus.add(Boom())
    with pytest.raises(BusFault, match="seq 1") as info:
        bus.feed(bar(1))
    assert faults == ["bad strategy"]
    assert isinstance(info.value.error, RuntimeError)
    with pytest.raises(BusFault):
        bus.feed(bar(2))


def test_clock_refuses_to_go_backwards() -> None:
    clock = SimulatedClock(100)
    clock.advance(100)
    with pytest.raises(ValueError, match="by 1 ns"):
        clock.advance(99)


@pytest.mark.asyncio
async def test_inbound_queue_feeds_inputs_in_arrival_order() -> None:
    sink = Recorder()
    bus = Bus(sink, inbound_size=4)
    got: list[int] = []
    bus.subscribe(Bar, lambda e: got.append(e.ts))
    stop = asyncio.Event()
    runner = asyncio.create_task(bus.run_inbound(stop))
    for ts in range(1, 11):
        await bus.inbound.put(bar(ts))
    while len(got) < 10:
        await asyncio.sleep(0.001)
    stop.set()
    await runner
    assert got == list(range(1, 11))
    assert all(r[2] for r in sink.records)


@pytest.mark.parametrize("handled", [False, True])
@pytest.mark.parametrize("late", [False, True])
def test_an_event_nobody_handles_still_takes_its_turn_as_the_current_cause(handled: bool, late: bool) -> None:
    """Causes are journaled: whether or not an output has a subscriber, an
    output published after the cascade records the same cause (the last
    event delivered: the bar's late phase, else the bar's log)."""
    sink = Recorder()
    bus = Bus(sink)
    bus.subscribe(Bar, lambda b: bus.publish(Log(b.ts, "s", "info", "from bar")))
    if late:
        bus.subscribe(Bar, lambda b: None, late=True)
    if handled:
        bus.subscribe(Log, lambda e: None)
    bus.feed(bar(1))  # seq 1 bar, seq 2 its log
    bus.publish(Log(1, "s", "info", "outside any handler"))  # seq 3
    bus.publish(Log(1, "s", "info", "again"))  # seq 4
    last = 1 if late else 2
    assert sink.records == [(1, "Bar", True, 0), (2, "Log", False, 1), (3, "Log", False, last), (4, "Log", False, 3)]
