"""Slippage models for taker fills, each falling back to a simpler one.

* ``none``: no slippage.
* ``fixed_bps``: ``price * bps / 10_000`` against the order.
* ``ticks``: ``n * tick_size`` against the order.
* ``spread``: half the quoted spread (needs a quote; falls back to fixed_bps).
* ``atr``: ``k * ATR`` (needs a warmed-up ATR; falls back to fixed_bps).

Latency is not a price model here: it delays matching by ``latency_bars`` in
the simulated venue. The model actually used (after fallback) is recorded on
each fill as e.g. ``atr`` or ``atr>fixed_bps``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tidemark.core.events import BUY, InstrumentDefinition

MODELS = ("none", "fixed_bps", "ticks", "spread", "atr")


@dataclass(frozen=True, slots=True)
class SlippageModel:
    model: str = "fixed_bps"
    bps: float = 0.0
    ticks: float = 0.0
    atr_k: float = 0.0

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"slippage model must be one of {', '.join(MODELS)}, not {self.model!r}")

    def apply(
        self,
        inst: InstrumentDefinition,
        side: str,
        price: float,
        atr: float = 0.0,
        half_spread: float = 0.0,
    ) -> tuple[float, float, str]:
        """``(fill price, slippage in price units, model used)``."""
        model = self.model
        slip = 0.0
        used = model
        if model == "atr":
            if atr > 0.0:
                slip = self.atr_k * atr
            else:
                used, slip = "atr>fixed_bps", price * self.bps / 10_000.0
        elif model == "spread":
            if half_spread > 0.0:
                slip = half_spread
            else:
                used, slip = "spread>fixed_bps", price * self.bps / 10_000.0
        elif model == "fixed_bps":
            slip = price * self.bps / 10_000.0
        elif model == "ticks":
            slip = self.ticks * inst.tick_size
        if slip == 0.0:
            return price, 0.0, used
        return (price + slip if side == BUY else price - slip), slip, used
