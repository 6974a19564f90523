"""Step: resolve the request's ``model`` to a route of the loaded bundle.

The request names a ModelRoute in ``model``, by its name or one of its ``modelAliases``
(so an app keeps its vendor model strings); from here on ``ctx.route.name`` is the route's
own name, which is what policies grant and headers report. :func:`route_to` is the one
place a request's
route is set (the ``X-AIGW-Route`` header and the ``route`` decision with it): this step
sets the requested one; a step that reroutes later (a spent budget's fallback route,
intent routing by quality tier or region) calls it again before the upstream call, which
only ever reads ``ctx.route``.
"""

from __future__ import annotations

from aigw_sidecar.context import Decision, RequestContext
from aigw_sidecar.errors import RouteNotFound
from aigw_sidecar.pipeline import Phase, Step
from aigw_sidecar.runtime import RuntimeRoute

__all__ = ["ResolveRoute", "route_to"]


def route_to(ctx: RequestContext, route: RuntimeRoute, *, step: str, reason: str = "") -> None:
    """Send ``ctx`` to ``route`` (recorded as a decision when it changes the route)."""
    if ctx.route is not None and ctx.route is not route:
        ctx.decisions.append(Decision(step, "route", reason or route.name, "rerouted"))
    ctx.route = route
    ctx.response_headers["X-AIGW-Route"] = route.name


class ResolveRoute(Step):
    """``ctx.requested_model`` -> ``ctx.route``."""

    name = "route"
    phase = Phase.ROUTE

    async def on_request(self, ctx: RequestContext) -> None:
        route = ctx.config.route_for(ctx.requested_model)
        if route is None:
            raise RouteNotFound(
                f"model {ctx.requested_model[:100]!r} is not a route of this workload;"
                " GET /v1/models lists them"
            )
        route_to(ctx, route, step=self.name)
