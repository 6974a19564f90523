"""Money in integer nano-USD, and the prices of routes and backends.

Budgets are compared and summed by Redis scripts and across processes, so money is never a
float: it is an integer number of nano-US-dollars (1 USD = 10**9). Contract prices are
decimal strings with at most 9 decimals per *million* tokens, so a price is held exactly as
nano-USD per million tokens and a cost is ``ceil(tokens * price / 10**6)``: rounding always
goes up, never in the caller's favour. Doubles in Lua stay exact up to 2**53 nano-USD
(about 9 million USD per counter and window); amounts are added with INCRBY (int64) anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from aigw_contract.route import Backend, Pricing

__all__ = ["NANO", "Prices", "format_usd", "route_worst_prices", "usd_to_nano"]

NANO = 10**9


def usd_to_nano(amount: Decimal) -> int:
    """Exact nano-USD of a contract amount (at most 9 decimals), rounded up beyond that."""
    scaled = amount * NANO
    whole = int(scaled)
    return whole if whole == scaled else whole + 1


def format_usd(nano: int) -> str:
    """A header value: nano-USD as a plain decimal with 9 places (``0.000150000``)."""
    sign = "-" if nano < 0 else ""
    whole, frac = divmod(abs(nano), NANO)
    return f"{sign}{whole}.{frac:09d}"


@dataclass(frozen=True, slots=True)
class Prices:
    """Input and output prices in nano-USD per million tokens."""

    input_per_million: int
    output_per_million: int

    @staticmethod
    def of(pricing: Pricing) -> Prices:
        return Prices(
            usd_to_nano(pricing.input_per_million_tokens_usd),
            usd_to_nano(pricing.output_per_million_tokens_usd),
        )

    def cost(self, prompt_tokens: int, output_tokens: int) -> int:
        """Nano-USD of a call, rounded up."""
        numerator = prompt_tokens * self.input_per_million + output_tokens * self.output_per_million
        return -(-numerator // 1_000_000)


def route_worst_prices(backends: list[Backend]) -> Prices:
    """The highest input and output prices among a route's backends (fallbacks included):
    which backend serves is decided later, so estimates assume the dearest one."""
    prices = [Prices.of(b.pricing) for b in backends]
    return Prices(
        max(p.input_per_million for p in prices), max(p.output_per_million for p in prices)
    )
