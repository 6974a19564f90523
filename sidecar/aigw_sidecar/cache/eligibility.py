"""Whether a request may use the response cache at all: the one rule (``docs/cache.md``).

The cache step (:class:`aigw_sidecar.steps.cache.CacheLookup`) asks it for every request of
a use case with caching on, and ``aigw replay`` asks it for every recorded call it
re-evaluates under a candidate bundle, so the two never disagree about which calls a policy
caches. It decides from the use case's ``cache`` settings and what a request is (its
operation, its data classification, a ``Cache-Control: no-store``), never from the body:
whether the cache then answers (a hit, a miss, a stale or unusable entry) is the step's
business.

:func:`cache_rule` compiles a use case's settings once (None: caching is off);
:meth:`CacheRule.check` is a few comparisons on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass

from aigw_contract import DataClassification
from aigw_contract.policy import CacheSettings

__all__ = [
    "ASKED_OUTCOMES",
    "BYPASS_REASONS",
    "CACHED_OPERATIONS",
    "CacheRule",
    "cache_eligible",
    "cache_rule",
]

CACHED_OPERATIONS = frozenset({"chat", "embeddings"})
"""What the exact cache keeps (the semantic cache: chat only)."""
BYPASS_REASONS = frozenset({"operation", "classification", "no_store"})
"""Why a request of a use case with caching on is a recorded ``bypass``."""
ASKED_OUTCOMES = frozenset({"hit", "miss", "semantic-hit"})
"""``X-AIGW-Cache`` values (and audit ``cache``) of a request the cache was asked about."""


@dataclass(frozen=True, slots=True)
class CacheRule:
    """One use case's eligibility rule, compiled from its ``cache`` settings."""

    exact: bool
    semantic: bool
    excluded: frozenset[DataClassification]
    """Never cached (read or written): the policy's list, ``restricted`` always."""

    def check(
        self, operation: str, classification: DataClassification, *, no_store: bool = False
    ) -> str:
        """``""``: the cache is asked; a :data:`BYPASS_REASONS` word: a recorded bypass;
        ``"semantic_only"``: not asked and nothing to record (only the semantic cache is on,
        and it answers chat alone)."""
        if operation not in CACHED_OPERATIONS:
            return "operation"
        if classification in self.excluded:
            return "classification"
        if no_store:
            return "no_store"
        if not self.exact and operation != "chat":
            return "semantic_only"
        return ""


def cache_rule(settings: CacheSettings) -> CacheRule | None:
    """The rule of a use case's cache settings; None when neither cache is on."""
    if not settings.exact.enabled and not settings.semantic.enabled:
        return None
    return CacheRule(
        settings.exact.enabled,
        settings.semantic.enabled,
        frozenset(settings.excluded_classifications) | {DataClassification.RESTRICTED},
    )


def cache_eligible(
    settings: CacheSettings,
    operation: str,
    classification: DataClassification,
    *,
    no_store: bool = False,
) -> bool:
    """Whether the cache is asked about such a request of a use case with ``settings``."""
    rule = cache_rule(settings)
    return rule is not None and not rule.check(operation, classification, no_store=no_store)
