"""Step: resolve the request's ``model`` to a route of the loaded bundle, and set the deadline.

The request names a ModelRoute in ``model``, by its name or one of its ``modelAliases``
(so an app keeps its vendor model strings); from here on ``ctx.route.name`` is the route's
own name, which is what policies grant and headers report. Later, intent routing (quality
tier, region) and budget fallbacks will choose the route here or in a step before this one;
the upstream call only ever reads ``ctx.route``.
"""

from __future__ import annotations

from aigw_sidecar.context import RequestContext
from aigw_sidecar.errors import RouteNotFound
from aigw_sidecar.pipeline import Step

__all__ = ["ResolveRoute"]


class ResolveRoute(Step):
    """``ctx.requested_model`` -> ``ctx.route``; deadline from the route's request timeout."""

    name = "route"

    async def on_request(self, ctx: RequestContext) -> None:
        route = ctx.config.route_for(ctx.requested_model)
        if route is None:
            raise RouteNotFound(
                f"model {ctx.requested_model[:100]!r} is not a route of this workload;"
                " GET /v1/models lists them"
            )
        ctx.route = route
        ctx.deadline = ctx.started + route.request_s
        ctx.response_headers["X-AIGW-Route"] = route.name
