"""Generate the bundled sample data (synthetic, labelled as such).

Seeded geometric Brownian motion with regime-switching drift and intrabar
ranges, one-hour bars, UTC ISO timestamps. Deterministic: the same seed gives
byte-identical files. Run: python scripts/make_sample_data.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parent.parent / "tidemark" / "adapters" / "sample_data"


def synth(symbol: str, seed: int, start_price: float, bars: int = 4000) -> pd.DataFrame:
    rng = np.random.Generator(np.random.PCG64(seed))
    regime = np.repeat(rng.choice([-1.0, 0.5, 1.0], size=bars // 250 + 1), 250)[:bars]
    rets = rng.normal(0.00004 * regime, 0.006, size=bars)
    close = start_price * np.exp(np.cumsum(rets))
    open_ = np.concatenate(([start_price], close[:-1])) * np.exp(rng.normal(0, 0.0005, size=bars))
    spread = np.abs(rng.normal(0, 0.004, size=bars)) * close
    high = np.maximum(open_, close) + spread * rng.uniform(0.2, 1.0, size=bars)
    low = np.minimum(open_, close) - spread * rng.uniform(0.2, 1.0, size=bars)
    volume = rng.lognormal(3.0, 0.6, size=bars)
    times = pd.date_range("2024-01-01T00:00:00Z", periods=bars, freq="1h")
    frame = pd.DataFrame(
        {
            "date": times.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
        }
    )
    return frame.round({"open": 2, "high": 2, "low": 2, "close": 2, "volume": 4})


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for symbol, seed, price in (("SYNTH-BTC", 7, 42000.0), ("SYNTH-ETH", 11, 2300.0)):
        path = OUT / f"{symbol.replace('-', '_')}-1h.csv"
        synth(symbol, seed, price).to_csv(path, index=False, lineterminator="\n")
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
