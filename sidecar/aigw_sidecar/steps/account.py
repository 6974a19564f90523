"""Step: the call's usage and cost, computed once for the header, the metrics and budgets.

The innermost step (``Phase.ACCOUNT``): it is reached only when the walk got to the upstream
call, so an answer a step gave (a cache hit) is never accounted as provider usage. Its
response side runs first on the way back, so the limit step settles budgets to exactly the
:class:`~aigw_sidecar.governance.Usage` and nano-USD computed here:

- usage: the provider's (``usage`` of the response or of a stream's last chunk, cached
  prompt tokens included), else estimated with the governor's estimator: the prompt as
  admission counted it, the output counted from the answer (a complete response's message
  text, or the stream's deltas as :class:`~aigw_sidecar.governance.OutputCounter` counted
  them from the provider);
- cost: :meth:`~aigw_sidecar.governance.Prices.cost_of` at the serving backend's prices
  (cache reads and writes at their own prices), in nano-USD, rounded up; a complete answer
  carries it in ``X-AIGW-Cost-USD`` (a stream's headers are sent before it is known);
- metrics: ``aigw_tokens_total{kind}``, ``aigw_cost_usd_total``.

A stream cut mid-way is accounted in ``on_finish`` to what it streamed (it was produced).
"""

from __future__ import annotations

from aigw_sidecar.context import RequestContext
from aigw_sidecar.governance import (
    TokenCounter,
    Usage,
    count_prompt,
    format_usd,
    response_output_tokens,
    usage_of,
)
from aigw_sidecar.keys import ADMISSION
from aigw_sidecar.metrics import Metrics
from aigw_sidecar.pipeline import Phase, Step

__all__ = ["Account"]


class Account(Step):
    """Usage, cost, token and cost metrics."""

    name = "account"
    phase = Phase.ACCOUNT

    def __init__(self, metrics: Metrics, counter: TokenCounter) -> None:
        self._metrics = metrics
        self._counter = counter

    def _prompt_estimate(self, ctx: RequestContext) -> int:
        admission = ctx.state.get(ADMISSION)
        if admission is not None:
            return admission.constraints.prompt_tokens
        return count_prompt(ctx.body, self._counter)

    def usage(self, ctx: RequestContext) -> Usage:
        """What the call consumed: reported by the provider, or estimated."""
        response = ctx.response
        if response is not None:
            reported = usage_of(response.get("usage"))
            if reported is not None:
                return reported
            output = response_output_tokens(response, self._counter)
            return Usage(self._prompt_estimate(ctx), output, estimated=True)
        counted = ctx.output
        if counted is not None and counted.reported is not None:
            return counted.reported
        output = counted.output_tokens if counted is not None else 0
        return Usage(self._prompt_estimate(ctx), output, estimated=True)

    def _account(self, ctx: RequestContext, usage: Usage) -> None:
        backend, route = ctx.backend, ctx.route
        if backend is None or route is None:
            return
        cost = backend.prices.cost_of(usage)
        ctx.usage = usage
        ctx.cost_nano = cost
        if not ctx.stream:
            ctx.response_headers["X-AIGW-Cost-USD"] = format_usd(cost)
        children = self._metrics.backend(route.name, backend.name)
        if usage.prompt_tokens:
            children.prompt_tokens.inc(usage.prompt_tokens)
        if usage.completion_tokens:
            children.completion_tokens.inc(usage.completion_tokens)
        if cost:
            children.cost.inc(cost / 1e9)

    async def on_response(self, ctx: RequestContext) -> None:
        if ctx.operation != "count_tokens":  # counting tokens consumes none
            self._account(ctx, self.usage(ctx))

    async def on_finish(self, ctx: RequestContext) -> None:
        counted = ctx.output
        if ctx.usage is None and counted is not None and counted.output_tokens:
            self._account(ctx, self.usage(ctx))  # a stream cut mid-way: what it streamed
