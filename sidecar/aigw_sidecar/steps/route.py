"""Step: resolve the request's ``model`` to a route of the loaded bundle, by name or intent.

``model`` names a ModelRoute by its name or one of its ``modelAliases`` (so an app keeps
its vendor model strings), or an **intent family** (a route's ``intent.family``). From here
on ``ctx.route.name`` is the route's own name, which is what policies grant and headers
report. :func:`route_to` is the one place a request's route is set (the ``X-AIGW-Route``
header and the ``route`` decision with it): this step sets the requested one; a step that
reroutes later (a spent budget's fallback route) calls it again before the upstream call,
which only ever reads ``ctx.route``.

Intent routing, when ``model`` is a family: the candidates are the routes of that family the
caller's use case may use (its ``routes``); ``X-AIGW-Quality-Tier`` keeps those whose
``intent.qualityTier`` matches (none left: 400 ``quality_tier_unavailable`` listing the
tiers there are); without the header the use case's ``qualityTier`` does the same, as a
preference (ignored when it matches none); ``X-AIGW-Region`` keeps the routes that serve
that region (its ``intent.regions`` when it declares them, else its backends' regions).
One left: that route. Several: 400 ``ambiguous_route`` listing them and their tiers, so the
caller can name one. A family outside the use case: 403 ``route_not_allowed``.

A route named explicitly is used as named; a ``X-AIGW-Quality-Tier`` that contradicts its
``intent.qualityTier`` is a 400 ``quality_tier_mismatch`` (never silently another tier).

Claims (tier, region, tenant, use case) are parsed once per request by :func:`request_claims`
(:mod:`aigw_sidecar.claims`: typed, bounded, a repeated header refused) and shared with the
admit step through ``ctx.state[CLAIMS]``.
"""

from __future__ import annotations

from aigw_contract import EnforcementMode
from aigw_sidecar.claims import QUALITY_TIER, REGION, parse_claims
from aigw_sidecar.context import Decision, RequestContext
from aigw_sidecar.errors import InvalidRequest, PermissionDenied, RouteNotFound
from aigw_sidecar.governance import Claims, Denied
from aigw_sidecar.keys import CLAIMS, GOVERNANCE_VIEW
from aigw_sidecar.pipeline import Phase, Step
from aigw_sidecar.runtime import RuntimeRoute

__all__ = ["ResolveRoute", "request_claims", "route_to", "serves_region"]


def route_to(ctx: RequestContext, route: RuntimeRoute, *, step: str, reason: str = "") -> None:
    """Send ``ctx`` to ``route`` (recorded as a decision when it changes the route)."""
    if ctx.route is not None and ctx.route is not route:
        ctx.decisions.append(Decision(step, "route", reason or route.name, "rerouted"))
    ctx.route = route
    ctx.response_headers["X-AIGW-Route"] = route.name


def request_claims(ctx: RequestContext) -> Claims:
    """The request's claims, parsed once (400 for a malformed or repeated claim)."""
    claims = ctx.state.get(CLAIMS)
    if claims is None:
        claims = ctx.state[CLAIMS] = parse_claims(ctx.headers, ctx.body)
    return claims


def serves_region(route: RuntimeRoute, region: str) -> bool:
    """Whether ``route`` serves ``region``: its ``intent.regions`` when it declares them,
    else the regions of its backends."""
    declared = route.spec.intent.regions
    if declared:
        return region in declared
    return any(b.region == region for b in route.backends)


def _tier(route: RuntimeRoute) -> str:
    return route.spec.intent.quality_tier or "(none)"


def _listing(routes: list[RuntimeRoute]) -> str:
    return ", ".join(f"{r.name} (tier {_tier(r)})" for r in routes)


class ResolveRoute(Step):
    """``ctx.requested_model`` -> ``ctx.route``."""

    name = "route"
    phase = Phase.ROUTE

    async def on_request(self, ctx: RequestContext) -> None:
        config = ctx.config
        model = ctx.requested_model
        route = config.route_for(model)
        if route is not None:
            if QUALITY_TIER in ctx.headers:
                tier = request_claims(ctx).quality_tier
                if tier is not None and tier != route.spec.intent.quality_tier:
                    raise InvalidRequest(
                        f"route {route.name} serves quality tier {_tier(route)}, not the"
                        f" {QUALITY_TIER} asked for; name a route of that tier or drop the"
                        " header",
                        code="quality_tier_mismatch",
                    )
            route_to(ctx, route, step=self.name)
            return
        if model not in config.families:
            raise RouteNotFound(
                f"model {model[:100]!r} is not a route of this workload; GET /v1/models lists them"
            )
        route = self._by_intent(ctx, model)
        if route is not None:
            ctx.decisions.append(Decision(self.name, "route", f"{model} -> {route.name}", "intent"))
            route_to(ctx, route, step=self.name)

    def _by_intent(self, ctx: RequestContext, family: str) -> RuntimeRoute | None:
        view = ctx.config.prepared.get(GOVERNANCE_VIEW)
        policy = view.index.policy if view is not None else None
        if view is None or policy is None:
            return None  # no policy governs the pod: the admit step refuses the request
        claims = request_claims(ctx)
        try:
            identity = view.index.identify(
                claims.tenant, claims.use_case, enforce=policy.mode is EnforcementMode.ENFORCE
            )
        except Denied:
            return None  # a claim not granted: the admit step refuses it
        use_case = identity.use_case
        routes = ctx.config.routes
        family_routes = [routes[n] for n in use_case.routes if n in routes]
        candidates = [r for r in family_routes if r.spec.intent.family == family]
        if not candidates:
            raise PermissionDenied(
                f"no route of family {family!r} is allowed for use case {use_case.name!r}",
                code="route_not_allowed",
            )
        if claims.quality_tier is not None:
            tiered = [r for r in candidates if r.spec.intent.quality_tier == claims.quality_tier]
            if not tiered:
                raise InvalidRequest(
                    f"no route of family {family!r} serves the {QUALITY_TIER} asked for;"
                    f" there are: {_listing(candidates)}",
                    code="quality_tier_unavailable",
                )
            candidates = tiered
        elif use_case.quality_tier is not None:
            preferred = [
                r for r in candidates if r.spec.intent.quality_tier == use_case.quality_tier
            ]
            candidates = preferred or candidates
        if claims.region is not None:
            regional = [r for r in candidates if serves_region(r, claims.region)]
            candidates = regional or candidates  # none: residency refuses it, naming the region
        if len(candidates) > 1:
            raise InvalidRequest(
                f"model {family!r} matches several routes for use case {use_case.name!r}:"
                f" {_listing(candidates)}; name one in model, or send {QUALITY_TIER}"
                f" (or {REGION})",
                code="ambiguous_route",
            )
        return candidates[0]
