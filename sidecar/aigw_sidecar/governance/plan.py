"""Which counters one request reserves against, built from its use case's limits.

Counter keys (all under the request's ``{namespace:tenant}`` hash tag)::

    aigw:{ns:tenant}:rl:<scope>:rpm            requests/min bucket
    aigw:{ns:tenant}:rl:<scope>:tpm            tokens/min bucket
    aigw:{ns:tenant}:cc:<scope>                concurrency leases
    aigw:{ns:tenant}:bu:<budget>:<scope>:<period>:tok|usd   budget totals (param: window end)

With Redis state the buckets and budgets are fields of one hash per tag and the lease key
is a zset (see :mod:`.redis_scripts`); a budget counter holds the window its value belongs
to, so a new window starts from zero without a new key.

``<scope>`` is ``t`` (whole tenant), ``a.<app>`` or ``u.<use case>``, as the limit's
``scope`` says. Use cases of one tenant that declare the same budget name with the same
scope share its counter, each checking its own limit. A counter's role says what it
measures, so the governor can turn amounts, refusals and levels into settlements, errors
and headers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from aigw_contract import Budget, LimitScope

from .constraints import Constraints
from .decisions import Denied, DenyKind
from .identity import Identity
from .money import usd_to_nano
from .store import MAX_AMOUNT, Counter, CounterKind
from .windows import window_at

__all__ = [
    "PlanCache",
    "Role",
    "Unit",
    "build_counters",
    "denial",
    "scope_id",
    "settled_amount",
    "tag_of",
]


class Unit(StrEnum):
    """What a counter measures."""

    REQUESTS = "requests"
    TOKENS = "tokens"
    LEASES = "leases"
    NANO_USD = "nano_usd"


@dataclass(frozen=True, slots=True)
class Role:
    """What a counter is for."""

    unit: Unit
    budget: Budget | None = None


def tag_of(identity: Identity) -> str:
    """The hash tag of every key of this identity: namespace and tenant."""
    return f"{identity.namespace}:{identity.tenant}"


def scope_id(scope: LimitScope, identity: Identity) -> str:
    """The part of a key that says which requests share a counter."""
    if scope is LimitScope.TENANT:
        return "t"
    if scope is LimitScope.APP:
        return "a." + identity.app
    return "u." + identity.use_case.name


def build_counters(
    identity: Identity,
    constraints: Constraints,
    *,
    now: float,
    enforce: bool,
    degraded: frozenset[str] = frozenset(),
) -> tuple[list[Counter], list[Role]]:
    """The counters of one request and their roles, in a fixed order.

    ``degraded`` names budgets already spent whose ``onExhausted: fallback`` sent the
    request to the fallback route: they keep counting but no longer refuse.
    """
    prefix = f"aigw:{{{tag_of(identity)}}}:"
    tokens = min(constraints.prompt_tokens + constraints.max_output_tokens, MAX_AMOUNT)
    counters: list[Counter] = []
    roles: list[Role] = []
    rate = identity.use_case.rate_limits
    rscope = scope_id(rate.scope, identity)
    if rate.requests_per_minute is not None:
        rpm = rate.requests_per_minute
        counters.append(
            Counter(
                CounterKind.BUCKET,
                f"{prefix}rl:{rscope}:rpm",
                min(rpm, MAX_AMOUNT),
                1,
                rpm / 60.0,
                enforce,
                "requests_per_minute",
            )
        )
        roles.append(Role(Unit.REQUESTS))
    if rate.tokens_per_minute is not None:
        tpm = rate.tokens_per_minute
        counters.append(
            Counter(
                CounterKind.BUCKET,
                f"{prefix}rl:{rscope}:tpm",
                min(tpm, MAX_AMOUNT),
                tokens,
                tpm / 60.0,
                enforce,
                "tokens_per_minute",
            )
        )
        roles.append(Role(Unit.TOKENS))
    if rate.concurrency is not None:
        counters.append(
            Counter(
                CounterKind.LEASE,
                f"{prefix}cc:{rscope}",
                min(rate.concurrency, MAX_AMOUNT),
                1,
                0.0,
                enforce,
                "concurrency",
            )
        )
        roles.append(Role(Unit.LEASES))
    for budget in identity.use_case.budgets:
        window = window_at(budget.period, now)
        base = f"{prefix}bu:{budget.name}:{scope_id(budget.scope, identity)}:{budget.period.value}"
        checks = enforce and budget.name not in degraded
        if budget.tokens is not None:
            counters.append(
                Counter(
                    CounterKind.TOTAL,
                    base + ":tok",
                    min(budget.tokens, MAX_AMOUNT),
                    tokens,
                    window.end,
                    checks,
                    f"budget:{budget.name}:tokens",
                )
            )
            roles.append(Role(Unit.TOKENS, budget))
        if budget.cost_usd is not None:
            counters.append(
                Counter(
                    CounterKind.TOTAL,
                    base + ":usd",
                    min(usd_to_nano(budget.cost_usd), MAX_AMOUNT),
                    min(constraints.estimated_cost_nusd, MAX_AMOUNT),
                    window.end,
                    checks,
                    f"budget:{budget.name}:usd",
                )
            )
            roles.append(Role(Unit.NANO_USD, budget))
    return counters, roles


def settled_amount(role: Role, tokens: int, cost: int) -> int:
    """What a counter settles to: the request itself, its tokens, its cost; leases end."""
    if role.unit is Unit.REQUESTS:
        return 1
    if role.unit is Unit.LEASES:
        return 0
    if role.unit is Unit.TOKENS:
        return tokens
    return cost


def denial(counter: Counter, role: Role, retry_after: float, now: float) -> Denied:
    """The error a refused counter becomes, with an accurate Retry-After."""
    never = retry_after < 0
    budget = role.budget
    if budget is not None:
        return Denied(
            DenyKind.BUDGET_EXCEEDED,
            f"request is larger than budget {budget.name!r}"
            if never
            else f"budget {budget.name!r} ({budget.period.value}) is spent",
            code="budget_exceeded",
            retry_after=max(1, math.ceil(counter.param - now)),
        )
    if counter.kind is CounterKind.LEASE:
        return Denied(
            DenyKind.RATE_LIMITED,
            f"concurrency limit {counter.limit} reached",
            code="concurrency_limited",
            retry_after=1,
        )
    if never:
        return Denied(
            DenyKind.RATE_LIMITED,
            f"request needs {counter.amount} against a {counter.name} limit of {counter.limit}",
            code="request_too_large_for_limit",
            retry_after=60,
        )
    return Denied(
        DenyKind.RATE_LIMITED,
        f"{counter.name} limit {counter.limit} reached",
        code="rate_limited",
        retry_after=max(1, math.ceil(retry_after)),
    )


class PlanCache:
    """Counters of each (tenant, use case, mode, degraded budgets), built once per window.

    Keys, limits and budget windows only change when a window rolls over or the bundle is
    reloaded (a new cache comes with every :class:`BundleView`), so the hot path only fills
    in the amounts of the request. Size is bounded by the policy: tenants it grants times
    its use cases.
    """

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[
            tuple[str, str, bool, frozenset[str]], tuple[float, list[Counter], list[Role]]
        ] = {}

    def counters(
        self,
        identity: Identity,
        constraints: Constraints,
        *,
        now: float,
        enforce: bool,
        degraded: frozenset[str] = frozenset(),
    ) -> tuple[list[Counter], list[Role]]:
        """Same result as :func:`build_counters`, from the cached templates."""
        key = (identity.tenant, identity.use_case.name, enforce, degraded)
        entry = self._entries.get(key)
        if entry is None or now >= entry[0]:
            templates, roles = build_counters(
                identity, _ZERO, now=now, enforce=enforce, degraded=degraded
            )
            ends = [c.param for c in templates if c.kind is CounterKind.TOTAL]
            entry = (min(ends, default=math.inf), templates, roles)
            self._entries[key] = entry
        _, templates, roles = entry
        # Bounded to what a store holds exactly: a larger amount fits no limit either way.
        tokens = min(constraints.prompt_tokens + constraints.max_output_tokens, MAX_AMOUNT)
        cost = min(constraints.estimated_cost_nusd, MAX_AMOUNT)
        counters: list[Counter] = []
        for template, role in zip(templates, roles, strict=True):
            unit = role.unit
            if unit is Unit.TOKENS:
                amount = tokens
            elif unit is Unit.NANO_USD:
                amount = cost
            else:  # a request, a lease: the template is the counter (frozen: shared as is)
                counters.append(template)
                continue
            counters.append(
                Counter(
                    template.kind, template.key, template.limit, amount, template.param,
                    template.enforce, template.name,
                )
            )  # fmt: skip
        return counters, roles


_ZERO = Constraints(0, 0, None, 0, None)
