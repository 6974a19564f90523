"""The audit file on disk: rotation keeps one chain across files, ``aigw audit verify``
passes on what the sidecar wrote and fails on a removed or edited line, retention removes
rotated files once their records' ``retentionDays`` are over."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import aiohttp

from aigw_fakeprovider import FakeProvider

from .auditing import aigw, audit_files, audited_gateway, policy_doc, priced, records
from .conftest import route


def docs(oai: FakeProvider, retention: int = 30) -> list[dict[str, Any]]:
    spec = {
        "useCases": [{"name": "default", "routes": ["chat"], "audit": {"retentionDays": retention}}]
    }
    return [
        route("chat", [priced("primary", oai.openai_base_url, "gpt-4o-mini", "1.50", "6.00")]),
        policy_doc(spec),
    ]


async def _calls(gateway: Any, n: int) -> list[str]:
    client = gateway.openai()
    ids = []
    for i in range(n):
        response = await client.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": f"call number {i}"}]
        )
        ids.append(response.headers["x-aigw-request-id"])
    await client.close()
    return ids


async def test_verify_passes_on_rotated_files_and_fails_on_a_removed_or_edited_line(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    async with audited_gateway(
        tmp_path, docs(oai_fake), oai_fake, claude_fake, file_max_bytes=6000
    ) as (gateway, path):
        ids = await _calls(gateway, 12)
    files = audit_files(path)
    assert len(files) >= 3  # rotated by size
    assert all("-r30." in f.name for f in files[:-1])
    assert [r["id"] for r in records(path)] == ids  # one chain across the files, in order
    ok = aigw("audit", "verify", *files)
    assert ok.returncode == 0, ok.stdout
    assert "ok: 1 chain(s), 12 call record(s)" in ok.stdout
    assert aigw("audit", "verify", "--strict", *files).returncode == 0  # ended, none dropped

    middle = files[1]
    original = middle.read_bytes()
    lines = original.splitlines(keepends=True)
    middle.write_bytes(b"".join(lines[:1] + lines[2:]))  # one line removed
    removed = aigw("audit", "verify", *files)
    assert removed.returncode == 1
    assert "are missing" in removed.stdout

    edited = original.replace(b'"status":200', b'"status":201', 1)
    assert edited != original
    middle.write_bytes(edited)
    changed = aigw("audit", "verify", *files)
    assert changed.returncode == 1
    assert "hash mismatch: the record was edited" in changed.stdout

    middle.write_bytes(original)
    last = files[-1]
    tail = last.read_bytes().splitlines(keepends=True)
    last.write_bytes(b"".join(tail[:-1]))  # the end record cut off
    open_chain = aigw("audit", "verify", *files)
    assert open_chain.returncode == 0
    assert "has no end record" in open_chain.stdout
    assert aigw("audit", "verify", "--strict", *files).returncode == 1
    # Only the newest files (older ones shipped and expired): a note, not a failure.
    assert aigw("audit", "verify", *files[1:]).returncode == 0
    assert aigw("audit", "verify", tmp_path / "missing.jsonl").returncode == 2


async def test_retention_removes_expired_rotated_files_and_file_keep_bounds_them(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    folder = tmp_path / "audit"
    folder.mkdir()
    day = 86_400
    expired = folder / "audit-20200101T000000000000Z-r1.jsonl"
    kept = folder / "audit-20200102T000000000000Z-r90.jsonl"
    for path in (expired, kept):
        path.write_text("{}\n")
        then = time.time() - 2 * day
        os.utime(path, (then, then))
    async with audited_gateway(tmp_path, docs(oai_fake, retention=1), oai_fake, claude_fake) as (
        gateway,
        path,
    ):
        assert not expired.exists()  # 2 days old, its records kept 1 day
        assert kept.exists()  # 2 days old, kept 90
        await _calls(gateway, 2)
    # A restart rotates the file it finds (retention read from its records: 1 day).
    async with audited_gateway(
        tmp_path,
        docs(oai_fake, retention=1),
        oai_fake,
        claude_fake,
        file_max_bytes=3000,
        file_keep=2,
    ) as (gateway, path):
        rotated = [f for f in audit_files(path) if f != path]
        assert any(f.name.endswith("-r1.jsonl") for f in rotated)
        await _calls(gateway, 10)
        metrics = await _metrics(gateway)
    rotated = [f for f in audit_files(path) if f != path]
    assert len(rotated) == 2  # file_keep
    assert not kept.exists()  # the oldest go first once there are more than file_keep
    assert 'aigw_audit_removed_total{reason="count"}' in metrics
    assert 'aigw_audit_records_total{outcome="written"}' in metrics


async def _metrics(gateway: Any) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gateway.admin_url}/metrics") as response,
    ):
        return await response.text()
