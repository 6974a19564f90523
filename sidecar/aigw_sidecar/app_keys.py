"""Typed keys of the state kept on the aiohttp application and request objects."""

from __future__ import annotations

import itertools
import random
import re
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING

from aiohttp import web

from .attempts import BackendStates
from .audit import AuditLog
from .bundle_store import BundleStore
from .context import RequestContext
from .drain import InFlight
from .memory import HeapTrimmer
from .metrics import Metrics
from .pipeline import Pipeline
from .settings import SidecarSettings
from .steps.govern import Governance
from .telemetry import GenAiMetrics

if TYPE_CHECKING:
    from .telemetry.export import Tracing

__all__ = [
    "AUDIT",
    "BACKEND_STATES",
    "CONTEXT",
    "DRAINING",
    "GENAI",
    "GOVERN",
    "HEAP",
    "IN_FLIGHT",
    "LARGE_BODY",
    "METRICS",
    "PIPELINE",
    "REQUEST_ID",
    "REQUEST_IDS",
    "RNG",
    "SERVER",
    "SETTINGS",
    "STORE",
    "TRACING",
    "Draining",
    "RequestIds",
    "correlation_id",
]

SERVER = "aigw"
"""The ``Server`` header of every answer: not aiohttp's name and version."""

_GOOD_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIds:
    """Request ids: a random per-process prefix and a counter (unique across pods, and
    cheaper than fresh randomness per request)."""

    __slots__ = ("_counter", "_prefix")

    def __init__(self) -> None:
        self._prefix = "req_" + secrets.token_hex(8)
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):08x}"


def correlation_id(headers: Mapping[str, str]) -> str | None:
    """The caller's ``X-Request-Id`` when it is sane: echoed and logged, never a key."""
    given = headers.get("X-Request-Id")
    if given and _GOOD_ID.match(given):
        return given
    return None


class Draining:
    """Set once SIGTERM arrived: ``/readyz`` then says not ready."""

    __slots__ = ("active",)

    def __init__(self) -> None:
        self.active = False


SETTINGS = web.AppKey("aigw_settings", SidecarSettings)
STORE = web.AppKey("aigw_store", BundleStore)
METRICS = web.AppKey("aigw_metrics", Metrics)
PIPELINE = web.AppKey("aigw_pipeline", Pipeline)
RNG = web.AppKey("aigw_rng", random.Random)
DRAINING = web.AppKey("aigw_draining", Draining)
GOVERN = web.AppKey("aigw_govern", Governance)
REQUEST_IDS = web.AppKey("aigw_request_ids", RequestIds)
IN_FLIGHT = web.AppKey("aigw_in_flight", InFlight)
HEAP = web.AppKey("aigw_heap", HeapTrimmer)
LARGE_BODY = web.RequestKey("aigw_large_body", bool)
"""Set on a request whose body counted as large for :data:`HEAP` (see ``memory.py``)."""
AUDIT = web.AppKey("aigw_audit", AuditLog)
"""The audit log, present only when a sink is configured."""
BACKEND_STATES = web.AppKey("aigw_backend_states", BackendStates)
GENAI = web.AppKey("aigw_genai", GenAiMetrics)
"""The GenAI client metrics and the tenant families (docs/telemetry.md)."""
TRACING: web.AppKey[Tracing] = web.AppKey("aigw_tracing")
"""The tracer, present only when tracing is configured (its module imports the SDK)."""
"""Per (route, backend) state across reloads (breakers): the attempt chain's, shown in
``/aigw/status``."""

REQUEST_ID = web.RequestKey("aigw_request_id", str)
CONTEXT = web.RequestKey("aigw_context", RequestContext)
