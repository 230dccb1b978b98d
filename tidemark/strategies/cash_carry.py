"""Cash-and-carry with inverse quarterlies: seed 002's system.

Symbols: the spot first, then the dated inverse (coin-margined) futures in
any order (they are used by expiry). The rules are the seed's
(``002_cash_carry_rollover_backtest``), on bars:

* Entry: once the front future trades at or above the spot by
  ``min_basis_bps`` (the seed's scanner: ``basis_bps_min_buy=0``), buy
  ``capital_pct`` of equity in spot (``target_btc = capital / spot``) and sell
  the hedge ratio in contracts, ``round(target_btc * future / contract_size)``
  (no fractional contracts), both over ``slots`` slots of ``slot_minutes``
  (24 h of 15 minutes) weighted by the front future's volume profile over
  the last ``volume_days`` days. The front is the first future more than
  ``roll_days`` from delivery. Recorded: ``basis_bps``, ``carry_annual``
  (basis / spot * 365 / days to delivery), ``hedge_contracts``.
* Roll: on the first day with ``(delivery date - today).days <= roll_days``
  (2), buy back every contract of the expiring future and sell
  ``round(spot held * next / contract_size)`` of the next quarterly (the roll
  anchored to the spot quantity), paired schedules with the same volume
  profile.
* Daily re-hedge at the end of each day (the bar closing at 00:00 UTC):
  ``net = spot held - contracts * contract_size / spot close``; beyond
  ``rehedge_pct`` (5 %) of the spot held, trade ``round(net * spot /
  contract_size)`` contracts of the held future at that bar's close (the
  seed's end-of-day price). On a roll day the check waits until the roll is
  done.
* Final unwind over the last 24 h of the run: sell all spot and buy back all
  contracts on flat weights.

Child orders (``children="limit"``, the seed's router): IOC limits priced
off the bar just closed, ``close +/- 0.75 * (high - low)`` (the seed crosses
0.75 spreads: its cross test ``spread > 1.5 * median(spread, 0.5)`` is true
for any BTC spread above 1.5 USD), retried at 0.5 and 0.75; a miss is caught
up by the next slot and the last slot sweeps at market (the seed's final
sweep). ``participation`` caps each child at that share of the bar's
volume (the seed's PoV cap, 0.25). Lots, ticks and minimum notional are the
instruments' (no fractional contracts).

Where bars and the missing seed modules force a choice (documented, not
hidden): the seed's entry executor and unwind executor (``task1``,
``task1_sell``) were never provided, so the entry uses the roll's router and
volume profile and the unwind flat weights; children follow the schedule
(cumulative weights minus what filled) rather than the seed's per-slot
``max(1, w * contracts)``; the bar's range stands in for the spread; a
crossing IOC limit fills at the next bar's open when it opens through the
limit (taker), else at the limit, with no random fill probability unless the
run sets ``fill_probability`` (the seed's simulator used 0.9); the seed
marks with the continuous CURRENT/NEXT_QUARTER series, here each contract's
own bars; fees are charged (the instruments' maker/taker rates).

Currencies: the spot leg settles in the account currency, the inverse legs
in the coin; their PnL is ``contracts * contract_size * (1/entry - 1/exit)``
BTC and fees ``contracts * contract_size / price * rate`` BTC. tidemark
values coin balances at the current spot (revalued); the seed locks each
realised coin amount at the spot of its trade: ``Result.coin_pnl()`` gives
both. Entries: tidemark averages an inverse position's entry as the
contracts-weighted mean of 1/price, as the seed's ``load_from_log`` and
``update_position`` do; the seed's ``rollover`` alone enters the new
contract at the arithmetic VWAP of the roll's sells (a slightly different
PnL afterwards; tests/strategies/test_cash_carry_seed_code.py measures it).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

DAY = 86_400_000_000_000
MINUTE = 60_000_000_000
LADDER = (0.75, 0.5, 0.75)
EPOCH = dt.date(1970, 1, 1)


def schema() -> dict[str, Any]:
    return {
        "id": "cash_carry",
        "name": "Cash and carry (spot long, inverse quarterly short; seed 002)",
        "category": "basis",
        "inputs": {
            "capital_pct": {"type": "float", "default": 0.95, "min": 0.0, "max": 1.0},
            "min_basis_bps": {"type": "float", "default": 0.0, "min": -10_000.0, "max": 10_000.0},
            "slots": {"type": "int", "default": 96, "min": 1, "max": 10_000},
            "slot_minutes": {"type": "int", "default": 15, "min": 1, "max": 1_440},
            "participation": {"type": "float", "default": 0.25, "min": 0.0, "max": 1.0},
            "volume_days": {"type": "int", "default": 21, "min": 0, "max": 365},
            "roll_days": {"type": "int", "default": 2, "min": 0, "max": 60},
            "rehedge_pct": {"type": "float", "default": 0.05, "min": 0.0, "max": 1.0},
            "children": {"type": "select", "default": "limit", "options": ["limit", "market"]},
            "unwind": {"type": "bool", "default": True},
        },
    }


def on_init(ctx: Any) -> None:
    if len(ctx.symbols) < 2:
        raise ValueError(
            "cash_carry needs the spot symbol and at least one dated inverse future "
            "(or run `tidemark backtest --strategy cash_carry` alone on the bundled sample)"
        )
    futures = sorted(ctx.symbols[1:], key=lambda s: ctx.instrument(s).expiry or 2**62)
    for symbol in futures:
        inst = ctx.instrument(symbol)
        if not (inst.inverse and inst.expiry):
            raise ValueError(f"cash_carry: {symbol} must be an inverse future with an expiry (set it in 'instruments')")
    ctx.state.update(
        futures=futures, front=None, phase="wait", busy_until=0, rehedge_due=False, target_btc=0.0, rolls=0
    )


def days_to_delivery(expiry_ns: int, now_ns: int) -> int:
    """Calendar days from today's date to the delivery date (the seed's
    ``(expiry - cur_day).days``)."""
    return (_date(expiry_ns) - _date(now_ns)).days


def _date(ns: int) -> dt.date:
    return EPOCH + dt.timedelta(days=ns // DAY)  # the UTC date, exactly


def slot_weights(ctx: Any, symbol: str, start: int) -> list[float]:
    """The seed's volume profile: per 15-minute slot of the day, the volume
    of ``symbol`` over the last ``volume_days`` days (1.0 for a slot with no
    bars), normalised, in the order of the schedule's slots from ``start``."""
    p = ctx.params
    interval = p["slot_minutes"] * MINUTE
    per_day = max(1, DAY // interval)
    profile = [0.0] * per_day
    seen = [False] * per_day
    times, volume = ctx.data[symbol].time, ctx.data[symbol].volume
    present = ctx.data[symbol].present
    bar = int(times[1] - times[0]) if len(times) > 1 else interval
    since = start - p["volume_days"] * DAY
    for k in range(len(times) - 1, -1, -1):
        close = int(times[k])
        if close <= since:
            break
        if not present[k]:
            continue
        slot = ((close - bar) % DAY) // interval
        profile[slot] += float(volume[k])
        seen[slot] = True
    # The seed fills a slot without bars with 1.0 (next to volumes in the
    # millions: no weight). It always had 21 days of history; a run that
    # starts with less than a day of it has slots without bars, and there
    # the profile is flat (equal weights) rather than one slot taking all.
    weights = profile if all(seen) else [1.0] * per_day
    total = sum(weights)
    return [weights[((start + k * interval) % DAY) // interval % per_day] / total for k in range(p["slots"])]


def plan(ctx: Any, weights: list[float] | None) -> dict[str, Any]:
    p = ctx.params
    out: dict[str, Any] = {
        "slots": p["slots"],
        "interval": p["slot_minutes"] * MINUTE,
        "participation": p["participation"],
    }
    if weights:
        out["weights"] = weights
    if p["children"] == "limit":
        out.update(child_type="limit", offsets=LADDER)
    return out


def front_for(ctx: Any) -> str | None:
    """The first future more than ``roll_days`` from delivery (the seed's
    CURRENT_QUARTER outside the roll window)."""
    for symbol in ctx.state["futures"]:
        if days_to_delivery(ctx.instrument(symbol).expiry, ctx.now) > ctx.params["roll_days"]:
            return symbol
    return None


def busy(ctx: Any) -> None:
    p = ctx.params
    ctx.state["busy_until"] = ctx.now + (p["slots"] + 2) * p["slot_minutes"] * MINUTE


def enter(ctx: Any, spot: str) -> None:
    p = ctx.params
    front = front_for(ctx)
    if front is None:
        return
    s, f = float(ctx.data[spot].close[-1]), float(ctx.data[front].close[-1])
    basis = f / s - 1.0
    days = (ctx.instrument(front).expiry - ctx.now) / DAY
    if not basis * 10_000 >= p["min_basis_bps"] or days <= 0:
        return
    target_btc = ctx.portfolio.equity * p["capital_pct"] / s
    contracts = round(target_btc * f / ctx.instrument(front).contract_size)
    ctx.record("basis_bps", basis * 10_000)
    ctx.record("carry_annual", basis * 365.0 / days)
    ctx.record("hedge_contracts", contracts)
    ctx.state.update(phase="entry", front=front, target_btc=target_btc)
    weights = slot_weights(ctx, front, ctx.now)
    ctx.twap("buy", target_btc, symbol=spot, tag="entry", **plan(ctx, weights))
    if contracts > 0:
        ctx.twap("sell", contracts, symbol=front, tag="entry", **plan(ctx, weights))
    busy(ctx)


def roll(ctx: Any, spot: str, front: str) -> bool:
    futures = ctx.state["futures"]
    later = futures[futures.index(front) + 1 :]
    if not later or not ctx.data[front].position.size:
        return False
    nxt = later[0]
    held = ctx.data[spot].position.size
    weights = slot_weights(ctx, front, ctx.now)
    ctx.roll(front, nxt, coin=-held, **plan(ctx, weights))
    ctx.record("roll_contracts", ctx.contracts_for(nxt, held))
    ctx.state["front"] = nxt
    ctx.state["rolls"] += 1
    busy(ctx)
    return True


def rehedge(ctx: Any, spot: str) -> None:
    """The seed's daily check: net delta measured with the spot price."""
    front = ctx.state["front"]
    held = ctx.data[spot].position.size
    contracts = ctx.data[front].position.size  # negative: short
    s = float(ctx.data[spot].close[-1])
    if held <= 0 or not s > 0:
        return
    size = ctx.instrument(front).contract_size
    net = held + contracts * size / s
    if abs(net) <= ctx.params["rehedge_pct"] * held:
        return
    trade = round(net * s / size)
    if trade:
        ctx.record("rehedge_contracts", -trade)
        ctx.order("sell" if trade > 0 else "buy", abs(trade), symbol=front, fill="close", tag="rehedge")


def unwind(ctx: Any, spot: str) -> None:
    ctx.state["phase"] = "unwind"
    flat = plan(ctx, None)
    held = ctx.data[spot].position.size
    if held > 0:
        ctx.twap("sell", held, symbol=spot, tag="unwind", **flat)
    for symbol in ctx.state["futures"]:
        size = ctx.data[symbol].position.size
        if size:
            ctx.twap("buy" if size < 0 else "sell", abs(size), symbol=symbol, tag="unwind", **flat)
    busy(ctx)


def on_bar(ctx: Any, i: int) -> None:
    p = ctx.params
    spot = ctx.symbols[0]
    state = ctx.state
    phase = state["phase"]
    if phase in ("unwind", "done"):
        return
    end = ctx.end
    window = (p["slots"] + 1) * p["slot_minutes"] * MINUTE
    if p["unwind"] and end is not None and phase != "wait" and end - ctx.now <= window:
        if ctx.now >= state["busy_until"]:
            unwind(ctx, spot)
        return
    if phase == "wait":
        if end is None or end - ctx.now > 2 * window:
            enter(ctx, spot)
        return
    front = state["front"]
    if ctx.now % DAY == 0 and phase in ("hold", "roll"):
        state["rehedge_due"] = True  # the day just ended: its end-of-day check (after a roll: once it is done)
    if ctx.now < state["busy_until"]:
        return
    state["phase"] = "hold"
    if state["rehedge_due"]:
        state["rehedge_due"] = False
        rehedge(ctx, spot)
    if days_to_delivery(ctx.instrument(front).expiry, ctx.now) <= p["roll_days"] and roll(ctx, spot, front):
        state["phase"] = "roll"
