"""Steps: one audit record per call, written when the call ends (``docs/audit.md``).

:class:`Audit` is the outermost step (below ``Phase.OBSERVE``): it is reached by every
request that got a context, so its ``on_finish`` runs once for every call, refused, failed,
cut, disconnected or answered by a step (a cache hit, an idempotent replay), after every
other step's ``on_finish`` (a stream's: at its end or at the disconnect). It builds the
record (:func:`~aigw_sidecar.audit.record.call_record`) and offers it to the sidecar's
:class:`~aigw_sidecar.audit.AuditLog`; sealing and writing happen off the request's path.
With ``storePrompts`` on, :class:`AuditAnswer` keeps the answer as it was after the answer's
redaction and before the prompt's placeholders were restored for the caller (it sits just
inside ``Phase.INSPECT``: its transform and ``on_response`` see the answer between the two),
so a stored answer never holds what redaction took out. Under a bundle where no use case
stores prompts it is inactive (none of its hooks runs).

:class:`AuditFacts` (once the body is decoded, before routing) notes what the request asked
for before any step rewrites the body (a clamped ``max_tokens``, a redacted prompt): the
claims, the output bound, the choices, the declared tools. ``aigw replay`` re-evaluates
calls from them.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from aigw_sidecar.audit import AuditLog, PodInfo, UserHasher
from aigw_sidecar.audit.record import FACTS, Facts, audit_settings, call_record, stores_prompts
from aigw_sidecar.claims import parse_claims
from aigw_sidecar.context import Json, RequestContext
from aigw_sidecar.errors import InvalidRequest
from aigw_sidecar.governance import TokenCounter
from aigw_sidecar.governance.authorize import declared_tools
from aigw_sidecar.governance.constraints import requested_max_tokens
from aigw_sidecar.governance.tokens import count_prompt
from aigw_sidecar.keys import ADMISSION, CLAIMS
from aigw_sidecar.pipeline import Phase, Step
from aigw_sidecar.runtime import RuntimeConfig
from aigw_sidecar.state import Key
from aigw_sidecar.streaming import StreamTransform, chunk_text

__all__ = ["Audit", "AuditAnswer", "AuditFacts"]

_ANSWER: Key[list[Any]] = Key("audit.answer")
_ANSWER_LIMIT = 64 * 1024
_DECLARES = frozenset({"tools", "functions"})


class _Collect(StreamTransform):
    """Keeps the streamed text the caller gets (bounded); passes every chunk on unchanged."""

    def __init__(self, parts: list[Any]) -> None:
        self.parts = parts
        self.size = 0

    async def feed(self, batch: list[Json]) -> list[Json]:
        if self.size < _ANSWER_LIMIT:
            for chunk in batch:
                text = chunk_text(chunk)
                if text:
                    self.parts.append(text)
                    self.size += len(text)
        return batch

    async def flush(self) -> list[Json]:
        return []


class Audit(Step):
    """Offers the record of every call to the audit log when the call ends."""

    name = "audit"
    phase = Phase.OBSERVE - 100

    def __init__(self, log: AuditLog, pod: PodInfo, hasher: UserHasher, counter: TokenCounter):
        self._log = log
        self._pod = pod
        self._hasher = hasher
        self._counter = counter

    async def on_finish(self, ctx: RequestContext) -> None:
        now = asyncio.get_running_loop().time()
        prompt_tokens = None
        claims = ctx.state.get(CLAIMS)
        if ctx.body and ctx.state.get(ADMISSION) is None:  # refused before admission
            prompt_tokens = count_prompt(ctx.body, self._counter)
            if claims is None:
                try:
                    claims = parse_claims(ctx.headers, ctx.body)
                except InvalidRequest:
                    claims = None  # malformed: the record says so
        parts = ctx.state.get(_ANSWER)
        record, on_full = call_record(
            ctx,
            now=now,
            pod=self._pod,
            hasher=self._hasher,
            prompt_tokens=prompt_tokens,
            claims=claims,
            answer=parts if parts is None or ctx.stream is False else "".join(parts),
        )
        waiting = self._log.offer(record, on_full)
        if waiting is not None:
            await waiting


class AuditAnswer(Step):
    """With ``storePrompts``: the answer after its redaction, before any restore."""

    name = "audit.answer"
    phase = Phase.INSPECT + 10

    def active(self, config: RuntimeConfig) -> bool:
        return stores_prompts(config)

    def stream_transform(self, ctx: RequestContext) -> StreamTransform | None:
        if not audit_settings(ctx).store_prompts:
            return None
        parts: list[Any] = []
        ctx.state[_ANSWER] = parts
        return _Collect(parts)

    async def on_response(self, ctx: RequestContext) -> None:
        response = ctx.response
        if ctx.stream or response is None or not audit_settings(ctx).store_prompts:
            return
        choices = response.get("choices")
        if isinstance(choices, list):  # a copy: a restore later rewrites the answer in place
            ctx.state[_ANSWER] = [
                copy.deepcopy(c.get("message")) for c in choices if isinstance(c, dict)
            ]


class AuditFacts(Step):
    """Notes what the request asked for before admission may rewrite it."""

    name = "audit.facts"
    phase = Phase.ROUTE - 1

    async def on_request(self, ctx: RequestContext) -> None:
        body = ctx.body
        choices = body.get("n")
        ctx.state[FACTS] = Facts(
            max_tokens=requested_max_tokens(body),
            choices=choices if isinstance(choices, int) and not isinstance(choices, bool) else 1,
            tools=tuple(declared_tools(body)[:256])
            if "tools" in body or "functions" in body
            else (),
        )
