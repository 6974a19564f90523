"""Span attributes and guardrail events of one request, from its context: pure functions.

Which attribute goes where (docs/telemetry.md has the table): the server span carries the
HTTP request and the ``aigw.*`` facts of the call (identity, policy version, route, cache,
attempts, cost, decisions) and one ``gen_ai.guardrail.result`` event per governance or
inspection decision; each client span (one per upstream attempt) carries the GenAI
inference attributes, and the one that answered also the response and usage.

Values are bounded and never secret: names from the bundle, fixed words, numbers, the
request's own id. No prompt or answer text (content is a separate opt-in), no user id, no
header value, no provider message.
"""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Iterator
from typing import Any

from aigw_sidecar.context import AttemptRecord, RequestContext
from aigw_sidecar.governance import format_usd
from aigw_sidecar.keys import IDENTITY, INSPECTION
from aigw_sidecar.runtime import RuntimeBackend

from . import semconv as sc

__all__ = [
    "HTTP_ROUTES",
    "attempt_attributes",
    "attempt_result_attributes",
    "guardrail_events",
    "http_route",
    "request_attributes",
]

Attributes = dict[str, Any]

_ROUTES = {
    ("openai", "chat"): "/v1/chat/completions",
    ("openai", "embeddings"): "/v1/embeddings",
    ("anthropic", "chat"): "/v1/messages",
    ("anthropic", "count_tokens"): "/v1/messages/count_tokens",
}
_NUMBERS = (
    ("max_tokens", sc.REQUEST_MAX_TOKENS),
    ("temperature", sc.REQUEST_TEMPERATURE),
    ("top_p", sc.REQUEST_TOP_P),
    ("seed", sc.REQUEST_SEED),
    ("frequency_penalty", sc.REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", sc.REQUEST_PRESENCE_PENALTY),
)


HTTP_ROUTES = frozenset(_ROUTES.values())
"""Every ``http.route`` a server span can have."""


def http_route(ctx: RequestContext) -> str:
    return _ROUTES.get((ctx.api, ctx.operation), "/v1/chat/completions")


@functools.lru_cache(maxsize=256)
def _server(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname or "", port


def attempt_attributes(ctx: RequestContext, backend: RuntimeBackend, number: int) -> Attributes:
    """What a client span knows when it starts (the sampling-relevant ones first)."""
    address, port = _server(backend.chat_url)
    attributes: Attributes = {
        sc.OPERATION: sc.OPERATIONS[ctx.operation],
        sc.PROVIDER: sc.PROVIDER_NAMES.get(backend.provider.value, backend.provider.value),
        sc.REQUEST_MODEL: backend.model,
        sc.SERVER_ADDRESS: address,
        sc.SERVER_PORT: port,
        sc.AIGW_BACKEND: backend.name,
        sc.AIGW_ATTEMPT: number,
    }
    body = ctx.body
    for field, name in _NUMBERS:
        value = body.get(field)
        if isinstance(value, int | float) and not isinstance(value, bool):
            attributes[name] = value
    bound = body.get("max_completion_tokens")
    if isinstance(bound, int) and not isinstance(bound, bool):
        attributes[sc.REQUEST_MAX_TOKENS] = bound
    choices = body.get("n")
    if isinstance(choices, int) and not isinstance(choices, bool) and choices != 1:
        attributes[sc.REQUEST_CHOICES] = choices
    if ctx.stream:
        attributes[sc.REQUEST_STREAM] = True
    return attributes


def attempt_result_attributes(
    ctx: RequestContext, record: AttemptRecord, *, answered: bool, dup: bool
) -> Attributes:
    """What a client span learnt by its end; ``answered``: this attempt's answer was used."""
    attributes: Attributes = {sc.AIGW_ATTEMPT_OUTCOME: record.outcome}
    if record.outcome != "ok":
        attributes[sc.ERROR_TYPE] = record.outcome
        if record.code:
            attributes[sc.AIGW_ERROR_CODE] = record.code
    if record.first_chunk_s is not None:
        attributes[sc.RESPONSE_TTFC] = record.first_chunk_s
    if not answered:
        return attributes
    response = ctx.response
    if isinstance(response, dict):
        if isinstance(response.get("id"), str):
            attributes[sc.RESPONSE_ID] = response["id"][:128]
        if isinstance(response.get("model"), str):
            attributes[sc.RESPONSE_MODEL] = response["model"][:128]
        choices = response.get("choices")
        if isinstance(choices, list):
            reasons = [
                str(c.get("finish_reason") or "error")[:32] for c in choices if isinstance(c, dict)
            ]
            if reasons:
                attributes[sc.RESPONSE_FINISH] = reasons
    usage = ctx.usage
    if usage is not None:
        attributes[sc.USAGE_INPUT] = usage.prompt_tokens
        attributes[sc.USAGE_OUTPUT] = usage.completion_tokens
        attributes[sc.USAGE_CACHE_READ] = usage.cached_tokens
        attributes[sc.USAGE_CACHE_WRITE] = usage.cache_write_tokens
        if dup:
            attributes[sc.V141_USAGE_CACHE_CREATION] = usage.cache_write_tokens
        if usage.estimated:
            attributes[sc.AIGW_USAGE_ESTIMATED] = True
    return attributes


def request_attributes(ctx: RequestContext) -> Attributes:
    """The server span's attributes at the end of the request."""
    attributes: Attributes = {
        sc.HTTP_STATUS: ctx.status,
        sc.AIGW_REQUEST_ID: ctx.request_id,
        sc.AIGW_POLICY_VERSION: ctx.config.policy_version,
        sc.AIGW_CACHE: ctx.cache,
        sc.AIGW_ATTEMPTS: sum(1 for r in ctx.attempts if r.outcome != "circuit_open"),
        sc.OPERATION: sc.OPERATIONS[ctx.operation],
    }
    if ctx.requested_model:
        attributes[sc.REQUEST_MODEL] = ctx.requested_model[:256]
    if ctx.error_type:
        attributes[sc.ERROR_TYPE] = ctx.error_type
    identity = ctx.state.get(IDENTITY)
    if identity is not None:
        attributes[sc.AIGW_TENANT] = identity.tenant
        attributes[sc.AIGW_USE_CASE] = identity.use_case.name
        attributes[sc.AIGW_APP] = identity.app
        attributes[sc.AIGW_POLICY] = identity.policy.name
        attributes[sc.AIGW_MODE] = identity.policy.mode.value
    if ctx.route is not None:
        attributes[sc.AIGW_ROUTE] = ctx.route.name
    if ctx.backend is not None:
        attributes[sc.AIGW_BACKEND] = ctx.backend.name
    if ctx.answered_by is not None:
        attributes[sc.AIGW_ANSWERED_BY] = ctx.answered_by
    if ctx.cost_nano is not None:
        attributes[sc.AIGW_COST] = float(format_usd(ctx.cost_nano))
    if ctx.decisions:
        attributes[sc.AIGW_DECISIONS] = [
            f"{d.step}:{d.action}:{d.code}" for d in ctx.decisions[:64]
        ]
    return attributes


def guardrail_events(ctx: RequestContext) -> Iterator[Attributes]:
    """One ``gen_ai.guardrail.result`` event's attributes per decision (inspection findings
    with their category and source); the bundle version is the policy version."""
    identity = ctx.state.get(IDENTITY)
    base: Attributes = {
        sc.GUARDRAIL_COMPONENT: "aigw",
        sc.GUARDRAIL_POLICY_VERSION: ctx.config.policy_version,
        sc.GUARDRAIL_RESULT_TYPE: "action",
    }
    if identity is not None:
        base[sc.GUARDRAIL_POLICY_ID] = identity.policy.name
    report = ctx.state.get(INSPECTION)
    for decision in ctx.decisions[:64]:
        if decision.step.startswith("inspect.") and report is not None:
            continue  # the report's events below say more (category, source)
        yield {
            **base,
            sc.GUARDRAIL_RESULT_VALUE: decision.action,
            sc.GUARDRAIL_RULE: f"{decision.step}/{decision.code}"
            if decision.code
            else decision.step,
        }
    if report is None:
        return
    for event in report.events[:64]:
        yield {
            **base,
            sc.GUARDRAIL_RESULT_VALUE: event.action,
            sc.GUARDRAIL_SOURCE: event.direction,
            sc.GUARDRAIL_CATEGORY: event.category,
            sc.GUARDRAIL_RULE: f"{event.kind}/{event.detector}",
        }
