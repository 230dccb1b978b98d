"""Two long sleeves sharing one book: trend_long and pullback_long (seed 000).

Every symbol of the run is scored each bar from causal columns (ATR 14 as a
simple mean of true ranges, SMA 20 and 50, a Wilder-style RSI 14, trend
strength, a 48-bar momentum score), as seed 000's harness derives them:

* trend_long: close above SMA20 above SMA50 and up on the bar; stop at
  ``min(SMA20 - 1.1 ATR, low)``; half taken at ``entry + 2.2 R`` (the stop
  then moves to entry); a trailing stop ``max price - trailing_atr_multiple x
  ATR``; one pyramid at the close once the stop is at entry and the close is
  ``pyramid_trigger_r`` R above it; a time stop at the close.
* pullback_long: close above SMA50 but below SMA20 with RSI under 50; stop at
  ``min(SMA50 - 0.8 ATR, entry - ATR)``; target ``entry + 1.8 ATR``; exit at
  the close on the time stop or RSI >= 62.

Entries are decided at the open of the bar after the signal (``on_open``:
the signal bar has closed and the open is known), sized from risk
(``risk_per_trade`` scaled by the signal's risk scalar, a drawdown scalar, a
symbol scalar (BTC/ETH 0.45) and a score multiplier), capped at
``max_position_notional_fraction`` of equity, and gated in this order:
max positions, an existing position of the sleeve in the symbol, the
sleeve's position cap, cooldown, the correlation gate, invalid risk, size,
the sleeve's notional and risk budgets, the portfolio risk budget and the
gross exposure cap. Sleeves are served pullback first; candidates by score
with a correlation penalty. Every refusal is counted (``ctx.count("reject",
"<sleeve>/<reason>")``), as are raw signals, entries and trade events by
type; equity, open positions, open risk and the drawdown risk scalar are
recorded each bar.

The seed's order model is a run configuration: ``slippage_bps`` and
``limit_slippage_bps`` (entries, exits and the target slip 5 bp),
``commission_bps`` (4), ``intrabar: "pessimistic"`` (a stop before the target
in a bar), and a margin account (positions reach 140% of equity:
``account: margin`` with ``leverage`` >= 1.4). With it the strategy
reproduces seed 000's ``run_portfolio_backtest`` (tests/strategies/test_sleeves.py);
the last bar closes what is left (``final_exit``), as the seed does.
"""

import math

import numpy as np
import pandas as pd

SLEEVES = ("pullback_long", "trend_long")
MAJORS = ("BTC", "ETH")


def schema():
    return {
        "id": "sleeves",
        "name": "Portfolio sleeves: trend and pullback longs sharing capital",
        "category": "portfolio",
        "inputs": {
            "risk_per_trade": {"type": "float", "default": 0.0105, "min": 0.0, "max": 0.2},
            "cooldown_bars": {"type": "int", "default": 6, "min": 0, "max": 10_000},
            "trailing_atr_multiple": {"type": "float", "default": 5.0, "min": 0.0, "max": 50.0},
            "trend_time_stop_bars": {"type": "int", "default": 96, "min": 1, "max": 100_000},
            "pullback_time_stop_bars": {"type": "int", "default": 56, "min": 1, "max": 100_000},
            "max_portfolio_risk": {"type": "float", "default": 0.055, "min": 0.0, "max": 1.0},
            "max_positions": {"type": "int", "default": 8, "min": 1, "max": 1000},
            "max_position_notional_fraction": {"type": "float", "default": 0.55, "min": 0.0, "max": 10.0},
            "max_gross_exposure": {"type": "float", "default": 1.40, "min": 0.0, "max": 100.0},
            "correlation_lookback": {"type": "int", "default": 90, "min": 3, "max": 10_000},
            "trend_correlation_threshold": {"type": "float", "default": 0.82, "min": -1.0, "max": 1.0},
            "pullback_correlation_threshold": {"type": "float", "default": 0.92, "min": -1.0, "max": 1.0},
            "pyramid_enabled": {"type": "bool", "default": True},
            "pyramid_trigger_r": {"type": "float", "default": 2.0, "min": 0.0, "max": 100.0},
            "pyramid_risk_fraction": {"type": "float", "default": 0.25, "min": 0.0, "max": 10.0},
            "pyramid_size_fraction": {"type": "float", "default": 0.18, "min": 0.0, "max": 10.0},
            "pyramid_max_adds": {"type": "int", "default": 1, "min": 0, "max": 100},
            "enable_symbol_ranking": {"type": "bool", "default": True},
            "symbol_rank_top_n_long": {"type": "int", "default": 6, "min": 0, "max": 1000},
            "enable_score_based_sizing": {"type": "bool", "default": True},
            "score_sizing_floor": {"type": "float", "default": 0.90, "min": 0.0, "max": 10.0},
            "score_sizing_ceiling": {"type": "float", "default": 1.25, "min": 0.0, "max": 10.0},
            "score_sizing_center": {"type": "float", "default": 0.26, "min": -10.0, "max": 10.0},
            "score_sizing_width": {"type": "float", "default": 0.16, "min": 0.0, "max": 10.0},
            "allow_cross_sleeve_symbol_overlap": {"type": "bool", "default": True},
            "trend_rank_bias": {"type": "float", "default": 0.28, "min": -10.0, "max": 10.0},
            "pullback_rank_bias": {"type": "float", "default": 0.22, "min": -10.0, "max": 10.0},
            "candidate_corr_penalty_trend": {"type": "float", "default": 0.20, "min": 0.0, "max": 10.0},
            "candidate_corr_penalty_pullback": {"type": "float", "default": 0.05, "min": 0.0, "max": 10.0},
            "pullback_score_floor": {"type": "float", "default": 0.48, "min": -10.0, "max": 10.0},
            "trend_score_floor": {"type": "float", "default": 0.12, "min": -10.0, "max": 10.0},
            "trend_notional_budget": {"type": "float", "default": 0.95, "min": 0.0, "max": 100.0},
            "pullback_notional_budget": {"type": "float", "default": 0.45, "min": 0.0, "max": 100.0},
            "trend_risk_budget": {"type": "float", "default": 0.72, "min": 0.0, "max": 1.0},
            "pullback_risk_budget": {"type": "float", "default": 0.28, "min": 0.0, "max": 1.0},
            "trend_max_positions": {"type": "int", "default": 5, "min": 0, "max": 1000},
            "pullback_max_positions": {"type": "int", "default": 3, "min": 0, "max": 1000},
            "trend_min_positions": {"type": "int", "default": 0, "min": 0, "max": 1000},
            "pullback_min_positions": {"type": "int", "default": 1, "min": 0, "max": 1000},
            "warmup_bars": {"type": "int", "default": 200, "min": 0, "max": 100_000},
            "major_scalar": {"type": "float", "default": 0.45, "min": 0.0, "max": 10.0},
        },
    }


# -- the columns the sleeves read (seed 000's harness derivation), causal ------------------------


def _atr(high, low, close):
    h, lo, c = pd.Series(high), pd.Series(low), pd.Series(close)
    prev = c.shift(1)
    tr = pd.concat([h - lo, (h - prev).abs(), (lo - prev).abs()], axis=1).max(axis=1)
    return tr.rolling(14).mean().to_numpy()


def _sma(n):
    return lambda close: pd.Series(close).rolling(n).mean().to_numpy()


def _rsi(close):
    delta = pd.Series(close).diff()
    gain = delta.clip(lower=0.0).ewm(alpha=1 / 14, adjust=False).mean()
    loss = (-delta.clip(upper=0.0)).ewm(alpha=1 / 14, adjust=False).mean()
    return (100.0 - 100.0 / (1.0 + gain / loss.replace(0.0, np.nan))).fillna(50.0).to_numpy()


def _symbol_score(close):
    c = pd.Series(close)
    mom = c.pct_change(48)
    vol = c.pct_change().rolling(48).std()
    return (mom / (vol * np.sqrt(48))).fillna(0.0).to_numpy()


def _returns(close):
    return pd.Series(close).pct_change().to_numpy()


def _trend_strength(sma20, sma50, atr):
    return pd.Series((sma20 - sma50) / atr).fillna(0.0).to_numpy()


def on_init(ctx):
    for name, fn in (
        ("seed_atr", _atr),
        ("seed_sma20", _sma(20)),
        ("seed_sma50", _sma(50)),
        ("seed_rsi", _rsi),
        ("seed_symbol_score", _symbol_score),
        ("seed_returns", _returns),
        ("seed_trend_strength", _trend_strength),
    ):
        ctx.ind.register(name, fn)
    ctx.state.update(
        positions={},  # trade id -> the sleeve's own record of one position (the seed's)
        cooldown={},  # (symbol, sleeve) -> (exit time, bars blocked after it)
        bar_count={},  # symbol -> [last step counted, its bars up to that step]
        peak=None,
        trade_id=0,
        by_order={},  # order id -> trade id
        bar_exits=[],  # (trade id, position before, quantity, price, fee) of this bar's venue exits
        adjust=0.0,  # the seed's equity minus the account's, while on_bar walks the positions
        unreached={},  # trade id -> the position as the seed still holds it (its exit not reached yet)
    )


def _columns(ctx, symbol):
    """The derived columns of ``symbol`` up to the current step (views)."""
    d = ctx.data[symbol]
    ind = ctx.ind
    atr = ind.seed_atr(d.high, d.low, d.close)
    sma20, sma50 = ind.seed_sma20(d.close), ind.seed_sma50(d.close)
    return {
        "open": d.open,
        "high": d.high,
        "low": d.low,
        "close": d.close,
        "ATR": atr,
        "SMA20": sma20,
        "SMA50": sma50,
        "RSI": ind.seed_rsi(d.close),
        "symbol_score": ind.seed_symbol_score(d.close),
        "trend_strength": ind.seed_trend_strength(sma20, sma50, atr),
        "returns": ind.seed_returns(d.close),
    }


def _row(cols, i):
    close, prev = float(cols["close"][i]), float(cols["close"][i - 1]) if i else math.nan
    sma20, sma50, rsi = float(cols["SMA20"][i]), float(cols["SMA50"][i]), float(cols["RSI"][i])
    strength, score = float(cols["trend_strength"][i]), float(cols["symbol_score"][i])
    row = {name: float(values[i]) for name, values in cols.items() if name != "returns"}
    row["signal"] = int(close > sma20 and sma20 > sma50 and close > prev)
    row["pullback_signal"] = int(close > sma50 and close < sma20 and rsi < 50.0)
    row["entry_score"] = min(max(0.30 + 0.25 * math.tanh(strength) + 0.05 * math.tanh(score), 0.0), 1.0)
    row["pullback_entry_score"] = min(max(0.55 + 0.15 * math.tanh(strength) - 0.002 * (rsi - 40.0), 0.0), 1.0)
    return row


# -- book keeping ---------------------------------------------------------------------------------


def _event(ctx, pos, kind):
    ctx.count("events", f"{pos['sleeve']}/{kind}")


def on_trade(ctx, fill):
    """Keep the sleeves' own records in step with the venue's fills."""
    state = ctx.state
    trade_id = state["by_order"].get(fill.order_id)
    if trade_id is None or trade_id not in state["positions"]:
        return
    pos = state["positions"][trade_id]
    oid = fill.order_id
    if oid == pos["entry_id"]:
        pos["filled"] = True
        return
    if not pos.get("exit_kind") and oid[-3:] in (".sl", ".tp"):
        # an exit the venue made inside this bar: the seed reaches it in its turn (on_bar)
        state["bar_exits"].append((trade_id, dict(pos), fill.quantity, fill.price, fill.fee))
    if oid == pos["entry_id"] + ".tp" and pos["sleeve"] == "trend_long":
        pos["size"] -= fill.quantity
        pos["partial_taken"] = True
        pos["stop_price"] = max(pos["stop_price"], pos["base_entry_price"])
        pos["children"].discard(".tp")
        _event(ctx, pos, "partial")
        return
    if oid == pos.get("pyramid_id"):
        return  # booked when sent (its fill price is the close with slippage, as sized)
    # the stop, the pullback's target, a time or RSI exit at the close, the final exit
    kind = pos.get("exit_kind") or ("stop" if oid.endswith(".sl") else "time_exit")
    del state["positions"][trade_id]
    _event(ctx, pos, kind)
    if kind != "final_exit":  # re-entry blocked until that many bars after this one
        state["cooldown"][(pos["symbol"], pos["sleeve"])] = (fill.ts, ctx.params["cooldown_bars"])


def on_order(ctx, event):
    """An entry the venue or the account refused (or canceled) opens nothing."""
    state = ctx.state
    trade_id = state["by_order"].get(event.order_id)
    pos = state["positions"].get(trade_id) if trade_id is not None else None
    if pos is None or event.order_id != pos["entry_id"] or pos["filled"]:
        return
    if type(event).__name__ in ("OrderRejected", "RiskRejected", "OrderCanceled"):
        del state["positions"][trade_id]
        ctx.count("reject", f"{pos['sleeve']}/venue:{event.reason}")


def on_bar(ctx, i):
    """At the close: manage each open position in the order it was opened.

    The venue has already made this bar's stop and target exits; seed 000
    walks its positions one by one, so a position's pyramid sees the exits of
    the positions before it but not of those after it. ``adjust`` and
    ``unreached`` keep that view: the seed's equity is the account's plus
    ``adjust`` (later exits undone, earlier closes at this bar done), and its
    book still holds the positions whose exits it has not reached."""
    state = ctx.state
    exits = {}
    for trade_id, before, quantity, price, fee in state["bar_exits"]:
        close = float(ctx.data[before["symbol"]].close[-1])
        exits.setdefault(trade_id, []).append(((price - close) * quantity - fee, before))
    state["bar_exits"] = []
    state["adjust"] = -sum(delta for events in exits.values() for delta, _ in events)
    state["unreached"] = {trade_id: events[0][1] for trade_id, events in exits.items()}
    for trade_id in sorted(set(state["positions"]) | set(exits)):
        if trade_id in exits:  # the seed makes this exit now
            state["adjust"] += sum(delta for delta, _ in exits[trade_id])
            del state["unreached"][trade_id]
        pos = state["positions"].get(trade_id)
        if pos is None or not pos["filled"] or not ctx.data[pos["symbol"]].present[i]:
            continue  # seed 000 manages a position only at its symbol's own bars
        row = _row(_columns(ctx, pos["symbol"]), i)
        pos["bars_in_trade"] += 1
        pos["max_price"] = max(pos["max_price"], row["high"])
        if pos["sleeve"] == "trend_long":
            _manage_trend(ctx, pos, row, i)
        else:
            _manage_pullback(ctx, pos, row)
    state["adjust"], state["unreached"] = 0.0, {}
    if ctx.is_last:
        for pos in list(state["positions"].values()):
            if pos["filled"] and pos["size"] > 0 and not pos.get("exit_kind"):
                _close(ctx, pos, "final_exit")
    _record(ctx)


def _manage_trend(ctx, pos, row, i):
    p = ctx.params
    atr = row["ATR"]  # after a partial the stop is at entry already (on_trade); now it trails
    if not math.isnan(atr):
        pos["stop_price"] = max(pos["stop_price"], pos["max_price"] - pos["trailing_atr_multiple"] * atr)
    if pos["stop_price"] != pos["stop_sent"]:
        ctx.modify(pos["entry_id"] + ".sl", stop=pos["stop_price"])
        pos["stop_sent"] = pos["stop_price"]
    if (
        p["pyramid_enabled"]
        and pos["partial_taken"]
        and pos["pyramids_added"] < p["pyramid_max_adds"]
        and pos["stop_price"] >= pos["base_entry_price"]
    ):
        close = row["close"]
        if close >= pos["base_entry_price"] + p["pyramid_trigger_r"] * pos["base_initial_risk"]:
            _pyramid(ctx, pos, close)
    if pos["bars_in_trade"] > pos["time_stop_bars"]:
        _close(ctx, pos, "time_exit")


def _pyramid(ctx, pos, close):
    p = ctx.params
    add_entry = ctx.taker_price("buy", close, pos["symbol"])
    add_risk_per_unit = max(add_entry - pos["stop_price"], 0.0)
    if add_risk_per_unit <= 0:
        return
    equity = ctx.portfolio.equity + ctx.state["adjust"]
    book = _seed_book(ctx)
    open_risk = sum(abs(q["entry_price"] - q["stop_price"]) * q["size"] for q in book)
    gross = sum(q["size"] * float(ctx.data[q["symbol"]].close[-1]) for q in book)
    add_size = min(
        equity * p["risk_per_trade"] * p["pyramid_risk_fraction"] / add_risk_per_unit,
        pos["initial_size"] * p["pyramid_size_fraction"],
    )
    if not (
        add_size > 0
        and open_risk + add_size * add_risk_per_unit <= equity * p["max_portfolio_risk"]
        and gross + add_size * add_entry <= equity * p["max_gross_exposure"]
    ):
        return
    oid = ctx.buy(add_size, fill="close", symbol=pos["symbol"], tag=pos["sleeve"])
    ctx.state["by_order"][oid] = pos["trade_id"]
    pos["pyramid_id"] = oid
    new_size = pos["size"] + add_size
    pos["entry_price"] = (pos["entry_price"] * pos["size"] + add_entry * add_size) / new_size
    pos["size"] = new_size
    pos["pyramids_added"] += 1
    pos["max_price"] = max(pos["max_price"], add_entry)
    ctx.state["adjust"] += (close - add_entry) * add_size - ctx.fee(pos["symbol"], add_size, add_entry)
    ctx.modify(pos["entry_id"] + ".sl", size=pos["size"])  # the stop covers the add
    _event(ctx, pos, "pyramid")


def _manage_pullback(ctx, pos, row):
    if pos["bars_in_trade"] > pos["time_stop_bars"] or row["RSI"] >= 62:
        _close(ctx, pos, "time_exit")


def _close(ctx, pos, kind):
    """Exit the whole position at this bar's close; its stop and target go."""
    pos["exit_kind"] = kind
    close = float(ctx.data[pos["symbol"]].close[-1])
    price = ctx.taker_price("sell", close, pos["symbol"])
    ctx.state["adjust"] += (price - close) * pos["size"] - ctx.fee(pos["symbol"], pos["size"], price)
    for child in sorted(pos["children"]):
        ctx.cancel(pos["entry_id"] + child)
    pos["children"].clear()
    oid = ctx.sell(pos["size"], fill="close", symbol=pos["symbol"], reduce_only=True, tag=pos["sleeve"])
    ctx.state["by_order"][oid] = pos["trade_id"]


def _seed_book(ctx):
    """The positions seed 000 holds at this point of its walk: those held,
    and those whose venue exit it has not reached yet (as they were)."""
    return [*_held(ctx), *ctx.state["unreached"].values()]


def _held(ctx):
    """Positions still held after this bar (not closing at its close)."""
    return [p for p in ctx.state["positions"].values() if not p.get("exit_kind")]


def _open_risk(ctx):
    return sum(abs(p["entry_price"] - p["stop_price"]) * p["size"] for p in _held(ctx))


def _gross(ctx):
    return sum(p["size"] * float(ctx.data[p["symbol"]].close[-1]) for p in _held(ctx))


def _record(ctx):
    ctx.record("open_positions", len(_held(ctx)))
    ctx.record("open_risk", _open_risk(ctx))


# -- entries at the next open -----------------------------------------------------------------------


def _risk_scalar(equity, peak):
    if peak <= 0:
        return 1.0
    dd = 1.0 - equity / peak
    return 0.50 if dd >= 0.18 else 0.75 if dd >= 0.12 else 1.0


def _score_multiplier(score, p):
    width = p["score_sizing_width"]
    if width <= 0:
        return 1.0
    z = (score - p["score_sizing_center"]) / width
    return p["score_sizing_floor"] + (p["score_sizing_ceiling"] - p["score_sizing_floor"]) / (1.0 + math.exp(-z))


def _symbol_scalar(ctx, symbol):
    name = symbol.upper()
    return ctx.params["major_scalar"] if name.startswith(MAJORS) else 1.0


def _bar_index(ctx, symbol, i):
    """Seed 000 counts bars per symbol: the index of ``symbol``'s bar at step
    ``i`` among its own bars (its warm-up, cooldown and lookbacks are in
    those bars, not in the steps of the common clock). Amortised O(1)."""
    seen = ctx.state["bar_count"].setdefault(symbol, [-1, 0])  # [last step counted, bars up to it]
    present = ctx.data[symbol].present
    if i > seen[0]:
        seen[1] += int(np.count_nonzero(present[seen[0] + 1 : i + 1]))
        seen[0] = i
        return seen[1] - 1
    return int(np.count_nonzero(present[: i + 1])) - 1


def _pearson(a, b):
    """Pearson correlation of two equal-length float arrays with no NaN, as
    pandas' ``Series.corr`` computes it (centred, scaled by the largest
    deviation, n - 1 normalisation, clipped to [-1, 1]); NaN where it is
    undefined (fewer than 2 values, or a constant array). In NumPy: the
    pandas objects it replaced cost more than half of a seed-000 run."""
    if len(a) < 2:
        return math.nan
    a = a - a.mean()
    b = b - b.mean()
    a_scale = np.max(np.abs(a))
    b_scale = np.max(np.abs(b))
    if a_scale == 0 or b_scale == 0:
        return math.nan
    a = a / a_scale
    b = b / b_scale
    fact = len(a) - 1
    a_sd = np.sqrt(np.dot(a, a) / fact)
    b_sd = np.sqrt(np.dot(b, b) / fact)
    if a_sd == 0 or b_sd == 0:
        return math.nan
    return float(np.clip(np.dot(a, b) / fact / a_sd / b_sd, -1.0, 1.0))


def _correlation(ctx, symbol, i):
    """Mean correlation of the symbol's returns with each open position's over
    the lookback bars before ``i`` (as seed 000 measures it: over the bars
    where both returns are known, if there are enough of them)."""
    positions = ctx.state["positions"]
    lookback = ctx.params["correlation_lookback"]
    if not positions or _bar_index(ctx, symbol, i) < lookback:
        return 0.0
    mine = _columns(ctx, symbol)["returns"][i - lookback : i]
    mine_known = ~np.isnan(mine)
    enough = max(lookback // 3, 20)
    corrs = []
    for pos in positions.values():
        if not ctx.data[pos["symbol"]].present[i] or _bar_index(ctx, pos["symbol"], i) < lookback:
            continue
        theirs = _columns(ctx, pos["symbol"])["returns"][i - lookback : i]
        both = mine_known & ~np.isnan(theirs)
        if int(np.count_nonzero(both)) < enough:
            continue
        corr = _pearson(mine[both], theirs[both])
        if not math.isnan(corr):
            corrs.append(corr)
    return float(np.mean(corrs)) if corrs else 0.0


def _rank(c, p):
    corr = max(c["avg_book_corr"], 0.0)
    if c["strategy"] == "trend_long":
        bias, weight, penalty = p["trend_rank_bias"], 0.25, p["candidate_corr_penalty_trend"]
    else:
        bias, weight, penalty = p["pullback_rank_bias"], 0.20, p["candidate_corr_penalty_pullback"]
    return c["score"] + bias + weight * c["symbol_score"] - penalty * corr


def on_open(ctx, step):
    """At the open of ``step``: the bar before it (``i``) is the signal bar."""
    i = step - 1
    if i < 0:
        return
    p = ctx.params
    state = ctx.state
    equity = ctx.portfolio.equity
    state["peak"] = equity if state["peak"] is None else max(state["peak"], equity)
    rows = {}
    for symbol in ctx.symbols:
        if ctx.data[symbol].present[i]:
            _bar_index(ctx, symbol, i)
            rows[symbol] = _row(_columns(ctx, symbol), i)
    rank_allowed = set(rows)
    if p["enable_symbol_ranking"]:
        ranked = sorted(((s, r["symbol_score"]) for s, r in rows.items()), key=lambda x: x[1], reverse=True)
        rank_allowed = {s for s, _ in ranked[: max(p["symbol_rank_top_n_long"], 0)]}
    candidates = {sleeve: [] for sleeve in SLEEVES}
    for symbol, row in rows.items():
        if _bar_index(ctx, symbol, i) <= p["warmup_bars"] or math.isnan(ctx.opening(symbol)):
            continue  # warming up, or no bar at this open to enter at
        corr = _correlation(ctx, symbol, i)
        base = {"symbol": symbol, "row": row, "avg_book_corr": corr, "symbol_score": row["symbol_score"]}
        if row["signal"]:
            ctx.count("signals", "trend_long")
            if symbol not in rank_allowed:
                ctx.count("reject", "trend_long/ranking_or_filter")
            elif row["entry_score"] < p["trend_score_floor"]:
                ctx.count("reject", "trend_long/score_floor")
            else:
                trend = {**base, "strategy": "trend_long", "score": row["entry_score"], "risk_scalar": 1.0}
                candidates["trend_long"].append(trend)
        if row["pullback_signal"]:
            ctx.count("signals", "pullback_long")
            if row["pullback_entry_score"] < p["pullback_score_floor"]:
                ctx.count("reject", "pullback_long/score_floor")
            else:
                candidates["pullback_long"].append(
                    {**base, "strategy": "pullback_long", "score": row["pullback_entry_score"], "risk_scalar": 0.88}
                )
    for sleeve in SLEEVES:
        ordered = sorted(candidates[sleeve], key=lambda c: _rank(c, p), reverse=True)
        if ordered:
            # the seed books an entry at once: its fee and its mark at this close move the next sleeve's equity
            equity -= _enter(ctx, sleeve, ordered, i, equity)


def _cooling(ctx, symbol, sleeve, i):
    """True while ``symbol`` is cooling down for ``sleeve`` at signal bar ``i``."""
    until = ctx.state["cooldown"].get((symbol, sleeve))
    if until is None:
        return False
    exit_ts, bars = until
    exit_step = int(np.searchsorted(ctx.time, exit_ts))
    return _bar_index(ctx, symbol, i) <= _bar_index(ctx, symbol, exit_step) + bars


def _enter(ctx, sleeve, candidates, i, equity):
    """Enter what passes the gates; returns how much the entries lower the
    equity the seed marks at this close (fees, and entry above the close)."""
    p = ctx.params
    state = ctx.state
    positions = state["positions"]
    prefix = "trend" if sleeve == "trend_long" else "pullback"
    open_risk = _open_risk(ctx)
    gross = _gross(ctx)
    mine = [pos for pos in positions.values() if pos["sleeve"] == sleeve]
    sleeve_notional = sum(pos["size"] * float(ctx.data[pos["symbol"]].close[-1]) for pos in mine)
    sleeve_risk = sum(abs(pos["entry_price"] - pos["stop_price"]) * pos["size"] for pos in mine)
    sleeve_count = len(mine)
    sleeve_max, sleeve_min = p[f"{prefix}_max_positions"], p[f"{prefix}_min_positions"]
    risk_budget = equity * p["max_portfolio_risk"] * p[f"{prefix}_risk_budget"]
    notional_budget = equity * p[f"{prefix}_notional_budget"]
    must_deploy = sleeve_count < sleeve_min
    booked = 0.0
    for c in candidates:
        symbol = c["symbol"]

        def refuse(reason):
            ctx.count("reject", f"{sleeve}/{reason}")

        if len(positions) >= p["max_positions"]:
            refuse("max_positions")
            continue
        if any(pos["symbol"] == symbol and pos["sleeve"] == sleeve for pos in positions.values()):
            refuse("existing_same_sleeve_symbol")
            continue
        if not p["allow_cross_sleeve_symbol_overlap"] and any(pos["symbol"] == symbol for pos in positions.values()):
            refuse("existing_symbol")
            continue
        if sleeve_count >= sleeve_max:
            refuse("strategy_position_cap")
            continue
        if _cooling(ctx, symbol, sleeve, i):
            refuse("cooldown")
            continue
        threshold = p[f"{prefix}_correlation_threshold"]
        if c["avg_book_corr"] > (0.97 if must_deploy and sleeve == "pullback_long" else threshold):
            refuse("correlation_gate")
            continue
        row = c["row"]
        entry_price = ctx.taker_price("buy", ctx.opening(symbol), symbol)
        atr = row["ATR"]
        if sleeve == "trend_long":
            stop = min(row["SMA20"] - 1.1 * atr, row["low"])
            risk_per_unit = entry_price - stop
            target, time_stop, trail = math.nan, p["trend_time_stop_bars"], p["trailing_atr_multiple"]
        else:
            stop = min(row["SMA50"] - 0.8 * atr, entry_price - 1.0 * atr)
            risk_per_unit = entry_price - stop
            target, time_stop, trail = entry_price + 1.8 * atr, p["pullback_time_stop_bars"], 0.0
        if math.isnan(risk_per_unit) or risk_per_unit <= 0 or risk_per_unit / entry_price < 0.0015:
            refuse("invalid_risk")
            continue
        scalar = _risk_scalar(equity, state["peak"])
        score_mult = _score_multiplier(c["score"], p) if p["enable_score_based_sizing"] else 1.0
        fraction = p["risk_per_trade"] * c["risk_scalar"] * scalar * _symbol_scalar(ctx, symbol) * score_mult
        size = min(equity * fraction / risk_per_unit, equity * p["max_position_notional_fraction"] / entry_price)
        notional, risk_cash = size * entry_price, size * risk_per_unit
        if size <= 0:
            refuse("size_zero")
            continue
        if sleeve_notional + notional > notional_budget:
            refuse("strategy_notional_budget")
            continue
        if sleeve_risk + risk_cash > risk_budget:
            refuse("strategy_risk_budget")
            continue
        if open_risk + risk_cash > equity * p["max_portfolio_risk"]:
            refuse("portfolio_risk_budget")
            continue
        if gross + notional > equity * p["max_gross_exposure"]:
            refuse("gross_exposure")
            continue
        state["trade_id"] += 1
        trade_id = state["trade_id"]
        exits = {"stop_loss": stop}
        if sleeve == "trend_long":
            exits.update(take_profit=entry_price + 2.2 * risk_per_unit, take_profit_size=size * 0.5)
        else:
            exits.update(take_profit=target)
        entry_id = ctx.bracket("buy", size, symbol=symbol, risk_price=stop, tag=sleeve, **exits)
        state["by_order"].update({entry_id: trade_id, entry_id + ".sl": trade_id, entry_id + ".tp": trade_id})
        positions[trade_id] = {
            "trade_id": trade_id,
            "symbol": symbol,
            "sleeve": sleeve,
            "entry_id": entry_id,
            "entry_price": entry_price,
            "base_entry_price": entry_price,
            "stop_price": stop,
            "stop_sent": stop,
            "target_price": target,
            "size": size,
            "initial_size": size,
            "base_initial_risk": risk_per_unit,
            "max_price": entry_price,
            "partial_taken": False,
            "bars_in_trade": 0,
            "time_stop_bars": time_stop,
            "trailing_atr_multiple": trail,
            "pyramids_added": 0,
            "filled": False,
            "children": {".sl", ".tp"},
        }
        close = float(ctx.data[symbol].close[-1])
        booked += ctx.fee(symbol, size, entry_price) + (entry_price - close) * size
        ctx.count("entries", sleeve)
        _event(ctx, positions[trade_id], "entry")
        sleeve_count += 1
        sleeve_notional += notional
        sleeve_risk += risk_cash
        open_risk += risk_cash
        gross += notional
        must_deploy = sleeve_count < sleeve_min
    return booked
