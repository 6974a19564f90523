"""Step: Idempotency-Key (the IETF httpapi draft's semantics), a step that may answer.

A request with ``Idempotency-Key`` (parsed with the other claims: bounded, a repeated header
refused) under a use case whose ``idempotency.enabled`` holds is keyed by tenant, use case,
the claimed ``X-AIGW-User`` and the key, and fingerprinted by its body (SHA-256 of the
endpoint and the canonical body after admission). Then, before inspection, limits and budgets:

- the key is free: this request takes it (a pending marker, leased until its deadline + 5 s)
  and runs; its result is kept for ``ttlSeconds`` when it succeeds (a JSON answer after the
  answer's inspection, or every chunk of a stream), and a failure is kept only with
  ``storeFailures`` (never a 429 or 503, which mean "try later"; never a stream cut after
  its first byte), otherwise the key is freed and the next duplicate runs again;
- a success too large to keep (a stream past :data:`MAX_RECORD_BYTES` as the shared
  :class:`~.recording.Recorder` estimates it, or a record past it once serialised) is not
  stored: the recorder drops what it held at the bound, and the key keeps a small
  *not kept* record for ``ttlSeconds`` instead, so a duplicate gets 409
  ``idempotency_result_not_kept`` and is never run (and charged) a second time. All
  recordings in flight share one :class:`~.recording.RecordingBudget` (``recording``), so
  many concurrent long streams cannot add up past it either;
- the key holds a result with the same fingerprint: that result is the answer
  (``ctx.answer``: no upstream call, no reservation, no budget charge; a stream is replayed
  as a stream), marked ``X-AIGW-Idempotent-Replay: true`` with the first call's route,
  backend and cost headers and ``X-AIGW-Attempts: 0``;
- another fingerprint: 422 ``idempotency_key_reused`` (the key is not the caller's to reuse);
- the first request is still in flight: ``inFlight: conflict`` answers 409
  ``idempotency_key_in_use`` at once; ``wait`` waits up to ``waitMs`` (never past the
  deadline) for its result, then 409. Waiters in this process wake when the holder here
  finishes; others poll the store (25 ms growing to 200 ms).

The store is the pod's memory, or Redis when the sidecar has one (every sidecar of the
tenant shares the keys). Store failures follow the policy's ``failMode``: ``open`` runs the
request without idempotency (logged, counted), ``closed`` answers 503 ``state_unavailable``.
Metrics: ``aigw_idempotency_total{outcome}`` (stored, not_kept, replayed, mismatch, conflict,
waited, not_stored, store_unavailable).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import orjson
from prometheus_client import Counter

from aigw_contract import FailMode, InFlightAction
from aigw_sidecar import errors
from aigw_sidecar.cache.replay import replay
from aigw_sidecar.context import Json, RequestContext
from aigw_sidecar.errors import (
    IdempotencyConflict,
    IdempotencyMismatch,
    SidecarError,
    UpstreamUnavailable,
)
from aigw_sidecar.governance import StoreUnavailable
from aigw_sidecar.governance.plan import tag_of
from aigw_sidecar.idempotency import Found, IdempotencyStore, done_record, pending_marker
from aigw_sidecar.keys import GOVERNANCE_VIEW, IDENTITY
from aigw_sidecar.metrics import Metrics
from aigw_sidecar.pipeline import Phase, Step
from aigw_sidecar.runtime import RuntimeConfig
from aigw_sidecar.state import Key
from aigw_sidecar.streaming import StreamTransform

from .recording import BUDGET_BYTES, Recorder, RecordingBudget
from .route import request_claims

__all__ = ["MAX_RECORD_BYTES", "RECORDING_BUDGET_BYTES", "Idempotency"]

_log = logging.getLogger("aigw.idempotency")
_KEPT_HEADERS = ("X-AIGW-Route", "X-AIGW-Backend", "X-AIGW-Cost-USD")
MAX_RECORD_BYTES = 1 << 20
"""A larger result is not kept (a not-kept record answers duplicates): replays are for
ordinary answers."""
RECORDING_BUDGET_BYTES = BUDGET_BYTES
"""What all streams being recorded for replay may hold together in one sidecar."""
_LEASE_MARGIN_S = 5.0
_UNBOUNDED_LEASE_S = 600.0
_ERRORS: dict[str, type[SidecarError]] = {
    name: cls
    for name in errors.__all__
    if isinstance(cls := getattr(errors, name), type) and issubclass(cls, SidecarError)
}


@dataclass(slots=True)
class _Held:
    """This request holds the key: what to write when it ends."""

    key: str
    marker: bytes
    fingerprint: str
    ttl_s: float
    store_failures: bool
    recorder: Recorder | None = None
    done: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)


_HELD = Key[_Held]("idempotency.held")


class Idempotency(Step):
    """Answers a repeated Idempotency-Key with its first result (see the module docstring)."""

    name = "idempotency"
    phase = Phase.ADMIT + 50

    def __init__(self, store: IdempotencyStore, metrics: Metrics) -> None:
        self.store = store
        self._outcomes = Counter(
            "aigw_idempotency",
            "Requests with an Idempotency-Key, by outcome.",
            ["outcome"],
            registry=metrics.registry,
        )
        self._local: dict[str, _Held] = {}
        """Keys held by requests of this process (their waiters here wake on ``wake``)."""
        self.recording = RecordingBudget(RECORDING_BUDGET_BYTES)
        """Bytes the streams being recorded here hold together (``held``, ``peak``)."""

    def _count(self, outcome: str) -> None:
        self._outcomes.labels(outcome).inc()

    def active(self, config: RuntimeConfig) -> bool:
        """Only when a use case of the governing policy enables idempotency (every request's
        use case is one of them; with no policy, admit refuses every request)."""
        view = config.prepared.get(GOVERNANCE_VIEW)
        if view is None:
            return True
        policy = view.index.policy
        return policy is not None and any(u.idempotency.enabled for u in policy.use_cases)

    async def on_request(self, ctx: RequestContext) -> None:
        identity = ctx.state.get(IDENTITY)
        if identity is None:
            return
        settings = identity.use_case.idempotency
        claimed = request_claims(ctx).idempotency_key
        if claimed is None or not settings.enabled:
            return
        # Scoped by the claimed end user too: another user of the app never gets this
        # user's answer, even with the same key and body.
        user = request_claims(ctx).user or ""
        digest = hashlib.sha256(f"{user}\n{claimed}".encode()).hexdigest()[:32]
        key = f"aigw:{{{tag_of(identity)}}}:idem:{identity.use_case.name}:{digest}"
        fingerprint = hashlib.sha256(
            f"{ctx.api}|{ctx.operation}|".encode()
            + orjson.dumps(ctx.body, option=orjson.OPT_SORT_KEYS)
        ).hexdigest()
        marker = pending_marker(ctx.request_id, fingerprint)
        loop = asyncio.get_running_loop()
        now = loop.time()
        lease = (
            ctx.deadline - now + _LEASE_MARGIN_S
            if math.isfinite(ctx.deadline)
            else _UNBOUNDED_LEASE_S
        )
        wait_until = min(ctx.deadline, now + settings.wait_ms / 1000)
        poll = 0.025
        waited = False
        while True:
            try:
                found = await self.store.begin(key, marker, lease)
            except StoreUnavailable as exc:
                self._unavailable(identity.policy.fail_mode, exc)
                return
            if found is None:  # ours now
                held = _Held(
                    key, marker, fingerprint, settings.ttl_seconds, settings.store_failures
                )
                ctx.state[_HELD] = held
                self._local[key] = held
                return
            if found.fingerprint != fingerprint:
                self._count("mismatch")
                raise IdempotencyMismatch(
                    "this Idempotency-Key was used with another request body; use a new key"
                )
            if not found.pending:
                self._count("replayed")
                self._replay(ctx, found)
                return
            if settings.in_flight is InFlightAction.CONFLICT or loop.time() >= wait_until:
                self._count("conflict")
                raise IdempotencyConflict(
                    "the first request with this Idempotency-Key is still in flight",
                    retry_after=1,
                )
            if not waited:
                waited = True
                self._count("waited")
            local = self._local.get(key)
            pause = min(poll, max(0.0, wait_until - loop.time()))
            if local is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(local.wake.wait(), max(0.0, wait_until - loop.time()))
            else:
                await asyncio.sleep(pause)
                poll = min(poll * 2, 0.2)

    def _unavailable(self, fail_mode: FailMode, exc: StoreUnavailable) -> None:
        self._count("store_unavailable")
        if fail_mode is FailMode.CLOSED:
            raise UpstreamUnavailable(
                "the idempotency store is unreachable; the policy fails closed",
                code="state_unavailable",
                retry_after=1,
            ) from exc
        _log.warning("idempotency store unreachable (%s): running without it (fail open)", exc)

    def _replay(self, ctx: RequestContext, found: Found) -> None:
        record: dict[str, Any] = orjson.loads(found.payload)
        headers = ctx.response_headers
        for name, value in record.get("headers", {}).items():
            if name in _KEPT_HEADERS and isinstance(value, str):
                headers[name] = value
        headers["X-AIGW-Attempts"] = "0"
        headers["X-AIGW-Idempotent-Replay"] = "true"
        kind = record.get("kind")
        if kind == "not_kept":
            raise IdempotencyConflict(
                "the first request with this Idempotency-Key completed, but its answer was "
                "too large to keep for replay; send a new key to run the request again",
                code="idempotency_result_not_kept",
            )
        if kind == "error":
            error = record["error"]
            cls = _ERRORS.get(error.get("class", ""), SidecarError)
            raise cls(error["message"], code=error["code"], retry_after=error.get("retry_after"))
        if kind == "stream":
            ctx.answer(self, chunks=replay(record["batches"]))
        else:
            ctx.answer(self, response=record["response"])

    def stream_transform(self, ctx: RequestContext) -> StreamTransform | None:
        held = ctx.state.get(_HELD)
        if held is None or ctx.answered_by == self.name:
            return None
        held.recorder = Recorder(MAX_RECORD_BYTES, self.recording)
        return held.recorder

    async def on_response(self, ctx: RequestContext) -> None:
        held = ctx.state.get(_HELD)
        if held is None or ctx.answered_by is not None:
            return
        recorder = held.recorder
        if ctx.chunks is not None:
            if recorder is None or not recorder.complete:
                return  # cut, or not recorded: on_finish frees the key
            record: Json = (
                {"kind": "not_kept"}
                if recorder.overflow
                else {"kind": "stream", "batches": recorder.batches}
            )
        else:
            record = {"kind": "json", "response": ctx.response}
        await self._complete(ctx, held, record)

    async def _abandon(self, held: _Held) -> None:
        with contextlib.suppress(StoreUnavailable):  # unreachable: the lease frees the key
            await self.store.abandon(held.key, held.marker)

    async def _complete(self, ctx: RequestContext, held: _Held, record: Json) -> None:
        record["headers"] = {k: v for k, v in ctx.response_headers.items() if k in _KEPT_HEADERS}
        payload = done_record(held.fingerprint, orjson.dumps(record))
        if held.recorder is not None:
            held.recorder.release()  # serialised: the batches are no longer needed
        if record["kind"] != "not_kept" and len(payload) > MAX_RECORD_BYTES:
            record = {"kind": "not_kept", "headers": record["headers"]}
            payload = done_record(held.fingerprint, orjson.dumps(record))
        try:
            stored = await self.store.complete(held.key, held.marker, payload, held.ttl_s)
        except StoreUnavailable:
            stored = False
        held.done = True
        if not stored:
            self._count("not_stored")
        else:
            self._count("not_kept" if record["kind"] == "not_kept" else "stored")

    async def on_finish(self, ctx: RequestContext) -> None:
        held = ctx.state.get(_HELD)
        if held is None:
            return
        try:
            if not held.done:
                error = ctx.error
                if (
                    held.store_failures
                    and isinstance(error, SidecarError)
                    and error.status not in (429, 503)
                    and ctx.status != 200  # a stream that failed after its first byte
                ):
                    failure = {
                        "class": type(error).__name__,
                        "message": error.message,
                        "code": error.code,
                        "retry_after": error.retry_after,
                    }
                    await self._complete(ctx, held, {"kind": "error", "error": failure})
                else:
                    self._count("not_stored")
                    await self._abandon(held)
        finally:
            if held.recorder is not None:
                held.recorder.release()
            held.wake.set()
            if self._local.get(held.key) is held:
                del self._local[held.key]
