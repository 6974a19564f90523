"""Audit records through a real sidecar: one per call whatever its outcome, with the fields
``docs/audit.md`` lists, and nothing a record must never hold."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from aigw_fakeprovider import FakeProvider
from aigw_sidecar import SidecarServer
from aigw_sidecar.app_keys import PIPELINE
from aigw_sidecar.settings import AuditConfig

from .auditing import aigw, audit_files, audited_gateway, policy_doc, priced, records
from .conftest import (
    CANARY_ANTHROPIC,
    CANARY_OPENAI,
    backend,
    route,
    sidecar_settings,
    write_secrets,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
PII_EMAIL = "jane.roe.7781@example.org"
PII_CARD = "4111 1111 1111 1111"
PROMPT_WORDS = "zebra-quartz-marmalade"
USER = "user-42@corp.example"


def docs(
    oai: FakeProvider, claude: FakeProvider, *, mode: str = "enforce", **audit: Any
) -> list[Any]:
    url = oai.openai_base_url
    spec = {
        "mode": mode,
        "useCases": [
            {
                "name": "support",
                "routes": ["chat", "claude", "embed"],
                "budgets": [{"name": "support-day", "period": "day", "tokens": 1_000_000}],
                "rateLimits": {"requestsPerMinute": 1000},
                "audit": {"retentionDays": 90, **audit},
            },
            {
                "name": "tight",
                "routes": ["chat"],
                "budgets": [
                    {"name": "tight-day", "period": "day", "tokens": 20, "scope": "useCase"}
                ],
            },
        ],
    }
    return [
        route("chat", [priced("primary", url, "gpt-4o-mini", "1.50", "6.00")]),
        route("embed", [priced("small", url, "text-embedding-3-small", "0.02", "0.00")]),
        route(
            "claude",
            [backend("sonnet", "anthropic", claude.base_url, "claude-sonnet-4-5", key="anthropic")],
        ),
        policy_doc(spec),
    ]


def _hello(text: str = "hello there") -> Any:
    return [{"role": "user", "content": text}]


async def test_every_call_has_one_record_with_its_outcome(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    ids: dict[str, str] = {}
    async with audited_gateway(tmp_path, docs(oai_fake, claude_fake), oai_fake, claude_fake) as (
        gateway,
        path,
    ):
        client = gateway.openai(
            default_headers={"traceparent": TRACEPARENT, "X-Request-Id": "caller-1"}
        )
        ok = await client.chat.completions.with_raw_response.create(
            model="chat", messages=_hello(), max_tokens=10, extra_headers={"X-AIGW-User": USER}
        )
        ids["ok"] = ok.headers["x-aigw-request-id"]
        stream = await client.chat.completions.with_raw_response.create(
            model="chat", messages=_hello(), stream=True
        )
        ids["stream"] = stream.headers["x-aigw-request-id"]
        async for _ in stream.parse():
            pass
        embed = await client.embeddings.with_raw_response.create(model="embed", input="hi")
        ids["embed"] = embed.headers["x-aigw-request-id"]
        claude = gateway.anthropic()
        message = await claude.messages.with_raw_response.create(
            model="claude", max_tokens=20, messages=_hello()
        )
        ids["anthropic"] = message.headers["x-aigw-request-id"]
        await claude.close()
        with pytest.raises(openai.PermissionDeniedError) as denied:
            await client.chat.completions.create(
                model="chat", messages=_hello(), extra_headers={"X-AIGW-Tenant": "someone-else"}
            )
        ids["denied"] = denied.value.response.headers["x-aigw-request-id"]
        tight = {"X-AIGW-Use-Case": "tight"}
        await client.chat.completions.create(
            model="chat", messages=_hello("hi"), max_tokens=10, extra_headers=tight
        )
        with pytest.raises(openai.RateLimitError) as spent:
            await client.chat.completions.create(
                model="chat", messages=_hello("hi"), max_tokens=10, extra_headers=tight
            )
        ids["budget"] = spent.value.response.headers["x-aigw-request-id"]
        with pytest.raises(openai.NotFoundError) as unknown:
            await client.chat.completions.create(model="nope", messages=_hello())
        ids["no_route"] = unknown.value.response.headers["x-aigw-request-id"]
        oai_fake.queue_fault(status=500, error_message=f"boom {CANARY_OPENAI}")
        with pytest.raises(openai.InternalServerError) as failed:
            await client.chat.completions.create(model="chat", messages=_hello())
        ids["provider"] = failed.value.response.headers["x-aigw-request-id"]
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{gateway.url}/v1/chat/completions", data=b"{not json") as bad:
                ids["bad_json"] = bad.headers["X-AIGW-Request-Id"]
                assert bad.status == 400
            async with session.post(f"{gateway.url}/v1/nowhere", json={}) as nowhere:
                ids["bare"] = nowhere.headers["X-AIGW-Request-Id"]
                assert nowhere.status == 404
            oai_fake.queue_fault(chunk_latency_ms=300)
            async with session.post(
                f"{gateway.url}/v1/chat/completions",
                json={
                    "model": "chat",
                    "messages": _hello("one two three four five"),
                    "stream": True,
                },
            ) as cut:
                ids["disconnect"] = cut.headers["X-AIGW-Request-Id"]
                await cut.content.readany()
            # leaving the block closes the connection mid-stream
        await oai_fake.recorder.wait_for(lambda xs: any(x.disconnected for x in xs), within=10)
        await client.close()
        audit_status = (await gateway.status())["audit"]
        assert audit_status["sinks"] == ["file"]
        assert audit_status["dropped"] == 0
        assert audit_status["chain"].startswith("aud_")
    by_id = {r["id"]: r for r in records(path)}
    assert len(records(path)) == len(ids) + 1  # + the tight call that was allowed
    assert set(ids.values()) <= set(by_id)
    r = {name: by_id[i] for name, i in ids.items()}

    ok_record = r["ok"]
    assert ok_record["status"] == 200
    assert ok_record["error_type"] is None
    assert ok_record["trace_id"] == TRACE_ID
    assert ok_record["correlation"] == {"x_request_id": "caller-1", "traceparent": TRACEPARENT}
    assert (ok_record["tenant"], ok_record["use_case"], ok_record["app"]) == (
        "team-a",
        "support",
        "default",
    )
    assert ok_record["pod"]["namespace"] == "team-a"
    assert (ok_record["route"], ok_record["backend"], ok_record["provider"]) == (
        "chat",
        "primary",
        "openai",
    )
    assert ok_record["model"] == "gpt-4o-mini"
    assert ok_record["requested_model"] == "chat"
    assert ok_record["usage"] == {
        "input": 3,
        "output": 3,
        "cached": 0,
        "cache_write": 0,
        "estimated": False,
    }
    assert ok_record["cost_usd"] == "0.000022500"  # 3 x 1.50 + 3 x 6.00 per million
    assert [a["outcome"] for a in ok_record["attempts"]] == ["ok"]
    assert ok_record["cache"] == "bypass"
    assert ok_record["idempotent_replay"] is False
    assert ok_record["retention_days"] == 90
    assert ok_record["policy"]["name"] == "app"
    assert ok_record["policy"]["mode"] == "enforce"
    assert ok_record["policy"]["version"].startswith("1.")
    assert ok_record["user_hash"].startswith("hmac-sha256:")
    assert ok_record["request"]["max_tokens"] == 10
    limits = {entry["name"]: entry for entry in ok_record["limits"]}
    budget = next(v for k, v in limits.items() if "support-day" in k)
    assert budget["limit"] == 1_000_000
    assert budget["remaining"] == 1_000_000 - budget["used"]
    assert ok_record["duration_ms"] > 0
    assert ok_record["ttft_ms"] is None

    assert r["stream"]["stream"] is True
    assert r["stream"]["status"] == 200
    assert r["stream"]["ttft_ms"] is not None
    assert r["stream"]["usage"]["output"] > 0
    assert r["embed"]["operation"] == "embeddings"
    assert r["embed"]["status"] == 200
    assert r["anthropic"]["api"] == "anthropic"
    assert r["anthropic"]["provider"] == "anthropic"
    assert (r["denied"]["status"], r["denied"]["error_type"]) == (403, "permission_denied")
    assert r["denied"]["decisions"][0]["code"] == "tenant_not_granted"
    assert r["denied"]["decisions"][0]["action"] == "blocked"
    assert (r["budget"]["status"], r["budget"]["error_type"]) == (429, "budget_exceeded")
    assert r["budget"]["use_case"] == "tight"
    assert [d["code"] for d in r["budget"]["decisions"]] == ["budget_exceeded"]
    assert (r["no_route"]["status"], r["no_route"]["error_code"]) == (404, "model_not_found")
    assert r["no_route"]["requested_model"] == "nope"
    assert (r["provider"]["status"], r["provider"]["error_type"]) == (502, "upstream_error")
    assert r["provider"]["attempts"][0]["outcome"] == "upstream_error"
    assert r["provider"]["usage"] is None
    assert (r["bad_json"]["status"], r["bad_json"]["error_type"]) == (400, "invalid_request")
    assert (r["bare"]["status"], r["bare"]["path"]) == (404, "/v1/nowhere")
    assert r["disconnect"]["error_type"] == "client_disconnected"

    text = b"".join(f.read_bytes() for f in audit_files(path))
    for secret in (CANARY_OPENAI, CANARY_ANTHROPIC, USER, "hello there", "app-key-must-not"):
        assert secret.encode() not in text, secret
    verified = aigw("audit", "verify", path)
    assert verified.returncode == 0, verified.stdout
    assert f"{len(ids) + 1} call record(s)" in verified.stdout


async def test_observe_mode_records_what_enforce_would_have_blocked(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    async with audited_gateway(
        tmp_path, docs(oai_fake, claude_fake, mode="observe"), oai_fake, claude_fake
    ) as (gateway, path):
        client = gateway.openai()
        answer = await client.chat.completions.with_raw_response.create(
            model="chat", messages=_hello(), extra_headers={"X-AIGW-Tenant": "someone-else"}
        )
        request_id = answer.headers["x-aigw-request-id"]
        await client.close()
    (record,) = [r for r in records(path) if r["id"] == request_id]
    assert record["status"] == 200
    decision = record["decisions"][0]
    assert decision["code"] == "claim_not_granted"
    assert (decision["action"], decision["mode"]) == ("observed", "observe")
    assert decision["would_have_blocked"] is True


async def test_prompts_only_with_store_prompts_after_redaction_and_never_a_secret(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    prompt = f"{PROMPT_WORDS} mail {PII_EMAIL} card {PII_CARD}"
    for store in (False, True):
        run = tmp_path / f"store-{store}"
        run.mkdir()
        spec = docs(oai_fake, claude_fake, storePrompts=store)
        use_case = spec[-1]["spec"]["useCases"][0]
        use_case["redaction"] = {"profile": "pii", "mode": "mask", "restoreInAnswer": True}
        async with audited_gateway(run, spec, oai_fake, claude_fake) as (gateway, path):
            config = gateway.server.store.current
            assert config is not None
            active = gateway.server.api[PIPELINE].active(config)
            assert {"audit", "audit.facts"} <= set(active)
            assert ("audit.answer" in active) is store  # its hooks run only when prompts are kept
            client = gateway.openai()
            complete = await client.chat.completions.create(model="chat", messages=_hello(prompt))
            assert PII_EMAIL in (
                complete.choices[0].message.content or ""
            )  # restored for the caller
            stream = await client.chat.completions.create(
                model="chat", messages=_hello(prompt), stream=True
            )
            async for _ in stream:
                pass
            await client.close()
        text = b"".join(f.read_bytes() for f in audit_files(path)).decode()
        assert CANARY_OPENAI not in text
        assert PII_EMAIL not in text
        assert "4111" not in text
        calls = records(path)
        for record in calls:
            categories = {f["category"] for f in record["findings"]}
            assert {"EMAIL", "CARD"} <= categories, record["findings"]
            assert all(isinstance(f["count"], int) for f in record["findings"])
        if not store:
            assert PROMPT_WORDS not in text
            assert all("prompt" not in r and "answer" not in r for r in calls)
        else:
            complete_record, streamed = calls
            assert PROMPT_WORDS in json.dumps(complete_record["prompt"])
            assert "Echo:" in json.dumps(complete_record["answer"])
            assert streamed["answer"].startswith("Echo:")
            assert PROMPT_WORDS in streamed["answer"]


async def test_the_user_hash_is_keyed_and_stable_under_one_key(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    hashes = []
    for run, key in (("a", b"k" * 32), ("b", b"k" * 32), ("c", b"other-key-" * 4)):
        place = tmp_path / run
        place.mkdir()
        async with audited_gateway(
            place, docs(oai_fake, claude_fake), oai_fake, claude_fake, hash_key=key
        ) as (gateway, path):
            client = gateway.openai()
            await client.chat.completions.create(
                model="chat", messages=_hello(), extra_headers={"X-AIGW-User": USER}
            )
            await client.close()
        (record,) = records(path)
        hashes.append(record["user_hash"])
        assert USER not in path.read_text()
    assert hashes[0] == hashes[1] != hashes[2]
    assert hashes[0].split(":")[1] != hashes[2].split(":")[1]  # the key id says which key


async def test_anthropic_sdk_refusals_are_recorded_too(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    async with audited_gateway(tmp_path, docs(oai_fake, claude_fake), oai_fake, claude_fake) as (
        gateway,
        path,
    ):
        claude = gateway.anthropic()
        with pytest.raises(anthropic.NotFoundError) as missing:
            await claude.messages.create(model="none", max_tokens=5, messages=_hello())
        await claude.close()
        await asyncio.sleep(0)
    (record,) = records(path)
    assert record["id"] == missing.value.response.headers["x-aigw-request-id"]
    assert (record["api"], record["status"]) == ("anthropic", 404)


async def test_hostile_caller_values_never_reach_a_record_as_they_were_sent(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    spec = docs(oai_fake, claude_fake)
    spec[-1]["spec"]["useCases"][0]["tools"] = ["lookup"]
    tool = f"send_to_{PII_EMAIL}"
    model = f"{PII_EMAIL} please"
    async with audited_gateway(tmp_path, spec, oai_fake, claude_fake) as (gateway, path):
        client = gateway.openai()
        with pytest.raises(openai.PermissionDeniedError):
            await client.chat.completions.create(
                model="chat",
                messages=_hello(),
                tools=[{"type": "function", "function": {"name": tool, "parameters": {}}}],
                extra_headers={
                    "X-Request-Id": PII_EMAIL,
                    "traceparent": f"00-{PII_EMAIL}-x-01",
                },
            )
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(model=model, messages=_hello())
        await client.close()
    text = path.read_text()
    assert PII_EMAIL not in text
    tools_call, model_call = records(path)
    assert tools_call["decisions"][0]["code"] == "tool_not_allowed"
    assert tools_call["decisions"][0]["reason"].startswith("tools not allowed: #")
    assert tools_call["request"]["tools"][0].startswith("#")
    assert tools_call["correlation"] == {}
    assert tools_call["trace_id"] is None
    assert model_call["requested_model"].startswith("#")


async def test_a_call_before_any_bundle_is_loaded_has_a_record(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    path = tmp_path / "audit" / "audit.jsonl"
    settings = sidecar_settings(
        tmp_path / "missing-bundle.json",
        write_secrets(tmp_path),
        audit=AuditConfig(file=path),
    )
    async with SidecarServer(settings) as server, aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{server.api_port}/v1/chat/completions"
        async with session.post(url, json={"model": "chat", "messages": _hello()}) as response:
            assert response.status == 503
            request_id = response.headers["X-AIGW-Request-Id"]
    (record,) = records(path)
    assert record["id"] == request_id
    assert (record["status"], record["error_type"]) == (503, "upstream_unavailable")
    assert record["policy"] is None


@pytest.mark.parametrize(
    "flags",
    [
        ["--audit-queue-size", "0"],
        ["--audit-file-max-bytes", "-1"],
        ["--audit-otlp-endpoint", "ftp://collector:4318"],
        ["--audit-key-file", "/nonexistent/key"],
    ],
)
def test_bad_audit_flags_are_refused_before_serving(
    tmp_path: Path, flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from aigw_cli.main import main

    assert main(["sidecar", "--bundle", str(tmp_path / "b.json"), *flags]) == 2
    assert "error:" in capsys.readouterr().err


def test_a_short_audit_key_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from aigw_cli.main import main

    key = tmp_path / "key"
    key.write_bytes(b"short")
    assert (
        main(["sidecar", "--bundle", str(tmp_path / "b.json"), "--audit-key-file", str(key)]) == 2
    )
    assert "at least 16 bytes" in capsys.readouterr().err
    assert "short" not in capsys.readouterr().err
