"""Accounts: the portfolio (positions, cash per currency, PnL), buying
power, margin and liquidation, perpetual funding, and pre-trade risk."""
