"""The budget and limit view of ``/aigw/status``: what this pod's policy has left.

Reads the counters of every use case of the governing policy under its default tenant,
from the shared store (or this pod's local counts when the store is unreachable, and says
so), without changing them.
"""

from __future__ import annotations

import math
from typing import Any

from .constraints import Constraints
from .governor import BundleView, Governor
from .money import format_usd
from .plan import Unit, build_counters
from .store import StoreError

__all__ = ["budget_status"]


async def budget_status(governor: Governor, view: BundleView) -> dict[str, Any]:
    """Limits and budgets of this pod's policy under its default tenant, for /aigw/status.

    Token amounts are integers, money is a USD decimal string; ``remaining`` never goes
    below zero (spend of requests degraded to a fallback route can pass the limit).
    """
    policy = view.index.policy
    if policy is None:
        return {"policy": None, "counters": []}
    now = governor.clock.now()
    zero = Constraints(0, 0, None, 0, None)
    entries: list[dict[str, Any]] = []
    state = governor.store.name
    for use_case in policy.use_cases:
        identity = view.index.identify(policy.tenant, use_case.name, enforce=False)
        counters, roles = build_counters(identity, zero, now=now, enforce=False)
        if not counters:
            continue
        try:
            levels = await governor.store.read(counters, now)
        except StoreError:
            state = f"{governor.store.name} unreachable; showing this pod's local counts"
            levels = await governor.local.read(counters, now)
        for counter, role, level in zip(counters, roles, levels, strict=True):
            used = math.ceil(level) if role.unit is not Unit.NANO_USD else int(level)
            left = max(0, counter.limit - used)
            money = role.unit is Unit.NANO_USD
            entries.append(
                {
                    "tenant": identity.tenant,
                    "useCase": use_case.name,
                    "counter": counter.name,
                    "key": counter.key,
                    "unit": "usd" if money else role.unit.value,
                    "limit": format_usd(counter.limit) if money else counter.limit,
                    "used": format_usd(used) if money else used,
                    "remaining": format_usd(left) if money else left,
                }
            )
    return {"policy": policy.name, "mode": policy.mode.value, "state": state, "counters": entries}
