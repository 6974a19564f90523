"""The pipeline's steps, one module each. See :mod:`aigw_sidecar.pipeline` for the interface
and :func:`default_steps` for the order."""

from __future__ import annotations

import random

from aiohttp import ClientSession

from aigw_sidecar.metrics import Metrics
from aigw_sidecar.pipeline import Step

from .account import Account
from .models import ModelsList
from .route import ResolveRoute
from .upstream import CallUpstream

__all__ = ["Account", "CallUpstream", "ModelsList", "ResolveRoute", "default_steps"]


def default_steps(session: ClientSession, rng: random.Random, metrics: Metrics) -> list[Step]:
    """The steps of the standard pipeline, in order."""
    return [
        ResolveRoute(),
        Account(metrics),
        CallUpstream(session, rng, metrics),
        ModelsList(),  # prepare only: runs after the governance step's prepare
    ]
