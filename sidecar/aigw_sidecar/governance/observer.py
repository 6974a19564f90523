"""What the engine reports as it decides: the hook metrics and logs hang on.

The engine knows nothing of Prometheus; the sidecar passes an :class:`Observer` that turns
these calls into counters (``aigw_state_unavailable_total{operation,outcome}``,
``aigw_limit_decisions_total{counter,verdict}``, ``aigw_lease_events_total{outcome}``).
Label values are bounded: operations, outcomes and verdicts are fixed words and counter
names come from the policy (``budget:x``).
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["NullObserver", "Observer"]


class Observer(Protocol):
    """Receives governance events."""

    def state_unavailable(self, operation: str, outcome: str) -> None:
        """The state store was unreachable during ``operation`` (reserve/settle); ``outcome``
        is fail_open, fail_closed, fail_closed_not_enforced or deferred."""
        ...

    def limit_decision(self, counter: str, verdict: str) -> None:
        """A limit or budget refused (blocked), would have (warned/observed) or degraded
        the request to its fallback route (fallback)."""
        ...

    def lease_event(self, outcome: str) -> None:
        """Hot-tenant mode: a block leased or topped up (leased), refused because no full
        block fits under a limit (refused: calls are counted per call for a while), not
        leased because the store failed (failed), or given back (returned)."""
        ...


class NullObserver:
    """Reports nothing."""

    __slots__ = ()

    def state_unavailable(self, operation: str, outcome: str) -> None:
        return None

    def limit_decision(self, counter: str, verdict: str) -> None:
        return None

    def lease_event(self, outcome: str) -> None:
        return None
