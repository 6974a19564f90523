"""Passive health of one (route, backend): its circuit breaker and the provider's back-off.

One :class:`Health` lives in the backend's ``backend_state`` (so it survives bundle reloads,
:class:`~aigw_sidecar.attempts.chain.BackendStates`) and is read by the picker and written by
the breaker middleware. Two independent reasons keep a backend out of the next attempt:

- **the circuit** (outlier detection, Envoy's ``consecutive_5xx`` in spirit):
  ``consecutiveFailures`` health failures in a row (timeouts, unreachable or 5xx answers,
  streams cut mid-way; not a 429, not a 4xx: the backend answered) open it for
  ``openSeconds``; after that the first request through is the one probe (half-open: every
  other request skips the backend until the probe ends); a probe that succeeds closes the
  circuit, one that fails opens it again for ``openSeconds``;
- **the provider's back-off**: a ``Retry-After`` (or ``retry-after-ms``,
  ``x-ratelimit-reset-*``) keeps the backend out until that time has passed
  (``not_before``), for every request of the route, retries included.

Times are event-loop times (monotonic). The state gauge and transition counter are updated
on every transition; an open circuit whose time is up shows as ``half_open`` in
``/aigw/status`` (it is awaiting its probe) and moves there in the metrics when the probe
starts.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import TYPE_CHECKING

from aigw_sidecar.state import Key

if TYPE_CHECKING:
    from aigw_sidecar.metrics import BreakerMetrics

__all__ = ["HEALTH", "Circuit", "Health"]


class Circuit(StrEnum):
    """The states of a circuit breaker."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


_GAUGE = {Circuit.CLOSED: 0, Circuit.HALF_OPEN: 1, Circuit.OPEN: 2}
_EWMA = 0.2
"""Weight of the newest sample in the latency average."""


class Health:
    """Breaker state, back-off and recent latency of one (route, backend)."""

    __slots__ = (
        "circuit",
        "cool_rate_limited",
        "failures",
        "latency_s",
        "metrics",
        "not_before",
        "open_until",
        "probing",
    )

    def __init__(self, metrics: BreakerMetrics | None = None) -> None:
        self.circuit = Circuit.CLOSED
        self.failures = 0
        """Consecutive health failures."""
        self.open_until = 0.0
        self.probing = False
        """The half-open probe is in flight."""
        self.not_before = 0.0
        """The provider asked for no call before this time."""
        self.cool_rate_limited = False
        """Whether that back-off came from a 429 (else a 503)."""
        self.latency_s = 0.0
        """Moving average of successful attempts' time to response headers (0: none yet)."""
        self.metrics = metrics

    # -- what the picker reads ------------------------------------------------------------

    def closed_for(self, now: float) -> bool:
        """Whether the circuit lets a new attempt through now."""
        if self.circuit is Circuit.CLOSED:
            return True
        if self.probing:
            return False
        return self.circuit is Circuit.HALF_OPEN or now >= self.open_until

    def cooling(self, now: float) -> bool:
        return now < self.not_before

    def view(self, now: float) -> str:
        """The state as ``/aigw/status`` shows it."""
        if self.circuit is Circuit.OPEN and now >= self.open_until and not self.probing:
            return Circuit.HALF_OPEN.value
        return self.circuit.value

    def status(self, now: float) -> dict[str, object]:
        return {
            "state": self.view(now),
            "consecutiveFailures": self.failures,
            "openForSeconds": round(max(0.0, self.open_until - now), 3)
            if self.circuit is Circuit.OPEN
            else 0,
            "probing": self.probing,
            "backoffForSeconds": round(max(0.0, self.not_before - now), 3),
        }

    # -- what the breaker writes ----------------------------------------------------------

    def admit(self, now: float) -> bool | None:
        """Let an attempt through: True for the half-open probe, False for a plain attempt,
        None when the circuit refuses it."""
        if self.circuit is Circuit.CLOSED:
            return False
        if not self.closed_for(now):
            return None
        self.probing = True
        self._move(Circuit.HALF_OPEN)
        return True

    def succeeded(self, latency_s: float | None) -> None:
        self.failures = 0
        self.probing = False
        if self.circuit is not Circuit.CLOSED:
            self._move(Circuit.CLOSED)
        if latency_s is not None:
            self.latency_s = (
                latency_s
                if self.latency_s == 0
                else (1 - _EWMA) * self.latency_s + _EWMA * latency_s
            )

    def failed(self, now: float, threshold: int, open_s: float, *, probe: bool = False) -> None:
        """A health failure: ``threshold`` in a row open the circuit; so does a failed probe.
        (An attempt admitted before the circuit opened that fails during the probe is
        counted, but only the probe decides.)"""
        self.failures += 1
        if probe:
            self.probing = False
            self.open_until = now + open_s
            self._move(Circuit.OPEN)
        elif self.circuit is Circuit.CLOSED and self.failures >= threshold:
            self.open_until = now + open_s
            self._move(Circuit.OPEN)

    def released(self) -> None:
        """The probe ended without a verdict on health (a 429, the caller went away)."""
        self.probing = False

    def back_off(self, now: float, wait_s: float, *, rate_limited: bool) -> None:
        """The provider asked for no call for ``wait_s`` seconds."""
        if math.isfinite(wait_s) and wait_s > 0 and now + wait_s > self.not_before:
            self.not_before = now + wait_s
            self.cool_rate_limited = rate_limited

    def _move(self, circuit: Circuit) -> None:
        if circuit is self.circuit:
            return
        self.circuit = circuit
        if self.metrics is not None:
            self.metrics.state.set(_GAUGE[circuit])
            self.metrics.transitions[circuit].inc()


HEALTH = Key[Health]("resilience.health")
"""The :class:`Health` of a (route, backend), in its ``backend_state``."""
