"""Quiet stretches: ``Engine.feed_all`` passes bars nobody needs in one step.

The promise is exact: the journal (every seq, payload, input flag and cause)
is the same as feeding each bar with ``Engine.feed``. These tests hold it to
that across order types, latency, snapshots, expiries, several instruments
with gaps, and chunk boundaries that split a time step.
"""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidemark.adapters.backtest import build_config, instruments_for, run_backtest, slots_for, strategy_configs
from tidemark.core.bus import BusFault
from tidemark.core.codec import DEFAULT_CODEC
from tidemark.core.config import RunConfig
from tidemark.core.engine import Engine
from tidemark.core.events import Bar, Event
from tidemark.core.series import BarBlock, InstrumentSeries, MarketSeries
from tidemark.journal.reader import JournalReader
from tidemark.journal.records import msgpack_array_header

HOUR = 3_600_000_000_000
START = 1_600_000_000_000_000_000

Record = tuple[int, bytes, bool, int]


class ListSink:
    """Keeps every sequenced event as the journal would store it."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def record(self, seq: int, event: Event, is_input: bool, cause: int) -> None:
        self.records.append((seq, DEFAULT_CODEC.encode(event), is_input, cause))


class EncodedSink(ListSink):
    """Also takes runs of bars already encoded (what the journal writer does)."""

    def record_bars(self, first: int, block: BarBlock, start: int, stop: int) -> None:
        payloads = block.encoded(start, stop)
        assert payloads is not None
        stamps = block.stamps[start:stop]
        raws = msgspec.msgpack.Decoder(list[msgspec.Raw]).decode(msgpack_array_header(len(stamps)) + bytes(payloads))
        assert [DEFAULT_CODEC.decode(bytes(raw)).ts for raw in raws] == stamps
        self.records.extend((first + k, bytes(raw), True, 0) for k, raw in enumerate(raws))


def market_of(n: int, symbols: tuple[str, ...] = ("AAA",), gaps: bool = False, seed: int = 3) -> MarketSeries:
    rng = np.random.Generator(np.random.PCG64(seed))
    timeline = START + HOUR * np.arange(1, n + 1, dtype=np.int64)
    instruments = {}
    for k, symbol in enumerate(symbols):
        close = 100.0 * (k + 1) * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        open_ = np.concatenate(([close[0]], close[:-1]))
        wiggle = np.abs(rng.normal(0, 0.004, n)) * close
        present = np.ones(n, dtype=bool)
        if gaps and k:
            present[(np.arange(n) // 17) % 4 == 1] = False  # runs of 17 missing steps
        columns = [np.where(present, x, np.nan) for x in (open_, np.maximum(open_, close) + wiggle)]
        columns.append(np.where(present, np.minimum(open_, close) - wiggle, np.nan))
        columns.append(np.where(present, close, np.nan))
        columns.append(np.where(present, rng.lognormal(3, 0.5, n), np.nan))
        instruments[symbol] = InstrumentSeries(symbol, HOUR, *columns, present)
    return MarketSeries(timeline, instruments)


ACTIVE = """
import numpy as np

def schema():
    return {"id": "active", "inputs": {"every": {"type": "int", "default": 9, "min": 1, "max": 100}}}

def wake(ctx):
    return np.arange(len(ctx.close)) % ctx.params["every"] == 4

def on_bar(ctx, i):
    close = ctx.close[-1]
    k = (i // ctx.params["every"]) % 6
    for symbol in ctx.symbols:
        pos = ctx.position_of(symbol).size
        if k == 0:
            ctx.buy(1.0, symbol=symbol)
        elif k == 1:
            ctx.buy(1.0, price=close * 0.99, symbol=symbol, expire_ts=ctx.now + 20 * 3_600_000_000_000, tif="GTD")
        elif k == 2:
            ctx.sell(1.0, type="stop", trigger=close * 0.98, symbol=symbol)
        elif k == 3:
            ctx.bracket("buy", 1.0, stop_loss=close * 0.97, take_profit=close * 1.03, symbol=symbol)
        elif k == 4 and pos:
            ctx.flatten(symbol)
        else:
            ctx.sell(0.5, price=close * 1.02, symbol=symbol)
"""


def engine_for(tmp_path, market: MarketSeries, strategy: str, **overrides: object) -> tuple[Engine, ListSink]:
    path = tmp_path / "active.py"
    path.write_text(ACTIVE)
    name = str(path) if strategy == "active" else strategy
    config: RunConfig = build_config(None, strategy=name, symbols=market.symbols, initial_cash=1e6, **overrides)
    config = msgspec.structs.replace(
        config, strategies=strategy_configs(config, market.symbols), strategy=None, params={}
    )
    sink = EncodedSink()
    engine = Engine(config, slots_for(config), market, sink=sink)
    first_open = int(market.timeline[0]) - HOUR
    for inst in instruments_for(config, market, first_open):
        engine.feed(inst)
    return engine, sink


def journal(
    tmp_path, market: MarketSeries, strategy: str, chunk: int | None, *, blocks: bool = False, **overrides: object
) -> list[Record]:
    """The records of a run fed bar by bar (``chunk=None``), in lists of
    ``chunk`` bars, or (``blocks``) in the column blocks backtests use."""
    engine, sink = engine_for(tmp_path, market, strategy, **overrides)
    bars = list(market.bars())
    if chunk is None:
        for bar in bars:
            engine.feed(bar)
    elif blocks:
        for block in market.bar_chunks(chunk):
            engine.feed_all(block)
    else:
        for start in range(0, len(bars), chunk):
            engine.feed_all(bars[start : start + chunk])
    engine.finish()
    return sink.records


SHORTS = {"account": "margin", "borrow_rate": 0.05}  # spot shorts on a loan, charged interest

CASES = [
    pytest.param("ema_cross", {"params": {"long_only": False, "fast": 4, "slow": 9}, **SHORTS}, id="ema_cross"),
    pytest.param("sma_cross", {"params": {"fast": 5, "slow": 12}}, id="sma_cross"),
    pytest.param("active", SHORTS, id="order-types"),
    pytest.param("active", {"latency_bars": 2, "fill_model": "close"}, id="latency-close-fill"),
    pytest.param("active", {"snapshot_every": "3h", "participation": 0.01, **SHORTS}, id="snapshots-participation"),
]


@pytest.mark.parametrize(("strategy", "overrides"), CASES)
@pytest.mark.parametrize(("chunk", "blocks"), [(5, False), (64, False), (4096, False), (7, True), (4096, True)])
def test_feed_all_journals_exactly_what_feeding_each_bar_does(tmp_path, strategy, overrides, chunk, blocks) -> None:
    market = market_of(600)
    one_by_one = journal(tmp_path, market, strategy, None, **overrides)
    together = journal(tmp_path, market, strategy, chunk, blocks=blocks, **overrides)
    assert len(one_by_one) > 700  # orders happened, not only bars
    assert together == one_by_one


@pytest.mark.parametrize("chunk", [3, 50, 4096])
def test_several_instruments_with_gaps_and_split_time_steps(tmp_path, chunk: int) -> None:
    market = market_of(400, ("AAA", "BBB"), gaps=True)
    one_by_one = journal(tmp_path, market, "active", None)
    assert journal(tmp_path, market, "active", chunk) == one_by_one


def test_an_expiring_instrument_settles_on_the_same_bar(tmp_path) -> None:
    market = market_of(300)
    expiry = int(market.timeline[200]) + HOUR // 2
    instruments = {"AAA": {"kind": "future", "expiry": expiry}}
    one_by_one = journal(tmp_path, market, "active", None, instruments=instruments)
    assert any(b"settlement" in payload for _, payload, _, _ in one_by_one)
    assert journal(tmp_path, market, "active", 4096, instruments=instruments) == one_by_one


def test_a_strategy_without_wake_sees_every_bar(tmp_path) -> None:
    market = market_of(200)
    engine, _ = engine_for(tmp_path, market, "active", wake=False)
    engine.start()
    assert engine.bus._quiet_actors() is None  # nothing may pass quietly
    engine.feed_all(list(market.bars()))
    assert engine.runners[0]._step == 199


@settings(max_examples=15, deadline=None)
@given(every=st.integers(1, 40), chunk=st.integers(2, 300), seed=st.integers(0, 10_000))
def test_any_wake_period_and_chunking_gives_the_same_journal(tmp_path_factory, every, chunk, seed) -> None:
    tmp_path = tmp_path_factory.mktemp("quiet")
    market = market_of(250, seed=seed)
    params = {"params": {"every": every}}
    assert journal(tmp_path, market, "active", chunk, **params) == journal(tmp_path, market, "active", None, **params)


@settings(max_examples=30, deadline=None)
@given(
    rows=st.lists(
        st.tuples(*[st.floats(allow_nan=False, allow_infinity=False, width=64)] * 4, st.floats(width=64)),
        min_size=1,
        max_size=40,
    ),
    symbol=st.text(min_size=1, max_size=40),
    interval=st.integers(1, 1 << 62),
    start=st.integers(0, 1 << 62),
)
def test_a_bar_block_encodes_its_bars_exactly_as_the_codec_does(rows, symbol, interval, start) -> None:
    n = len(rows)
    o, h, lo, c, v = (np.array(column, dtype=float) for column in zip(*rows, strict=True))
    timeline = np.arange(start, start + n, dtype=np.int64)
    market = MarketSeries(timeline, {symbol: InstrumentSeries(symbol, interval, o, h, lo, c, v, np.ones(n, bool))})
    (block,) = market.bar_chunks(n)
    expected = b"".join(map(DEFAULT_CODEC.encode, market.bars()))
    payloads = block.encoded(0, n)
    if start <= 0xFFFFFFFF:
        assert payloads is None  # small times encode shorter: the codec does them
    else:
        assert payloads is not None and bytes(payloads) == expected
        assert bytes(block.encoded(1, n) or b"") == b"".join(map(DEFAULT_CODEC.encode, list(market.bars())[1:]))
    assert list(map(DEFAULT_CODEC.encode, block)) == list(map(DEFAULT_CODEC.encode, market.bars()))


def test_every_journaled_payload_is_the_codec_encoding_of_its_event(tmp_path, sample_csv) -> None:
    run_backtest("ema_cross", data=[sample_csv], journal=tmp_path / "j.journal")
    with JournalReader(tmp_path / "j.journal") as reader:
        records = list(reader.records())
    assert sum(type(r.event) is Bar for r in records) > 1000
    assert all(bytes(r.payload) == DEFAULT_CODEC.encode(r.event) for r in records)


def test_bars_out_of_order_are_still_refused(tmp_path) -> None:
    market = market_of(50)
    engine, _ = engine_for(tmp_path, market, "active")
    bars = list(market.bars())
    engine.feed_all(bars[:30])
    with pytest.raises(ValueError, match="before the bus clock"):
        engine.feed_all(bars[10:20])


def test_a_bar_off_the_timeline_is_refused(tmp_path) -> None:
    market = market_of(50)
    engine, _ = engine_for(tmp_path, market, "active")
    bars = list(market.bars())
    stray = [type(bar)(bar.ts + 1, *[getattr(bar, f) for f in bar.__struct_fields__[1:]]) for bar in bars[5:12]]
    with pytest.raises(BusFault, match="timeline"):
        engine.feed_all(bars[:5] + stray)
