"""The well-known typed state keys: what one step publishes for the others to read.

Per request (``ctx.state[KEY]``):

=============  ==============================  =============================================
key            set by                          holds
=============  ==============================  =============================================
IDENTITY       the admit step                  who is calling: namespace, tenant, app, use
                                               case, the governing policy
ADMISSION      the admit step                  identity + route + constraints (prompt
                                               estimate, output bound, worst-case cost,
                                               deadline) + the governance decisions
GRANT          the limit step                  the reservation held against rate limits and
                                               budgets (settled when the call ends)
CLAIMS         the route or admit step         the caller's parsed claims (tenant, use case,
                                               classification, limits, tier, region,
                                               Idempotency-Key), parsed once
INSPECTION     the inspect steps               what redaction, injection and tool checks
                                               found and did: categories, detectors,
                                               actions and counts, never values
TRACE          the trace step (tracing on)     the request's trace id, server span id and
                                               sampling decision (the audit record's
                                               ``trace_id``)
=============  ==============================  =============================================

Per bundle (``config.prepared[KEY]``, written by ``Step.prepare``):

===============  ==========================================================================
GOVERNANCE_VIEW  the governance engine's view of the bundle (policy of this pod, prices)
MODELS           the ``GET /v1/models`` bodies (OpenAI, Anthropic) this workload may use
===============  ==========================================================================

Everything else an audit record needs is a plain field of the context (``attempts``,
``decisions``, ``cache``, ``usage``, ``cost_nano``, ``status``, ``error_type``). A step's
private state uses a key of its own, declared in its module.
"""

from __future__ import annotations

from dataclasses import dataclass

from .governance import Admission, BundleView, Claims, Grant, Identity
from .inspection import InspectionReport
from .state import Key

__all__ = [
    "ADMISSION",
    "CLAIMS",
    "GOVERNANCE_VIEW",
    "GRANT",
    "IDENTITY",
    "INSPECTION",
    "MODELS",
    "TRACE",
    "TraceIds",
]


@dataclass(frozen=True, slots=True)
class TraceIds:
    """The request's place in its trace (``ctx.state[TRACE]``, set by the trace step when
    tracing is on): the audit record carries ``trace_id`` so a record and its spans join."""

    trace_id: str
    """32 lowercase hex digits: the caller's trace (``traceparent``) or a new one."""
    span_id: str
    """16 hex digits: the request's server span."""
    sampled: bool
    """Whether the spans of this request are exported."""


IDENTITY = Key("identity", Identity)
ADMISSION = Key("admission", Admission)
GRANT = Key("grant", Grant)
CLAIMS = Key("claims", Claims)
INSPECTION = Key("inspection", InspectionReport)
TRACE = Key("trace", TraceIds)
GOVERNANCE_VIEW = Key("governance.view", BundleView)
MODELS: Key[tuple[bytes, bytes]] = Key("models")
