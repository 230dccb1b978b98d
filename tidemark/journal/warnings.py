"""What a careful reader of a run's figures must be told, derived from its
journal: costs left out, ruin, a halted account, repaired data, refused
orders. One line each, plain text; the summary and the report show them."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from tidemark.core.text import plural
from tidemark.journal.projections import Projections

COMMISSION_KEYS = ("commission_bps", "maker_bps", "taker_bps", "commission_per_contract")


def no_commission(config: dict[str, Any], projections: Projections) -> bool:
    """True when nothing in the run charges a fee: no commission in the
    config and no instrument fee (exchange metadata)."""
    if any(config.get(key) is not None for key in COMMISSION_KEYS) or config.get("commission_fixed"):
        return False
    return not any(
        inst.maker_fee or inst.taker_fee or inst.fee_per_contract for inst in projections.instruments.values()
    )


def run_warnings(projections: Projections, metrics: dict[str, Any]) -> list[str]:
    """The warnings of one run, most serious first."""
    out: list[str] = []
    halted = projections.halted
    if halted is not None:
        when = pd.Timestamp(halted.ts, unit="ns", tz="UTC").isoformat()
        out.append(
            f"trading halted at {when}: equity {halted.equity:,.2f} {projections.currency} with margined "
            "positions open; every position was liquidated"
        )
    if metrics.get("ruined_at"):
        out.append(
            f"equity reached zero at {metrics['ruined_at']}: annualized return, drawdown, Sharpe, Sortino "
            "and Calmar are n/a"
        )
    if no_commission(projections.config, projections):
        out.append("no commission configured: trades pay no commission (set --commission-bps)")
    repairs = _repairs(projections.header.fingerprints)
    if repairs:
        out.append(f"data repaired: {repairs}")
    out.extend(_universes(projections.header.fingerprints))
    rejections = projections.rejections
    if len(rejections):
        counts = rejections["reason"].value_counts().sort_index()
        listed = ", ".join(f"{reason} {count}" for reason, count in counts.items())
        out.append(f"{plural(len(rejections), 'order')} refused ({listed})")
    return out


def _prints(fingerprints: str) -> dict[str, Any]:
    """The header's fingerprints JSON as a dict (empty if it is not one)."""
    try:
        prints = json.loads(fingerprints)
    except ValueError:
        return {}
    return prints if isinstance(prints, dict) else {}


def _universes(fingerprints: str) -> list[str]:
    """The universe rules a run was chosen by: each knows its files' end."""
    out = []
    for key, info in _prints(fingerprints).items():
        if key.startswith("universe:") and isinstance(info, dict):
            dropped = ", ".join(map(str, info.get("dropped") or [])) or "none"
            out.append(
                f"universe chosen by {info.get('rule')} in each data file (a choice that knows how each file "
                f"ends); not traded: {dropped}"
            )
    return out


def _repairs(fingerprints: str) -> str:
    """``SYMBOL: drop_close 2, ffill_open 1; ...`` from the header's data fingerprints."""
    parts = []
    for symbol, info in _prints(fingerprints).items():
        repairs = info.get("repairs") if isinstance(info, dict) else None
        if repairs:
            parts.append(f"{symbol}: " + ", ".join(f"{k} {v}" for k, v in sorted(repairs.items())))
    return "; ".join(parts)
