"""Fee models: maker/taker basis points, per contract, fixed per fill.

All parts add up: ``fee = notional * bps / 10_000 + |qty| * per_contract + fixed``
in the instrument's settlement currency. When a run sets no basis points,
the instrument's own maker/taker rates (exchange metadata) apply. The model
name on each fill says what charged it: ``bps``, ``exchange``,
``per_contract``, ``fixed`` joined by ``+``, or ``none`` when nothing did
(no commission configured; ``legacy_labels``, rules version 1, says
``exchange`` there).
"""

from __future__ import annotations

from dataclasses import dataclass

from tidemark.core.events import InstrumentDefinition
from tidemark.core.instruments import notional


@dataclass(frozen=True, slots=True)
class FeeModel:
    maker_bps: float | None = None
    taker_bps: float | None = None
    per_contract: float | None = None
    fixed: float = 0.0
    legacy_labels: bool = False

    def rate(self, inst: InstrumentDefinition, maker: bool) -> float:
        """The fraction of notional charged (run bps, else exchange metadata)."""
        bps = self.maker_bps if maker else self.taker_bps
        if bps is None:
            return inst.maker_fee if maker else inst.taker_fee
        return bps / 10_000.0

    def fee(self, inst: InstrumentDefinition, quantity: float, price: float, maker: bool) -> tuple[float, str]:
        """``(fee, model name)`` for one fill."""
        bps = self.maker_bps if maker else self.taker_bps
        parts = []
        if bps is None:
            rate = inst.maker_fee if maker else inst.taker_fee
            if rate or self.legacy_labels:
                parts.append("exchange")
        else:
            rate = bps / 10_000.0
            parts.append("bps")
        amount = notional(inst, quantity, price) * rate
        if inst.inverse:
            amount /= price  # inverse notional is in quote; the fee settles in the coin
        per_contract = inst.fee_per_contract if self.per_contract is None else self.per_contract
        if per_contract:
            amount += abs(quantity) * per_contract
            parts.append("per_contract")
        if self.fixed:
            amount += self.fixed
            parts.append("fixed")
        return amount, "+".join(parts) or "none"
