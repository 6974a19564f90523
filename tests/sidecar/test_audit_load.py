"""Records == requests under load through real ``aigw sidecar`` processes, SIGTERM included.

Two sidecar processes (two replicas' worth of chains) take a mixed load at once: answers,
streams, refusals (a tenant not granted, a requests/min limit), provider failures (the
provider refuses the backend's key), malformed bodies, and callers that disconnect in the
middle of a stream, idempotent replays. One of them gets SIGTERM while the load is
running; the load goes on until its socket is gone. Every call the server saw had an answer with an
``X-AIGW-Request-Id`` (the drain lets calls finish or cuts them with a typed error): each
such id has exactly one record, with the caller's ``X-Request-Id`` as its correlation id,
no record has an id no caller got, and the chains verify with ``--strict`` (ended, nothing
dropped). A call that never got an answer never reached the server, and has no record.

Answers from a step are in the mix too: idempotent replays (a second call with the same
``Idempotency-Key`` and body) and exact-cache hits, complete and streamed (one fixed body
of a use case with the cache on: the first call of each sidecar is a miss, later ones
hits). Each has its one record, saying which step answered, with no attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from pathlib import Path
from typing import Any

import aiohttp

from aigw_fakeprovider import FakeProvider

from .auditing import SidecarProcess, aigw, policy_doc, priced, records, sidecar_process
from .conftest import route

KINDS = (
    *("ok", "stream", "tenant", "limited", "provider", "bad_json", "disconnect", "ok", "idem"),
    *("hit", "hit_stream"),
)
PER_SIDECAR = 240


def docs(oai: FakeProvider, slow: FakeProvider) -> list[dict[str, Any]]:
    broken = priced("primary", oai.openai_base_url, "gpt-4o-mini", "1.50", "6.00")
    broken["credentialSecretRef"]["key"] = "anthropic"  # the wrong key: the provider says 401
    spec = {
        "useCases": [
            {
                "name": "default",
                "routes": ["chat", "broken", "slow"],
                "idempotency": {"enabled": True},
            },
            {"name": "limited", "routes": ["chat"], "rateLimits": {"requestsPerMinute": 5}},
            {"name": "cached", "routes": ["chat"], "cache": {"exact": {"enabled": True}}},
        ]
    }
    return [
        route("chat", [priced("primary", oai.openai_base_url, "gpt-4o-mini", "1.50", "6.00")]),
        route("broken", [broken]),
        route("slow", [priced("primary", slow.openai_base_url, "gpt-4o-mini", "1.50", "6.00")]),
        policy_doc(spec),
    ]


class Load:
    """What the callers sent and saw."""

    def __init__(self) -> None:
        self.sent: dict[str, str] = {}
        """caller id -> kind."""
        self.answered: dict[str, str] = {}
        """caller id -> X-AIGW-Request-Id of the answer."""
        self.unanswered: set[str] = set()
        self._ids = itertools.count()

    async def call(self, session: aiohttp.ClientSession, url: str, kind: str, index: int) -> None:
        caller = f"load-{next(self._ids)}"
        self.sent[caller] = kind
        headers = {"X-Request-Id": caller}
        body: Any = {"model": "chat", "messages": [{"role": "user", "content": "hello"}]}
        if kind == "stream":
            body["stream"] = True
        elif kind == "tenant":
            headers["X-AIGW-Tenant"] = "not-granted"
        elif kind == "limited":
            headers["X-AIGW-Use-Case"] = "limited"
        elif kind == "provider":
            body["model"] = "broken"
        elif kind == "disconnect":
            body = {**body, "model": "slow", "stream": True}
        elif kind in ("hit", "hit_stream"):  # one body: after the first answer, hits
            headers["X-AIGW-Use-Case"] = "cached"
            body["messages"][0]["content"] = "what is cached"
            body["stream"] = kind == "hit_stream"
        elif kind == "idem":  # two calls share each key: the second is an idempotent replay
            headers["Idempotency-Key"] = f"key-{index // (2 * len(KINDS))}"
        data = b"{oops" if kind == "bad_json" else None
        try:
            async with session.post(
                f"{url}/v1/chat/completions",
                json=None if data else body,
                data=data,
                headers=headers,
            ) as response:
                self.answered[caller] = response.headers["X-AIGW-Request-Id"]
                if kind == "disconnect" and response.status == 200:
                    await response.content.readany()
                    response.close()  # the caller goes away mid-stream
                    return
                await response.read()
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
            if caller not in self.answered:
                self.unanswered.add(caller)


async def _drive(load: Load, url: str, stop_after: int | None, sidecar: SidecarProcess) -> None:
    connector = aiohttp.TCPConnector(limit=12, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        pending: set[asyncio.Future[None]] = set()
        for i in range(PER_SIDECAR):
            if stop_after is not None and i == stop_after:
                sidecar.terminate()  # SIGTERM in the middle of the load
            pending.add(asyncio.ensure_future(load.call(session, url, KINDS[i % len(KINDS)], i)))
            if len(pending) >= 16:
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if pending:
            await asyncio.wait(pending)


async def test_records_equal_requests_under_load_and_sigterm(
    tmp_path: Path, oai_fake: FakeProvider
) -> None:
    async with FakeProvider("openai", api_key="sk-canary-openai-5b1e0d9f") as slow:
        slow.queue_fault(chunk_latency_ms=150, count=10_000)
        spec = docs(oai_fake, slow)
        loads = [Load(), Load()]
        paths = [tmp_path / f"s{i}" / "audit" / "audit.jsonl" for i in range(2)]
        async with contextlib.AsyncExitStack() as stack:
            sidecars = []
            for i, path in enumerate(paths):
                (tmp_path / f"s{i}").mkdir()
                sidecars.append(
                    await stack.enter_async_context(
                        sidecar_process(
                            tmp_path / f"s{i}",
                            spec,
                            "--audit-file",
                            str(path),
                            "--drain-timeout",
                            "10",
                        )
                    )
                )
            await asyncio.gather(
                _drive(loads[0], sidecars[0].url, PER_SIDECAR // 2, sidecars[0]),
                _drive(loads[1], sidecars[1].url, None, sidecars[1]),
            )
            codes = [await s.stop() for s in sidecars]
        assert codes == [0, 0], [s.log.decode()[-2000:] for s in sidecars]

    for load, path in zip(loads, paths, strict=True):
        calls = records(path)
        by_id = {r["id"]: r for r in calls}
        assert len(by_id) == len(calls), "one record per id"
        assert set(by_id) == set(load.answered.values()), "records == answered calls"
        for caller, request_id in load.answered.items():
            assert by_id[request_id]["correlation"]["x_request_id"] == caller
        callers = {r["correlation"]["x_request_id"] for r in calls}
        assert not callers & load.unanswered  # what got no answer never reached the server
        seen: dict[str, set[str | None]] = {}
        for record in calls:
            kind = load.sent[record["correlation"]["x_request_id"]]
            seen.setdefault(kind, set()).add(record["error_type"])
        assert None in seen["ok"]
        assert None in seen["stream"]
        assert "permission_denied" in seen["tenant"]
        assert "rate_limited" in seen["limited"]
        assert "upstream_error" in seen["provider"]
        assert "invalid_request" in seen["bad_json"]
        assert "client_disconnected" in seen["disconnect"]
        replays = [r for r in calls if r["idempotent_replay"]]
        assert replays, "idempotent replays are recorded"
        assert all(r["answered_by"] == "idempotency" and not r["attempts"] for r in replays)
        hits = [r for r in calls if r["cache"] == "hit"]
        assert {load.sent[r["correlation"]["x_request_id"]] for r in hits} == {"hit", "hit_stream"}
        assert all(r["answered_by"] == "cache.answer" and not r["attempts"] for r in hits)
        assert all(r["status"] == 200 and r["cost_usd"] == "0.000000000" for r in hits)
        cached = [r for r in calls if load.sent[r["correlation"]["x_request_id"]].startswith("hit")]
        assert {r["cache"] for r in cached} <= {"hit", "miss"}
        verified = aigw("audit", "verify", "--strict", path)
        assert verified.returncode == 0, verified.stdout
    assert loads[0].unanswered, "the SIGTERM came in the middle of the load"
    assert len(loads[0].answered) < PER_SIDECAR
    assert len(loads[1].answered) == PER_SIDECAR
