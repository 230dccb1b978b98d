"""The event bus: one sequencer, journal before delivery, run to completion.

Delivery rules (delivery order is a pure function of input order):

1. Every event gets the next sequence number when it is published, is handed
   to the sink (the journal), then queued.
2. The queue is FIFO. A handler runs to its end before the next event is
   delivered; events it publishes are delivered after it.
3. Subscribers of a type are called in subscription order ("early" phase).
4. "Late" subscribers of an event run only once everything the early phase
   caused has been delivered. Strategies subscribe late to bars, so a
   strategy sees bar *i* after the fills that bar *i*'s open produced.
5. The bus clock is the timestamp of the event being delivered and never
   goes backwards.

Inputs (market data, exchange responses, live timers) enter with
:meth:`Bus.feed`; everything actors derive is published with
:meth:`Bus.publish` and is an output. Replay feeds the inputs and
regenerates the outputs.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from operator import attrgetter, le
from typing import Any, Final, Protocol

from tidemark.core.clock import SimulatedClock
from tidemark.core.events import Bar, Event, Timer
from tidemark.core.series import BarBlock

Handler = Callable[[Any], None]

_instrument = attrgetter("instrument")

NEEDS_EVERY_BAR: Final = -1
""":meth:`Actor.bars_quiet_until` of an actor that must see every bar for
the rest of the run."""

QUIET_FOREVER: Final = 1 << 63
""":meth:`Actor.bars_quiet_until` of an actor that needs no more bars until
its state changes (later than any timestamp)."""


class EventSink(Protocol):
    """Where sequenced events go before delivery (the journal)."""

    def record(self, seq: int, event: Event, is_input: bool, cause: int) -> None: ...


# A sink may also take runs of inputs in one call (quiet stretches):
#   record_inputs(first, events): inputs ``first, first + 1, ...``;
#   record_bars(first, block, start, stop): bars ``block[start:stop]`` as
#   those inputs, left as columns (the sink encodes them only if it wants).


class BusFault(RuntimeError):
    """A handler raised; the bus stops (fail-stop) and names the event."""

    def __init__(self, seq: int, event: Event, handler: str, error: BaseException) -> None:
        super().__init__(f"handler {handler} failed on seq {seq} ({type(event).__name__}): {error!r}")
        self.seq = seq
        self.event = event
        self.error = error


class Actor:
    """An actor: private state, handlers, talks only through events.

    Subclasses override :meth:`subscriptions` and the lifecycle hooks. Hot
    handlers are plain synchronous methods.
    """

    name: str = "actor"
    bus: Bus

    def subscriptions(self) -> Iterable[tuple[type[Event], Handler, bool]]:
        """``(event type, handler, late)`` triples, in delivery order."""
        return ()

    def on_start(self) -> None:
        """Called once when the run starts, before the first input."""

    def on_stop(self) -> None:
        """Called once when the run ends (inputs exhausted or stopped)."""

    def on_reset(self) -> None:
        """Return to the freshly constructed state."""

    def on_fault(self, event: Event, error: BaseException) -> None:
        """A handler of this actor raised on ``event``; the bus stops after."""

    def bars_quiet_until(self) -> int:
        """Quiet stretches (actors that subscribe to :class:`Bar` only).

        Bars with ``ts`` below the returned time (ns) need not be delivered
        to this actor: delivering them would publish nothing and change
        nothing that :meth:`skip_bars` does not set. 0: deliver the next bar;
        :data:`NEEDS_EVERY_BAR` (the default): deliver every bar from now on.
        Must be exact; :meth:`Bus.feed_all` trusts it."""
        return NEEDS_EVERY_BAR

    def skip_bars(self, latest: dict[str, Bar]) -> None:
        """Bars passed this actor quietly. ``latest`` is the last bar of each
        instrument among them, in the order of those last bars."""


class Bus:
    """Single-threaded sequencer and dispatcher. Not thread-safe."""

    def __init__(
        self,
        sink: EventSink | None = None,
        clock: SimulatedClock | None = None,
        *,
        start_seq: int = 0,
        inbound_size: int = 10_000,
    ) -> None:
        self.clock = clock if clock is not None else SimulatedClock()
        self._record = sink.record if sink is not None else None
        self._seq = start_seq
        self._queue: deque[tuple[int, Event | None]] = deque()  # None: an event nobody handles
        self._late: deque[tuple[int, Event, tuple[Handler, ...]]] = deque()
        self._early_subs: dict[type[Event], tuple[Handler, ...]] = {}
        self._late_subs: dict[type[Event], tuple[Handler, ...]] = {}
        self._owners: dict[Handler, Actor] = {}
        self._actors: list[Actor] = []
        self._dispatching = False
        self._cause = 0
        self._failed: BusFault | None = None
        self._inbound_size = inbound_size
        self._inbound: asyncio.Queue[Event] | None = None
        self._record_inputs: Callable[[int, Sequence[Event]], None] | None = getattr(sink, "record_inputs", None)
        self._record_bars: Callable[[int, BarBlock, int, int], None] | None = getattr(sink, "record_bars", None)
        self._bar_actors: list[Actor] | None = None  # built by feed_all, reset by subscribe
        self._handled: set[type[Event]] = set()  # types with a subscriber (early or late)

    # -- wiring -----------------------------------------------------------

    @property
    def seq(self) -> int:
        """Sequence number of the last event published."""
        return self._seq

    @property
    def current(self) -> int:
        """Sequence number of the event being delivered (a fill's source)."""
        return self._cause

    @property
    def actors(self) -> list[Actor]:
        return list(self._actors)

    def add(self, actor: Actor) -> Actor:
        """Attach ``actor``; its handlers run after those already attached."""
        actor.bus = self
        self._actors.append(actor)
        for event_type, handler, late in actor.subscriptions():
            self.subscribe(event_type, handler, late=late)
            self._owners[handler] = actor
        return actor

    def subscribe(self, event_type: type[Event], handler: Handler, *, late: bool = False) -> None:
        table = self._late_subs if late else self._early_subs
        table[event_type] = (*table.get(event_type, ()), handler)
        self._handled.add(event_type)
        self._bar_actors = None

    def now(self) -> int:
        return self.clock._now

    # -- publishing -------------------------------------------------------

    def feed(self, event: Event) -> int:
        """Bring an input in: sequence it, journal it, deliver to completion.

        Due simulated timers fire (as outputs) before the input is delivered.
        This is the per-bar hot path: when the bus is idle the input is
        delivered here directly (same order as :meth:`_drain`: its early
        handlers, everything they caused, then its late handlers).
        """
        if self._failed is not None:
            raise self._failed
        ts = event.ts
        clock = self.clock
        if ts < clock._now:
            raise ValueError(
                f"input {type(event).__name__} at {ts} is before the bus clock {clock._now} "
                f"(backwards by {clock._now - ts} ns); inputs must be in time order"
            )
        timers = clock._timers
        while timers and timers[0][0] <= ts:
            # One at a time: a timer's handler may set another one, due before
            # timers already due, and it must fire in its place in time.
            fire_at, name = clock.pop_next(ts)  # type: ignore[misc]
            self.publish(Timer(fire_at, name))
        if self._dispatching:  # fed from inside a handler: queue it like any other event
            return self._queue_input(event)
        self._seq = seq = self._seq + 1
        if self._record is not None:
            self._record(seq, event, True, 0)
        clock._now = ts
        self._cause = seq
        self._dispatching = True
        handler: Handler | None = None
        try:
            cls = type(event)
            handlers = self._early_subs.get(cls)
            if handlers is not None:
                for handler in handlers:
                    handler(event)
            lates = self._late_subs.get(cls)
            if self._queue:  # the early phase published: the general loop keeps the order
                if lates is not None:
                    self._late.append((seq, event, lates))
            elif lates is not None:
                for handler in lates:
                    handler(event)
        except Exception as exc:
            self._dispatching = False
            self._fail(seq, event, handler, exc)
        if self._queue or self._late:
            self._drain()
        else:
            self._dispatching = False
        return seq

    def feed_all(self, events: Sequence[Event]) -> None:
        """Feed inputs in order, as :meth:`feed` one by one would, except that
        a stretch of bars every bar subscriber calls quiet (see
        :meth:`Actor.bars_quiet_until`) and no timer interrupts is sequenced
        and journaled in one step, and its subscribers catch up through
        :meth:`Actor.skip_bars`. The journal is byte-identical either way.
        This is how a backtest moves through the bars where nothing can
        happen: no open orders, no strategy wake-up, no snapshot due."""
        feed = self.feed
        actors = self._quiet_actors()
        if actors is None or self._dispatching:
            for event in events:
                feed(event)
            return
        n = len(events)
        block = events if type(events) is BarBlock else None
        if block is not None:  # one instrument's bars in time order, as columns
            stamps = block.stamps
            sorted_bars = single = True
        else:
            stamps = [event.ts for event in events]
            # A chunk of bars only, in time order, is cut at the horizon by
            # bisection; anything else is scanned.
            sorted_bars = set(map(type, events)) == {Bar} and all(map(le, stamps, islice(stamps, 1, None)))
            single = sorted_bars and len(set(map(_instrument, events))) == 1
        k = 0
        while k < n:
            if self._bar_actors is None:  # a handler subscribed since: ask again
                actors = self._quiet_actors()
            if actors is None or self._failed is not None:
                for event in events[k:]:
                    feed(event)
                return
            horizon = self._quiet_horizon(actors)
            stop = k
            if horizon > 0 and stamps[k] >= self.clock._now:
                if sorted_bars:
                    stop = bisect_left(stamps, horizon, k)
                else:
                    now = self.clock._now
                    while stop < n and type(events[stop]) is Bar and now <= stamps[stop] < horizon:
                        now = stamps[stop]
                        stop += 1
            if stop - k > 1:
                self._pass_quietly(events, k, stop, actors, single)
                k = stop
                if k < n and stamps[k] >= horizon and self._failed is None:
                    feed(events[k])  # the bar at the horizon is due: no need to ask again
                    k += 1
            else:
                feed(events[k])
                k += 1

    def _quiet_actors(self) -> list[Actor] | None:
        """The actors behind every Bar handler, or None if one of them (or a
        plain function) needs every bar."""
        actors = self._bar_actors
        if actors is not None:
            return actors or None
        found: list[Actor] = []
        for handler in (*self._early_subs.get(Bar, ()), *self._late_subs.get(Bar, ())):
            owner = getattr(handler, "__self__", None)
            if not isinstance(owner, Actor) or owner.bars_quiet_until() == NEEDS_EVERY_BAR:
                found = []
                break
            if owner not in found:
                found.append(owner)
        self._bar_actors = found
        return found or None

    def _quiet_horizon(self, actors: list[Actor]) -> int:
        """The time before which bars may pass quietly (0: none may)."""
        timers = self.clock._timers
        horizon = timers[0][0] if timers else QUIET_FOREVER
        for actor in actors:
            until = actor.bars_quiet_until()
            if until < horizon:
                if until <= 0:
                    if until == NEEDS_EVERY_BAR:
                        self._bar_actors = []  # from now on every bar is delivered
                    return 0
                horizon = until
        return horizon

    def _pass_quietly(self, events: Sequence[Event], start: int, stop: int, actors: list[Actor], single: bool) -> None:
        """Sequence and journal ``events[start:stop]`` (inputs in time order,
        all bars before the quiet horizon) without delivering them. Bars of
        a :class:`BarBlock` are built only where needed (the last one, or all
        for a sink that takes events)."""
        first = self._seq + 1
        self._seq = last = self._seq + stop - start
        stretch: Sequence[Event] | None = None
        if type(events) is BarBlock and self._record_bars is not None:
            self._record_bars(first, events, start, stop)
        elif self._record is not None:
            stretch = events[start:stop]
            if self._record_inputs is not None:
                self._record_inputs(first, stretch)
            else:
                record = self._record
                for seq, event in enumerate(stretch, first):
                    record(seq, event, True, 0)
        latest: dict[str, Bar] = {}
        final: Bar = events[stop - 1]  # type: ignore[assignment]
        if single:
            latest[final.instrument] = final
        else:
            for bar in reversed(stretch or events[start:stop]):  # all: an instrument may be absent a while
                if bar.instrument not in latest:  # type: ignore[attr-defined]
                    latest[bar.instrument] = bar  # type: ignore[attr-defined,assignment]
            if len(latest) > 1:
                latest = dict(reversed(latest.items()))
        self.clock._now = final.ts
        self._cause = last
        actor: Actor | None = None
        try:
            for actor in actors:
                actor.skip_bars(latest)
        except Exception as exc:  # fail-stop, as a handler failing on the last bar would
            self._fail(last, final, actor.skip_bars if actor is not None else None, exc)

    def publish(self, event: Event) -> int:
        """Publish an output derived by an actor; delivered after the
        current handler (or at once when nothing is being delivered)."""
        self._seq = seq = self._seq + 1
        if self._record is not None:
            self._record(seq, event, False, self._cause)
        if type(event) not in self._handled and event.ts == self.clock._now:
            # Nobody would be called and the clock would not move (OrderAccepted,
            # PositionChanged in most runs): only its turn in the delivery order
            # is kept, as the bus's current cause when it comes.
            if self._dispatching:
                self._queue.append((seq, None))
            else:
                self._cause = seq
            return seq
        self._queue.append((seq, event))
        if not self._dispatching:
            self._drain()
        return seq

    def _queue_input(self, event: Event) -> int:
        """An input fed while a handler runs: delivered after it, like an output."""
        self._seq = seq = self._seq + 1
        if self._record is not None:
            self._record(seq, event, True, 0)
        self._queue.append((seq, event))
        return seq

    def _drain(self) -> None:
        queue = self._queue
        late = self._late
        early_subs = self._early_subs
        late_subs = self._late_subs
        clock = self.clock
        self._dispatching = True
        seq = 0
        event: Event | None = None
        handler: Handler | None = None
        try:
            while True:
                while queue:
                    seq, event = queue.popleft()
                    if event is None:  # an event nobody handles: its turn only
                        self._cause = seq
                        continue
                    ts = event.ts
                    if ts != clock._now:
                        clock.advance(ts)
                    self._cause = seq
                    cls = type(event)
                    handlers = early_subs.get(cls)
                    if handlers is not None:
                        for handler in handlers:
                            handler(event)
                    lates = late_subs.get(cls)
                    if lates is not None:
                        late.append((seq, event, lates))
                if not late:
                    break
                seq, event, lates = late.popleft()
                self._cause = seq
                for handler in lates:
                    handler(event)
        except Exception as exc:
            self._fail(seq, event, handler, exc)
        finally:
            self._dispatching = False

    def _fail(self, seq: int, event: Event | None, handler: Handler | None, exc: Exception) -> None:
        assert event is not None
        owner = self._owners.get(handler) if handler is not None else None
        name = getattr(handler, "__qualname__", repr(handler))
        if owner is not None:
            owner.on_fault(event, exc)
        self._queue.clear()
        self._late.clear()
        self._failed = BusFault(seq, event, name, exc)
        raise self._failed from exc

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        for actor in self._actors:
            actor.on_start()

    def stop(self) -> None:
        for actor in self._actors:
            actor.on_stop()

    # -- live inputs --------------------------------------------------------

    @property
    def inbound(self) -> asyncio.Queue[Event]:
        """Bounded queue through which adapters and I/O tasks bring inputs."""
        if self._inbound is None:
            self._inbound = asyncio.Queue(self._inbound_size)
        return self._inbound

    async def run_inbound(self, until: asyncio.Event) -> None:
        """Feed inputs from :attr:`inbound` in arrival order until ``until`` is set."""
        queue = self.inbound
        while not until.is_set():
            getter = asyncio.ensure_future(queue.get())
            stopper = asyncio.ensure_future(until.wait())
            done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                self.feed(getter.result())
            else:
                getter.cancel()
            stopper.cancel()
        while not queue.empty():
            self.feed(queue.get_nowait())
