"""Per-request constraints: clamp ``max_tokens``, estimate cost, bound the deadline.

The policy's ``limits`` set ceilings; the caller's claims (``X-AIGW-Max-Cost-USD``,
``X-AIGW-Max-Latency-Ms``, parsed and bounded into integers by the sidecar's edge) and the
body's ``max_tokens`` can only lower them: the effective value is always the minimum.
Policy ceilings follow the enforcement mode (under observe or warn an over-limit request
goes out unchanged and the decision is recorded); a caller's own header limits are always
honoured, since the caller asked for them.

The cost estimate is the worst case the reservation holds: prompt tokens (estimated) plus
the output bound, at the dearest backend of the route, in integer nano-USD. The output
bound is per choice times the number of choices: OpenAI's ``n`` asks for ``n`` answers of
up to ``max_tokens`` each, billed as such (the prompt once). It is the only output
multiplier of the APIs served: Anthropic's Messages API has none (an Anthropic backend
refuses ``n > 1``), embeddings produce no output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aigw_contract import EnforcementMode, UseCase

from .decisions import Decision, Denied, DenyKind
from .money import Prices, format_usd, usd_to_nano

__all__ = ["MAX_CHOICES", "Constraints", "constrain", "requested_choices", "requested_max_tokens"]

MAX_CHOICES = 128
"""Most choices (``n``) one request may ask for (OpenAI's own ceiling)."""


@dataclass(frozen=True, slots=True)
class Constraints:
    """What the constrain step decided for one request."""

    prompt_tokens: int
    """Estimated prompt tokens."""
    max_output_tokens: int
    """Output bound the reservation assumes: per choice times the number of choices."""
    clamp_to: int | None
    """A ``max_tokens`` the sidecar must write into the request body (None: leave it)."""
    estimated_cost_nusd: int
    """Worst-case cost in nano-USD."""
    deadline_ms: int | None
    """Deadline of the whole request in milliseconds from its start."""
    decisions: tuple[Decision, ...] = ()
    unenforced_latency_ms: int | None = None
    """Under observe or warn: the policy's ``maxLatencyMs`` that enforce would apply. The
    sidecar records a decision when a call runs past it (nothing is cut)."""


def requested_max_tokens(body: Mapping[str, Any]) -> int | None:
    """The output bound a request body asks for (OpenAI's two spellings, Anthropic's one)."""
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def requested_choices(body: Mapping[str, Any]) -> int:
    """How many answers a request asks for (``n``, default 1); :class:`Denied` past
    :data:`MAX_CHOICES`."""
    value = body.get("n")
    if value is None:
        return 1
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_CHOICES:
        raise Denied(
            DenyKind.INVALID_REQUEST,
            f"'n' must be an integer from 1 to {MAX_CHOICES}",
            code="invalid_n",
            step="constrain",
        )
    return value


def constrain(
    use_case: UseCase,
    mode: EnforcementMode,
    *,
    prompt_tokens: int,
    requested_output: int | None,
    prices: Prices,
    default_max_output: int,
    caller_max_cost_nusd: int | None = None,
    caller_max_latency_ms: int | None = None,
    produces_output: bool = True,
    choices: int = 1,
) -> Constraints:
    """Apply the use case's request limits and the caller's header limits.

    ``produces_output=False`` (embeddings): no output tokens to clamp or reserve.
    ``choices``: answers asked for (``n``); each may be as long as the output bound.
    """
    enforce = mode is EnforcementMode.ENFORCE
    limits = use_case.limits
    decisions: list[Decision] = []
    clamp_to: int | None = None
    output = requested_output if requested_output is not None else default_max_output
    if not produces_output:
        output = 0
    elif limits.max_tokens is not None and (
        requested_output is None or requested_output > limits.max_tokens
    ):
        if enforce:
            clamp_to = output = limits.max_tokens
        elif requested_output is not None:  # a missing max_tokens is not worth a warning
            decisions.append(
                Decision.for_mode(
                    mode,
                    "constrain",
                    "max_tokens_clamped",
                    f"max_tokens {requested_output} exceeds the policy's {limits.max_tokens}",
                )
            )
    output *= choices
    cost = prices.cost(prompt_tokens, output)

    if caller_max_cost_nusd is not None and cost > caller_max_cost_nusd:
        raise Denied(
            DenyKind.COST_LIMIT_EXCEEDED,
            f"estimated cost {format_usd(cost)} USD exceeds X-AIGW-Max-Cost-USD",
            code="cost_limit_exceeded",
            step="constrain",
        )
    if limits.max_cost_usd is not None and cost > usd_to_nano(limits.max_cost_usd):
        message = (
            f"estimated cost {format_usd(cost)} USD exceeds the policy's "
            f"{limits.max_cost_usd} USD per request"
        )
        if enforce:
            raise Denied(
                DenyKind.COST_LIMIT_EXCEEDED, message, code="cost_limit_exceeded", step="constrain"
            )
        decisions.append(Decision.for_mode(mode, "constrain", "cost_limit_exceeded", message))

    deadline: int | None = limits.max_latency_ms if enforce else None
    if caller_max_latency_ms is not None:
        deadline = (
            caller_max_latency_ms if deadline is None else min(deadline, caller_max_latency_ms)
        )
    return Constraints(
        prompt_tokens=prompt_tokens,
        max_output_tokens=output,
        clamp_to=clamp_to,
        estimated_cost_nusd=cost,
        deadline_ms=deadline,
        unenforced_latency_ms=None if enforce else limits.max_latency_ms,
        decisions=tuple(decisions),
    )
