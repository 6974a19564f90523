"""Money in integer nano-USD, and the prices of routes and backends.

Budgets are compared and summed by Redis scripts and across processes, so money is never a
float: it is an integer number of nano-US-dollars (1 USD = 10**9). Contract prices are
decimal strings with at most 9 decimals per *million* tokens, so a price is held exactly as
nano-USD per million tokens and a cost is ``ceil(tokens * price / 10**6)``: rounding always
goes up, never in the caller's favour. Doubles in Lua stay exact up to 2**53 nano-USD
(about 9 million USD per counter and window); amounts are added with INCRBY (int64) anyway.

This is the sidecar's one money unit: the ``X-AIGW-Cost-USD`` header, the
``aigw_cost_usd_total`` metric and budget settlements all come from :meth:`Prices.cost_of`
of one :class:`~.usage.Usage`, and :func:`format_usd` is the one formatter.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from aigw_contract.route import Backend, Pricing

if TYPE_CHECKING:
    from .usage import Usage

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
    """Prices in nano-USD per million tokens: input, output, and the two prompt-cache prices
    (cache reads and cache writes; None: the input price)."""

    input_per_million: int
    output_per_million: int
    cached_input_per_million: int | None = None
    cache_write_per_million: int | None = None

    @staticmethod
    def of(pricing: Pricing) -> Prices:
        cached = pricing.cached_input_per_million_tokens_usd
        written = pricing.cache_write_per_million_tokens_usd
        return Prices(
            usd_to_nano(pricing.input_per_million_tokens_usd),
            usd_to_nano(pricing.output_per_million_tokens_usd),
            usd_to_nano(cached) if cached is not None else None,
            usd_to_nano(written) if written is not None else None,
        )

    def cost(self, prompt_tokens: int, output_tokens: int) -> int:
        """Nano-USD of a call whose prompt is all plain input (estimates), rounded up."""
        numerator = prompt_tokens * self.input_per_million + output_tokens * self.output_per_million
        return -(-numerator // 1_000_000)

    def cost_of(self, usage: Usage) -> int:
        """Nano-USD of what a call consumed, cache reads and writes at their own prices."""
        base = self.input_per_million
        cached = self.cached_input_per_million
        written = self.cache_write_per_million
        plain = usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens
        numerator = (
            plain * base
            + usage.cached_tokens * (base if cached is None else cached)
            + usage.cache_write_tokens * (base if written is None else written)
            + usage.completion_tokens * self.output_per_million
        )
        return -(-numerator // 1_000_000)


def route_worst_prices(backends: list[Backend]) -> Prices:
    """The highest input and output prices among a route's backends (fallbacks included):
    which backend serves is decided later, so estimates assume the dearest one (a worst case
    assumes no prompt-cache discount)."""
    prices = [Prices.of(b.pricing) for b in backends]
    return Prices(
        max(p.input_per_million for p in prices), max(p.output_per_million for p in prices)
    )
