"""Step: account for usage and cost once the answer is complete.

Usage comes from the provider (the response's ``usage``, or a stream's last chunk, which
the upstream step requests). A stream that ends without usage is estimated (about four
characters per token) and flagged ``ctx.usage_estimated``, so tokens are never silently
uncounted. Cost is exact integer arithmetic at the backend's prices; a complete response
carries it in ``X-AIGW-Cost-USD`` (a stream's headers are sent before its cost is known).
Budget reconciliation will read ``ctx.usage``/``ctx.cost_femto`` in its own ``on_response``.
"""

from __future__ import annotations

from typing import Any

from aigw_sidecar.context import Json, RequestContext
from aigw_sidecar.metrics import Metrics
from aigw_sidecar.pipeline import Step
from aigw_sidecar.runtime import format_usd

__all__ = ["Account", "estimate_prompt_chars"]


def estimate_prompt_chars(body: Json) -> int:
    """Characters of the prompt (chat messages or embedding input)."""
    total = 0
    for message in body.get("messages") or ():
        content: Any = message.get("content")
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(len(p.get("text", "")) for p in content if isinstance(p, dict))
    raw = body.get("input")
    if isinstance(raw, str):
        total += len(raw)
    elif isinstance(raw, list):
        total += sum(len(x) if isinstance(x, str) else 4 for x in raw)
    return total


class Account(Step):
    """Usage, cost, token and cost metrics."""

    name = "account"

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def on_chunk(self, ctx: RequestContext, chunk: Json) -> Json | None:
        if ctx.usage is None:
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta")
                if delta:
                    ctx.stream_chars += len(delta.get("content") or "")
                    for call in delta.get("tool_calls") or ():
                        ctx.stream_chars += len((call.get("function") or {}).get("arguments") or "")
        return chunk

    async def on_response(self, ctx: RequestContext) -> None:
        backend = ctx.backend
        if backend is None or ctx.route is None:
            return
        usage = ctx.usage
        if usage is None:
            prompt = -(-estimate_prompt_chars(ctx.body) // 4)
            completion = -(-ctx.stream_chars // 4)
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
            ctx.usage = usage
            ctx.usage_estimated = True
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
        cost = backend.cost_femto(prompt_tokens, completion_tokens)
        ctx.cost_femto = cost
        if not ctx.stream:
            ctx.response_headers["X-AIGW-Cost-USD"] = format_usd(cost)
        children = self._metrics.backend(ctx.route.name, backend.name)
        children.prompt_tokens.inc(prompt_tokens)
        children.completion_tokens.inc(completion_tokens)
        children.cost.inc(cost / 10**15)
