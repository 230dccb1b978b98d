"""The strategy runtime: the module/class contract, ``ctx``, the runner actor.

Contract (module or class with the same names)::

    schema() -> dict                       # id, name, inputs
    on_init(ctx)                           # once, before the first bar
    on_bar(ctx, i)                         # i = index on the run's timeline
    on_open(ctx, i)         (optional)     # backtests: at step i's open, before it trades
    on_order(ctx, event)    (optional)     # any execution report of its orders
    on_trade(ctx, fill)     (optional)     # each of its fills
    on_finish(ctx)          (optional)
    on_book(ctx, book)      (optional)     # sessions on order books: each update
    on_quote(ctx, quote)    (optional)     # ... each change of the top of book
    wake(ctx) -> bool array (optional)     # backtests: the steps on_bar runs at

``on_bar`` may be left out by a strategy that has ``on_book`` or
``on_quote``.

``on_open(ctx, i)`` runs at the open of step ``i``, before anything trades
in it: ``ctx`` shows the bars up to ``i - 1`` (all closed) and
``ctx.opening(symbol)`` the open price of step ``i``, known at that moment.
A market order sent there fills at that open (an order sized from the open
price, as the opening auction allows); ``fill="close"`` fills at step ``i``'s
close. Backtests only (every step, wake masks aside).

``wake(ctx)`` lets a strategy whose ``on_bar`` acts only on sparse signals
(crosses, breakouts) skip the other steps of a backtest. It is called once
after ``on_init`` with ``ctx`` showing the whole series and returns one bool
per step; ``on_bar`` then runs only where it is true. It must be causal: the
runtime recomputes it over prefixes of the series and refuses a mask that
changes when later bars are hidden (:data:`WAKE_PROBES`). Skipping must not
change what the strategy does (``on_bar`` must be a no-op elsewhere);
``RunConfig.wake = false`` (``--every-bar``) calls ``on_bar`` at every step
to check that. Live sessions ignore ``wake``.

Book hooks run after the venue has applied the update and are not called
while that book is stale; ``ctx.book(symbol)`` reads the book at any time
(:mod:`tidemark.core.execution.quotes`).

``ctx.open/high/low/close/volume/time`` are NumPy views that end at the
current bar: ``ctx.close[-1]`` (== ``ctx.close[i]``) is the current close.
``ctx.ind.<name>(array, ...)`` computes an indicator once over the whole
series and returns the prefix view on every later call (O(1) per call);
indicators are causal, so the view reveals nothing after the current bar.
"""

from __future__ import annotations

from tidemark.core.strategy.context import Context, PortfolioView, PositionView, SymbolData
from tidemark.core.strategy.contract import LoadedStrategy, Strategy, StrategyError, from_namespace, load_source
from tidemark.core.strategy.runner import ORDER_EVENTS, WAKE_PROBES, StrategyRunner

__all__ = [
    "ORDER_EVENTS",
    "WAKE_PROBES",
    "Context",
    "LoadedStrategy",
    "PortfolioView",
    "PositionView",
    "Strategy",
    "StrategyError",
    "StrategyRunner",
    "SymbolData",
    "from_namespace",
    "load_source",
]
