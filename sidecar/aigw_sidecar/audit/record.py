"""One audit record (schema ``aigw.audit/v1``, ``docs/audit.md``) from a finished request.

:func:`call_record` reads only the :class:`~aigw_sidecar.context.RequestContext` (and the
typed state the steps published on it) when the call has ended, and returns a plain dict:
the writer seals it into the hash chain off the hot path. What a record never holds: a
credential or any caller header beyond the correlation ids, a provider's error message (it
can echo the prompt), a matched sensitive value (inspection findings are categories and
counts), the user id (a keyed hash), prompt or answer text unless the use case's
``audit.storePrompts`` is on (and then the text as it went upstream and came back, i.e.
after redaction, bounded). Caller strings that are kept (``model``, tool names) are kept
only when they have the form a route or tool name can have, else as a hash.

The ``request`` member holds what ``aigw replay`` needs to re-evaluate the call offline
under another bundle: the claims, the prompt estimate, the requested output bound, the
choices and the declared tools.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from aigw_contract import AuditQueueFull, EnforcementMode, UseCase
from aigw_contract.policy import AuditSettings
from aigw_sidecar.context import Json, RequestContext
from aigw_sidecar.errors import SidecarError
from aigw_sidecar.governance import format_usd
from aigw_sidecar.governance.claims import Claims
from aigw_sidecar.governance.grants import Grant
from aigw_sidecar.keys import ADMISSION, GOVERNANCE_VIEW, GRANT, IDENTITY, INSPECTION, TRACE
from aigw_sidecar.runtime import RuntimeConfig
from aigw_sidecar.settings import SidecarSettings
from aigw_sidecar.state import Key

__all__ = [
    "FACTS",
    "SCHEMA",
    "Facts",
    "PodInfo",
    "UserHasher",
    "audit_settings",
    "bare_record",
    "call_record",
    "safe_name",
    "stores_prompts",
]

SCHEMA = "aigw.audit/v1"
_DEFAULTS = AuditSettings()
_NAME = re.compile(r"[A-Za-z0-9._:/@+-]{1,128}", re.ASCII)
_TOOL = re.compile(r"[A-Za-z0-9_.:-]{1,64}", re.ASCII)
"""The contract's tool-name form: a name without it can never be allowed by any policy."""
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}", re.ASCII)
_CORRELATION = re.compile(r"[A-Za-z0-9._:-]{1,128}", re.ASCII)
_MAX_LABELS = 64
"""Pod labels a record carries at most (all of them, normally: replay selects policies by
them)."""
_WOULD_BLOCK = frozenset({"warned", "observed"})


@dataclass(frozen=True, slots=True)
class Facts:
    """What the request asked for, captured before any step rewrote the body."""

    max_tokens: int | None
    choices: int
    tools: tuple[str, ...]


FACTS = Key("audit.facts", Facts)


def safe_name(value: str, form: re.Pattern[str] = _NAME) -> str:
    """``value`` if it has the form of a route or model alias (or ``form``); else a hash."""
    if form.fullmatch(value):
        return value
    return "#" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:16]


def _tool(value: str) -> str:
    return safe_name(value, _TOOL)


def _reason(decision: Any, allowed: list[str] | None, facts: Facts | None) -> str:
    """A decision's reason; the tool check's names the caller's tools, kept in tool form."""
    if decision.code == "tool_not_allowed":
        tools = facts.tools if facts is not None else ()
        refused = [_tool(t) for t in tools if allowed is None or t not in allowed]
        return "tools not allowed: " + ", ".join(refused)
    return str(decision.reason)[:300]


def _use_case(ctx: RequestContext, claims: Claims | None) -> UseCase | None:
    """The call's use case: the resolved one, else the one it claimed (or the default)."""
    identity = ctx.state.get(IDENTITY)
    if identity is not None:
        return identity.use_case
    view = ctx.config.prepared.get(GOVERNANCE_VIEW)
    policy = view.index.policy if view is not None else None
    if policy is None:
        return None
    name = (claims.use_case if claims is not None else None) or policy.default_use_case
    return next((u for u in policy.use_cases if u.name == name), None)


class UserHasher:
    """The keyed hash of a user id: HMAC-SHA256 under the sidecar's audit key, 128 bits."""

    __slots__ = ("_keyed", "key_id")

    def __init__(self, key: bytes) -> None:
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)
        """The MAC with the key absorbed and no message: each user's hash starts from a copy
        (half the cost of keying a new one per call)."""
        self.key_id = hashlib.sha256(b"aigw-audit-key-id:" + key).hexdigest()[:8]
        """Names the key (not secret): hashes under the same key id are comparable."""

    def __call__(self, user: str) -> str:
        mac = self._keyed.copy()
        mac.update(user.encode("utf-8"))
        return f"hmac-sha256:{self.key_id}:{mac.hexdigest()[:32]}"


@dataclass(frozen=True, slots=True)
class PodInfo:
    """The pod's identity as every record states it (computed once per sidecar)."""

    info: Json

    @staticmethod
    def of(settings: SidecarSettings) -> PodInfo:
        labels = dict(sorted(settings.pod_labels.items())[:_MAX_LABELS])
        return PodInfo(
            {
                "namespace": settings.pod_namespace,
                "name": settings.pod_name,
                "service_account": settings.service_account,
                "labels": labels,
            }
        )


def audit_settings(ctx: RequestContext) -> AuditSettings:
    """The use case's audit settings; the governing policy's default use case when the call
    was refused before its use case was known; the contract's defaults without a policy."""
    identity = ctx.state.get(IDENTITY)
    if identity is not None:
        return identity.use_case.audit
    view = ctx.config.prepared.get(GOVERNANCE_VIEW)
    policy = view.index.policy if view is not None else None
    if policy is not None:
        for use_case in policy.use_cases:
            if use_case.name == policy.default_use_case:
                return use_case.audit
    return _DEFAULTS


def stores_prompts(config: RuntimeConfig) -> bool:
    """Whether :func:`audit_settings` can have ``storePrompts`` on for any call under
    ``config``: a use case of the governing policy stores them (every call's settings are
    one of its use cases', or the contract's defaults without a policy)."""
    view = config.prepared.get(GOVERNANCE_VIEW)
    if view is None:
        return True
    policy = view.index.policy
    if policy is None:
        return _DEFAULTS.store_prompts
    return any(use_case.audit.store_prompts for use_case in policy.use_cases)


def _correlation(headers: Mapping[str, str]) -> tuple[Json, str | None]:
    found: Json = {}
    trace_id = None
    given = headers.get("X-Request-Id")
    if given and _CORRELATION.fullmatch(given):
        found["x_request_id"] = given
    parent = headers.get("traceparent")
    if parent and (match := _TRACEPARENT.fullmatch(parent.strip().lower())):
        trace_id = match.group(1)
        found["traceparent"] = match.group(0)
    return found, trace_id


def _claims(claims: Claims | None, hasher: UserHasher, body: Json) -> tuple[Json, str | None]:
    user: str | None = None
    out: Json = {}
    if claims is not None:
        user = claims.user
        if (tenant := claims.tenant) is not None:
            out["tenant"] = tenant
        if (use_case := claims.use_case) is not None:
            out["use_case"] = use_case
        if (channel := claims.channel) is not None:
            out["channel"] = channel
        if (quality_tier := claims.quality_tier) is not None:
            out["quality_tier"] = quality_tier
        if (region := claims.region) is not None:
            out["region"] = region
        if (classification := claims.data_classification) is not None:
            out["data_classification"] = classification  # a StrEnum: written as its value
        if claims.max_cost_nusd is not None:
            out["max_cost_usd"] = format_usd(claims.max_cost_nusd)
        if claims.max_latency_ms is not None:
            out["max_latency_ms"] = claims.max_latency_ms
    if user is None and isinstance(body_user := body.get("user"), str):
        user = body_user
    return out, hasher(user) if user else None


def _limits(grant: Grant | None) -> list[Json]:
    if grant is None:
        return []
    return [
        {
            "name": counter.name,
            "unit": role.unit,
            "limit": counter.limit,
            "used": (used := int(level)),
            "remaining": counter.limit - used if counter.limit > used else 0,
            "enforced": counter.enforce,
        }
        for counter, role, level in zip(grant.counters, grant.roles, grant.levels, strict=True)
    ]


def _decisions(
    ctx: RequestContext, claims: Claims | None, mode: EnforcementMode, facts: Facts | None
) -> list[Json]:
    use_case = _use_case(ctx, claims)
    allowed_tools = use_case.tools if use_case is not None else None
    return [
        {
            "step": d.step,
            "action": d.action,
            "code": d.code or None,
            "reason": _reason(d, allowed_tools, facts),
            "mode": mode,
            "would_have_blocked": d.action in _WOULD_BLOCK,
        }
        for d in ctx.decisions
    ]


def _bounded(value: Any, limit: int) -> Any:
    """``value`` (JSON) if its text fits ``limit`` characters, else its text cut there."""
    text = value if isinstance(value, str) else None
    if text is None:
        text = orjson.dumps(value).decode()
        if len(text) <= limit:
            return value
    return text if len(text) <= limit else {"truncated": True, "text": text[:limit]}


_TEXT_LIMIT = 64 * 1024


def call_record(
    ctx: RequestContext,
    *,
    now: float,
    pod: PodInfo,
    hasher: UserHasher,
    prompt_tokens: int | None,
    claims: Claims | None,
    answer: Any,
) -> tuple[Json, AuditQueueFull]:
    """The record of a finished call (and what to do with it when the queue is full).

    ``now`` is the event-loop time the call ended; ``prompt_tokens`` the estimate when the
    admission has none; ``claims`` the request's (None: none were parsed, or they were
    malformed); ``answer`` what the audit answer step kept when prompts are stored
    (a stream's text, or the answer's messages), else None.
    """
    wall = time.time()
    started = ctx.started
    duration = now - started
    start_time, end_time = _span(wall, duration)
    get = ctx.state.get
    identity = get(IDENTITY)
    settings = identity.use_case.audit if identity is not None else audit_settings(ctx)
    correlation, trace_id = _correlation(ctx.headers)
    span_id = None
    trace = get(TRACE)
    if trace is not None:  # tracing on: the request's own trace (the caller's, or a new one)
        trace_id, span_id = trace.trace_id, trace.span_id
    admission = get(ADMISSION)
    facts = get(FACTS)
    inspection = get(INSPECTION)
    claimed, user_hash = _claims(claims, hasher, ctx.body)
    backend = ctx.backend
    usage = ctx.usage
    error = ctx.error
    first_token_at = ctx.first_token_at
    answered_by = ctx.answered_by
    # The enum members below are StrEnums: orjson writes each as its value.
    if identity is not None:
        policy = identity.policy
        mode = policy.mode
        policy_name: str | None = policy.name
        policy_mode: EnforcementMode | None = mode
    else:
        mode = EnforcementMode.ENFORCE
        policy_name = policy_mode = None
    record: Json = {
        "schema": SCHEMA,
        "kind": "call",
        "id": ctx.request_id,
        "correlation": correlation,
        "trace_id": trace_id,
        "span_id": span_id,
        "time": start_time,
        "end_time": end_time,
        "duration_ms": round(duration * 1000, 3),
        "ttft_ms": None if first_token_at is None else round((first_token_at - started) * 1000, 3),
        "retention_days": settings.retention_days,
        "pod": pod.info,
        "tenant": identity.tenant if identity else None,
        "app": identity.app if identity else None,
        "use_case": identity.use_case.name if identity else None,
        "user_hash": user_hash,
        "api": ctx.api,
        "operation": ctx.operation,
        "stream": ctx.stream,
        "requested_model": safe_name(ctx.requested_model) if ctx.requested_model else None,
        "route": ctx.route.name if ctx.route else None,
        "backend": backend.name if backend else None,
        "provider": backend.provider if backend else None,
        "model": backend.model if backend else None,
        "attempts": [
            {
                "n": a.number,
                "backend": a.backend,
                "provider": a.provider,
                "model": a.model,
                "outcome": a.outcome,
                "error_class": a.error_class or None,
                "code": a.code or None,
                "latency_ms": None if a.latency_s is None else round(a.latency_s * 1000, 3),
            }
            for a in ctx.attempts
        ],
        "cache": ctx.cache,
        "answered_by": answered_by,
        "idempotent_replay": answered_by == "idempotency",
        "usage": None
        if usage is None
        else {
            "input": usage.prompt_tokens,
            "output": usage.completion_tokens,
            "cached": usage.cached_tokens,
            "cache_write": usage.cache_write_tokens,
            "estimated": usage.estimated,
        },
        "cost_usd": None if ctx.cost_nano is None else format_usd(ctx.cost_nano),
        "limits": _limits(get(GRANT)),
        "decisions": _decisions(ctx, claims, mode, facts) if ctx.decisions else [],
        "findings": [] if inspection is None else inspection.as_list(),
        "policy": {
            "name": policy_name,
            "mode": policy_mode,
            "version": ctx.config.policy_version,
            "revision": ctx.config.revision,
        },
        "status": ctx.status,
        "error_type": ctx.error_type or None,
        "error_code": error.code if isinstance(error, SidecarError) else None,
        "request": {
            "claims": claimed if claims is not None or not ctx.body else None,
            "prompt_tokens": prompt_tokens
            if admission is None
            else admission.constraints.prompt_tokens,
            "max_tokens": facts.max_tokens if facts else None,
            "n": facts.choices if facts else 1,
            "tools": [_tool(t) for t in facts.tools] if facts else [],
            "cost_estimate_usd": None
            if admission is None
            else format_usd(admission.constraints.estimated_cost_nusd),
        },
    }
    if settings.store_prompts and ctx.body:
        record["prompt"] = _bounded(_prompt_of(ctx.body), _TEXT_LIMIT)
        record["answer"] = _bounded(answer, _TEXT_LIMIT) if answer is not None else None
    return record, settings.on_queue_full


def bare_record(  # noqa: PLR0917 - the few facts of a request that never got a context
    request_id: str,
    path: str,
    status: int,
    error_type: str,
    duration: float,
    headers: Mapping[str, str],
    pod: PodInfo,
) -> Json:
    """The record of a request that never reached the pipeline (no bundle loaded yet, an
    unknown endpoint or method): a call all the same."""
    wall = time.time()
    start_time, end_time = _span(wall, duration)
    correlation, trace_id = _correlation(headers)
    return {
        "schema": SCHEMA,
        "kind": "call",
        "id": request_id,
        "correlation": correlation,
        "trace_id": trace_id,
        "time": start_time,
        "end_time": end_time,
        "duration_ms": round(duration * 1000, 3),
        "retention_days": _DEFAULTS.retention_days,
        "pod": pod.info,
        "path": safe_name(path),
        "status": status,
        "error_type": error_type or None,
        "policy": None,
    }


def _prompt_of(body: Json) -> Any:
    for key in ("messages", "input"):
        if key in body:
            return body[key]
    return None


@functools.lru_cache(maxsize=4)
def _second(seconds: int) -> str:
    """A whole second as text (records come in bursts: formatted once per second)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def _span(wall: float, duration: float) -> tuple[str, str]:
    """The start (``wall - duration``) and end (``wall``) as ISO 8601 UTC, microseconds."""
    start = wall - duration
    start_s, end_s = int(start), int(wall)
    end_second = _second(end_s)
    start_second = end_second if start_s == end_s else _second(start_s)
    return (
        f"{start_second}.{int((start - start_s) * 1_000_000):06d}Z",
        f"{end_second}.{int((wall - end_s) * 1_000_000):06d}Z",
    )
