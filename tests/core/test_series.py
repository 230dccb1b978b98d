"""A BarBlock gives the same bars as the series it is cut from."""

from __future__ import annotations

import numpy as np
import pytest

from tidemark.core.codec import DEFAULT_CODEC
from tidemark.core.events import Bar
from tidemark.core.series import BarBlock, InstrumentSeries, MarketSeries, bar_unpacker

MINUTE = 60_000_000_000


def market(first_close: int, n: int = 50, seed: int = 7) -> MarketSeries:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n))
    volume = rng.uniform(0.0, 1e6, n)
    series = InstrumentSeries("BTC/USDT", MINUTE, open_, high, low, close, volume, np.ones(n, dtype=bool))
    return MarketSeries(first_close + MINUTE * np.arange(n, dtype=np.int64), {"BTC/USDT": series})


@pytest.mark.parametrize(
    "first_close",
    [1_700_000_000_000_000_000, 5 * MINUTE],  # ns epochs (fixed payload layout); small ints (no layout)
    ids=["payload-layout", "column-fallback"],
)
def test_indexing_a_block_builds_the_series_bars(first_close: int) -> None:
    data = market(first_close)
    expected = list(data.bars())[10:40]
    block = BarBlock(data.instruments["BTC/USDT"], data.timeline, 10, 40)
    assert [block[k] for k in range(len(block))] == expected
    assert block[-1] == expected[-1] and block[-30] == expected[0]
    assert block[3:7] == expected[3:7]
    assert list(block) == expected  # the Sequence protocol stops at IndexError
    with pytest.raises(IndexError):
        block[30]
    with pytest.raises(IndexError):
        block[-31]


def test_block_payloads_decode_to_its_bars() -> None:
    data = market(1_700_000_000_000_000_000)
    block = BarBlock(data.instruments["BTC/USDT"], data.timeline, 0, 50)
    payloads = block.encoded(5, 9)
    assert payloads is not None
    size = len(payloads) // 4
    decoded = [DEFAULT_CODEC.decode(bytes(payloads[k * size : (k + 1) * size])) for k in range(4)]
    assert decoded == [block[k] for k in range(5, 9)]


def test_the_unpacker_reads_values_from_a_codec_payload() -> None:
    unpack = bar_unpacker("ETH/USDT", MINUTE)
    assert unpack is not None
    bar = Bar(1_700_000_000_000_000_000, "ETH/USDT", 1.5, 2.25, -0.125, 3e-9, 1e300, MINUTE)
    assert unpack.unpack(DEFAULT_CODEC.encode(bar)) == (1.5, 2.25, -0.125, 3e-9, 1e300)


def test_bar_chunks_cut_the_series_into_blocks_of_its_bars() -> None:
    data = market(1_700_000_000_000_000_000, n=50)
    blocks = list(data.bar_chunks(16))
    assert [len(block) for block in blocks] == [16, 16, 16, 2]
    assert [bar for block in blocks for bar in block] == list(data.bars())
    assert [ts for block in blocks for ts in block.stamps] == data.timeline.tolist() == data.stamps


def test_a_live_series_has_no_listed_timeline() -> None:
    live = MarketSeries.live_series(["BTC/USDT"], MINUTE, capacity=8)
    with pytest.raises(ValueError, match="live series"):
        _ = live.stamps
