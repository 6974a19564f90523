"""The retry pause: full jitter over an exponential ceiling, never under a provider's hint.

Driven through the real picker on a real compiled bundle (no sidecar needed): the pause
before retrying a backend that was tried already is uniform in
``[0, min(backoffMaxMs, backoffBaseMs * 2^(failures-1))]``, and never shorter than the
backend's ``Retry-After``.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from multidict import CIMultiDict, CIMultiDictProxy

from aigw_contract import parse_bundle
from aigw_sidecar import RequestContext
from aigw_sidecar.attempts import HEALTH, BackendStates, Health, Picker
from aigw_sidecar.runtime import build_runtime

from .conftest import backend, bundle_bytes, policy, route

BASE_MS, MAX_MS = 100, 1000


def _setup(tmp_path: Path) -> tuple[RequestContext, BackendStates]:
    docs = [
        route(
            "chat",
            [backend("only", "openai-compatible", "http://127.0.0.1:9/v1", "m")],
            retry={"attempts": 10, "backoffBaseMs": BASE_MS, "backoffMaxMs": MAX_MS},
        ),
        policy(["chat"]),
    ]
    config = build_runtime(parse_bundle(bundle_bytes(docs)), tmp_path)
    ctx = RequestContext(
        request_id="r",
        api="openai",
        operation="chat",
        headers=CIMultiDictProxy(CIMultiDict()),
        config=config,
        started=0.0,
    )
    ctx.route = config.routes["chat"]
    return ctx, BackendStates()


def test_full_jitter_grows_exponentially_up_to_backoff_max(tmp_path: Path) -> None:
    ctx, states = _setup(tmp_path)
    assert ctx.route is not None
    picker = Picker(states, random.Random(3))
    only = ctx.route.backends[0]
    for failures in range(1, 7):
        ceiling = min(MAX_MS, BASE_MS * 2 ** (failures - 1)) / 1000
        pauses = []
        for _ in range(300):
            choice = picker.next(ctx, ctx.route, only, {"only"}, failures, now=0.0)
            assert not isinstance(choice, str)
            pauses.append(choice.pause_s)
        assert all(0 <= p <= ceiling for p in pauses)
        # Full jitter: spread over the whole range, not clustered at the ceiling.
        assert min(pauses) < ceiling * 0.1
        assert max(pauses) > ceiling * 0.9


def test_a_retry_after_is_a_floor_and_the_deadline_a_ceiling(tmp_path: Path) -> None:
    ctx, states = _setup(tmp_path)
    assert ctx.route is not None
    only = ctx.route.backends[0]
    health = states.get("chat", "only").setdefault(HEALTH, Health())
    health.back_off(0.0, 0.7, rate_limited=True)
    picker = Picker(states, random.Random(5))
    pauses = [picker.next(ctx, ctx.route, only, {"only"}, 1, now=0.0) for _ in range(50)]
    assert all(not isinstance(c, str) and c.pause_s >= 0.7 for c in pauses)
    ctx.deadline = 0.5  # the pause would end after the deadline: no attempt starts
    assert picker.next(ctx, ctx.route, only, {"only"}, 1, now=0.0) == "deadline"
    health.back_off(0.0, 5.0, rate_limited=True)  # longer than backoffMaxMs
    ctx.deadline = math.inf
    assert picker.next(ctx, ctx.route, only, {"only"}, 1, now=0.0) == "backoff_too_long"
