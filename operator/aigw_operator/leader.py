"""Which replica leads: read from kopf's peering object, for the metric and the rollout poller.

kopf pauses every replica but the live one with the highest priority and keeps no public
flag for it; its rule is simple and its state is in the peering object's status (one entry
per replica: priority, lifetime, last keep-alive). :func:`is_leader` applies the same rule
to that object for our own identity (passed to kopf, so both agree on who we are): we lead
when our entry is alive and no other live entry has a priority equal to or above ours.
Without peering (standalone) every replica leads.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import ApiError
from .kube import KubeClient
from .settings import PeeringSettings

__all__ = ["is_leader", "leads", "peering_path"]


def peering_path(name: str, namespaces: tuple[str, ...]) -> str:
    """The peering object kopf keeps alive (cluster-wide, or in the first namespace)."""
    if namespaces:
        return f"/apis/kopf.dev/v1/namespaces/{namespaces[0]}/kopfpeerings/{name}"
    return f"/apis/kopf.dev/v1/clusterkopfpeerings/{name}"


def _alive(entry: Mapping[str, Any], now: datetime) -> bool:
    try:
        seen = datetime.fromisoformat(str(entry["lastseen"]))
        lifetime = timedelta(seconds=int(entry.get("lifetime", 60)))
    except (KeyError, TypeError, ValueError):
        return False
    if seen.tzinfo is None:
        seen = seen.replace(tzinfo=UTC)
    return seen + lifetime > now


def leads(status: Mapping[str, Any], identity: str, now: datetime) -> bool:
    """kopf's rule over a peering status: our entry alive, nobody alive at or above us."""
    mine = status.get(identity)
    if not isinstance(mine, Mapping) or not _alive(mine, now):
        return False
    priority = int(mine.get("priority", 0))
    return not any(
        isinstance(entry, Mapping)
        and _alive(entry, now)
        and int(entry.get("priority", 0)) >= priority
        for peer, entry in status.items()
        if peer != identity
    )


async def is_leader(
    client: KubeClient, peering: PeeringSettings, identity: str, namespaces: tuple[str, ...]
) -> bool:
    """Whether this replica is the one kopf lets act now."""
    if peering.name is None:
        return True
    try:
        body = await client.get(peering_path(peering.name, namespaces))
    except ApiError:
        return False
    status = (body or {}).get("status") or {}
    return isinstance(status, Mapping) and leads(status, identity, datetime.now(UTC))
