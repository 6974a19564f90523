"""Governance outcomes: a denial the caller sees, and the decisions every request records.

The engine does not import the sidecar's HTTP error tree; it raises :class:`Denied` with a
:class:`DenyKind` whose value is the DESIGN error ``type`` (``permission_denied``,
``rate_limited``, ...). The pipeline step maps it to the sidecar's error class.

Enforcement modes: every check produces a :class:`Decision`. Under ``enforce`` a failed
check raises; under ``warn`` and ``observe`` it is recorded with ``blocked=False`` ("would
have blocked") and the request goes on; ``warn`` also surfaces it in ``X-AIGW-Warning``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from aigw_contract import EnforcementMode

__all__ = ["Decision", "Denied", "DenyKind", "Verdict"]


class DenyKind(StrEnum):
    """Why a request is refused; the value is the error ``type`` of DESIGN.md."""

    INVALID_REQUEST = "invalid_request"
    PERMISSION_DENIED = "permission_denied"
    RATE_LIMITED = "rate_limited"
    BUDGET_EXCEEDED = "budget_exceeded"
    COST_LIMIT_EXCEEDED = "cost_limit_exceeded"
    STATE_UNAVAILABLE = "upstream_unavailable"
    """Shared state unreachable under ``failMode: closed``."""


class Denied(Exception):
    """A request the policy refuses."""

    def __init__(
        self,
        kind: DenyKind,
        message: str,
        *,
        code: str,
        retry_after: int | None = None,
        step: str = "limit",
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.code = code
        self.step = step
        """The governance step that refused (identify, authorize, constrain, limit)."""
        self.retry_after = retry_after
        """Whole seconds for ``Retry-After`` (rate limits, budgets, unavailable state)."""


class Verdict(StrEnum):
    """What happened to a check that failed."""

    BLOCKED = "blocked"
    WARNED = "warned"
    OBSERVED = "observed"


@dataclass(frozen=True, slots=True)
class Decision:
    """One failed check, blocking or not, for the audit record and metrics."""

    step: str
    code: str
    message: str
    verdict: Verdict

    @staticmethod
    def for_mode(mode: EnforcementMode, step: str, code: str, message: str) -> Decision:
        """The decision a failed check becomes under ``mode``."""
        verdict = {
            EnforcementMode.ENFORCE: Verdict.BLOCKED,
            EnforcementMode.WARN: Verdict.WARNED,
            EnforcementMode.OBSERVE: Verdict.OBSERVED,
        }[mode]
        return Decision(step, code, message, verdict)
