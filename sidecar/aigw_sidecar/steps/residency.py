"""Step: residency. Which backends a request's data may reach, by region and provider.

Two sources restrict the backends of a request, fallbacks included (the attempt chain's
picker asks ``ctx.state[BACKEND_FILTER]`` before every attempt, so no retry or fallback
ever reaches a backend outside them, and a budget's fallback route is filtered the same):

- ``X-AIGW-Region`` (the caller's own constraint, honoured in every enforcement mode): only
  backends whose ``region`` is that region;
- the policy's ``residency`` rules for the request's data classification
  (``X-AIGW-Data-Classification``, default ``internal``): every rule naming it applies; a
  backend must be in one of its ``regions`` (when given) and of one of its ``providers``
  (when given). A backend with no ``region`` is in no region. Under ``enforce`` the rules
  filter; under ``warn`` and ``observe`` they do not, and the request's decisions say what
  enforce would have done (a backend outside the rules served it, or none was left).

A route whose backends are all ruled out is refused with 403 ``permission_denied``:
``residency_denied`` naming the rule(s), or ``region_unavailable`` naming the header. Runs
after admit (it needs the policy and the classification), before anything is reserved.
"""

from __future__ import annotations

from dataclasses import dataclass

from aigw_contract import DataClassification, EnforcementMode, ResidencyRule
from aigw_sidecar.attempts import BACKEND_FILTER
from aigw_sidecar.claims import REGION
from aigw_sidecar.context import Decision, RequestContext
from aigw_sidecar.errors import PermissionDenied, SidecarError
from aigw_sidecar.keys import IDENTITY
from aigw_sidecar.pipeline import Phase, Step
from aigw_sidecar.runtime import RuntimeBackend, RuntimeRoute
from aigw_sidecar.state import Key

from .route import request_claims

__all__ = ["Residency", "ResidencyFilter"]

_OBSERVED = Key[tuple["ResidencyFilter", str]]("residency.observed")
"""A non-enforcing policy's filter and its verdict word, checked when the call ends."""


@dataclass(slots=True)
class ResidencyFilter:
    """The backends one request may reach (a :class:`~aigw_sidecar.attempts.BackendFilter`)."""

    region: str | None
    """``X-AIGW-Region``, or None."""
    rules: tuple[ResidencyRule, ...]
    """The policy's rules for the request's classification (empty: not enforced here)."""
    classification: str

    def allows(self, backend: RuntimeBackend) -> bool:
        if self.region is not None and backend.region != self.region:
            return False
        return all(_within(rule, backend) for rule in self.rules)

    def refusal(self, route: RuntimeRoute) -> SidecarError:
        if self.region is not None and not any(b.region == self.region for b in route.backends):
            return PermissionDenied(
                f"no backend of route {route.name} is in the region {REGION} asks for",
                code="region_unavailable",
            )
        names = ", ".join(rule.name for rule in self.rules) or REGION
        return PermissionDenied(
            f"residency rule {names} allows no backend of route {route.name} for"
            f" {self.classification} data",
            code="residency_denied",
        )


def _within(rule: ResidencyRule, backend: RuntimeBackend) -> bool:
    if rule.regions and backend.region not in rule.regions:
        return False
    return not rule.providers or backend.provider in rule.providers


class Residency(Step):
    """Sets ``ctx.state[BACKEND_FILTER]`` from the region header and the policy's rules."""

    name = "residency"
    phase = Phase.ADMIT + 10

    def __init__(self, default_classification: str = "internal") -> None:
        self._default = DataClassification(default_classification)

    async def on_request(self, ctx: RequestContext) -> None:
        identity = ctx.state.get(IDENTITY)
        route = ctx.route
        if identity is None or route is None:
            return
        policy = identity.policy
        claims = request_claims(ctx)
        if not policy.residency and claims.region is None:
            return  # the common case: nothing to filter
        level = claims.data_classification or self._default
        rules = tuple(r for r in policy.residency if level in r.data_classifications)
        enforce = policy.mode is EnforcementMode.ENFORCE
        chosen = ResidencyFilter(claims.region, rules if enforce else (), level.value)
        if claims.region is not None or (rules and enforce):
            ctx.state[BACKEND_FILTER] = chosen
            if not any(chosen.allows(b) for b in route.backends):
                error = chosen.refusal(route)
                ctx.decisions.append(Decision(self.name, "blocked", error.message, error.code))
                raise error
        if rules and not enforce:
            verdict = "warned" if policy.mode is EnforcementMode.WARN else "observed"
            would = ResidencyFilter(None, rules, level.value)
            ctx.state[_OBSERVED] = (would, verdict)
            if not any(would.allows(b) for b in route.backends):
                refusal = would.refusal(route)
                ctx.decisions.append(Decision(self.name, verdict, refusal.message, refusal.code))

    async def on_finish(self, ctx: RequestContext) -> None:
        observed = ctx.state.get(_OBSERVED)
        if observed is None or ctx.backend is None or not ctx.attempts:
            return
        would, verdict = observed
        if not would.allows(ctx.backend):
            ctx.decisions.append(
                Decision(
                    self.name,
                    verdict,
                    f"backend {ctx.backend.name} is outside residency rule"
                    f" {', '.join(r.name for r in would.rules)}",
                    "residency_violation",
                )
            )
