"""What a request claims about itself, as typed and bounded values.

The governor never reads caller headers or body fields itself: the sidecar's edge
(:mod:`aigw_sidecar.claims`) parses them into one :class:`Claims` and refuses anything
malformed, repeated or out of bounds with a 400 before governance runs. So every value
here is already well-formed: names are DNS-1123 labels, money is a non-negative integer of
nano-USD below :data:`MAX_COST_NUSD`, a deadline is between 1 and :data:`MAX_LATENCY_MS`.
What a claim is *allowed* to be (a granted tenant, an allowed classification, a limit that
only tightens) is still governance's decision.
"""

from __future__ import annotations

from dataclasses import dataclass

from aigw_contract import DataClassification

__all__ = ["MAX_COST_NUSD", "MAX_LATENCY_MS", "Claims"]

MAX_LATENCY_MS = 3_600_000
"""Largest per-request deadline a caller may ask for: the contract's bound of
``limits.maxLatencyMs`` (one hour)."""
MAX_COST_NUSD = 10**18 - 1
"""Largest per-request cost cap a caller may state (999,999,999.999999999 USD): the
contract's money format, nine digits before and after the point; fits int64."""


@dataclass(frozen=True, slots=True)
class Claims:
    """A request's claims; ``None`` where the caller stated nothing."""

    tenant: str | None = None
    """``X-AIGW-Tenant`` or body ``metadata.tenant``: a DNS-1123 label."""
    use_case: str | None = None
    """``X-AIGW-Use-Case`` or body ``metadata.use_case``: a DNS-1123 label."""
    user: str | None = None
    """``X-AIGW-User``: printable ASCII, at most 256 characters (never a metric label)."""
    channel: str | None = None
    """``X-AIGW-Channel``: a token of at most 63 characters."""
    data_classification: DataClassification | None = None
    """``X-AIGW-Data-Classification``."""
    max_cost_nusd: int | None = None
    """``X-AIGW-Max-Cost-USD`` in nano-USD, 0 to :data:`MAX_COST_NUSD`."""
    max_latency_ms: int | None = None
    """``X-AIGW-Max-Latency-Ms``, 1 to :data:`MAX_LATENCY_MS`."""
    quality_tier: str | None = None
    """``X-AIGW-Quality-Tier``: a token of at most 63 characters."""
    region: str | None = None
    """``X-AIGW-Region``: a token of at most 63 characters."""
    idempotency_key: str | None = None
    """``Idempotency-Key``: 1 to 255 printable ASCII characters (its sf-string quotes
    removed); never logged or used as a label."""
