"""Checking, before kopf starts, that the peering the operator is told to use exists.

kopf with a peering name but no peering object (or no peering CRDs) pauses every handler
forever and says so only at DEBUG: the operator would report ready, serve the webhook and
never publish a bundle. So the operator looks first, and refuses to start (exit 1, with what
to do) when the ClusterKopfPeering (cluster-wide) or a namespace's KopfPeering (namespaced)
is missing or unreadable. It never creates one: its RBAC (the chart's) only reads and
patches the named object, and a peering created by one replica would hide a misconfigured
chart. With ``--peering-name ''`` it runs standalone, and says so at INFO.
"""

from __future__ import annotations

from .errors import ApiError, ConfigError
from .kube import KubeClient
from .settings import OperatorSettings

__all__ = ["check_peering"]

_GROUP = "/apis/kopf.dev/v1"
_FORBIDDEN = 403


def _paths(settings: OperatorSettings, name: str) -> list[tuple[str, str]]:
    if not settings.namespaces:
        return [(f"ClusterKopfPeering {name}", f"{_GROUP}/clusterkopfpeerings/{name}")]
    return [
        (f"KopfPeering {ns}/{name}", f"{_GROUP}/namespaces/{ns}/kopfpeerings/{name}")
        for ns in settings.namespaces
    ]


async def check_peering(client: KubeClient, settings: OperatorSettings) -> str:
    """What the peering will be, as one INFO sentence; ConfigError if it cannot work."""
    peering = settings.peering
    if peering.name is None:
        return (
            "peering: none (--peering-name ''): this replica compiles on its own; "
            "run a single replica"
        )
    remedy = (
        "create it (the chart does: templates/peering.yaml, CRDs in charts/aigw/crds), "
        "or run one replica with --peering-name '' (standalone)"
    )
    if await client.get(_GROUP) is None:
        raise ConfigError(
            f"peering {peering.name!r} needs the kopf.dev peering CRDs, which are not "
            f"installed: {remedy}"
        )
    for what, path in _paths(settings, peering.name):
        try:
            found = await client.get(path)
        except ApiError as exc:
            if exc.status != _FORBIDDEN:
                raise
            raise ConfigError(
                f"cannot read the peering object {what} ({exc.reason}): the operator's RBAC "
                f"grants get/patch on the chart's operator.peeringName only; pass that name, "
                f"or grant access"
            ) from exc
        if found is None:
            raise ConfigError(f"the peering object {what} does not exist: {remedy}")
    where = ", ".join(what for what, _ in _paths(settings, peering.name))
    return (
        f"peering: {where}; this replica compiles while it is the live one with the highest "
        f"priority ({peering.priority})"
    )
