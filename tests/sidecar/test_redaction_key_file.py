"""``aigw sidecar --redaction-key-file``: a key that cannot serve is an error at start, never a
silent fallback to a per-process key (hash tokens would then stop joining across pods), and
the error names the file and the length, never the content."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from aigw_fakeprovider import FakeProvider

from .inspecting import inspecting_gateway

AIGW = Path(sys.executable).with_name("aigw")


def _start(tmp_path: Path, key_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(str(AIGW), "sidecar", "--bundle", str(tmp_path / "bundle.json")),
            *("--port", "0", "--admin-port", "0", "--redaction-key-file", str(key_file)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "holds 0 bytes; at least 16 are needed"),
        (b"  \n\n", "holds 0 bytes; at least 16 are needed"),
        (b"canary-short\n", "holds 12 bytes; at least 16 are needed"),
        (None, "cannot read the redaction key file"),
    ],
    ids=["empty", "whitespace", "short", "missing"],
)
def test_a_key_file_that_cannot_serve_stops_the_sidecar(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    key_file = tmp_path / "key"
    if content is not None:
        key_file.write_bytes(content)
    result = _start(tmp_path, key_file)
    assert result.returncode == 2
    assert message in result.stderr
    assert str(key_file) in result.stderr
    assert "canary" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("key", [None, b"a-configured-key-canary-0123456789"], ids=["none", "file"])
async def test_status_and_log_say_where_the_hash_key_came_from(
    tmp_path: Path,
    oai_fake: FakeProvider,
    claude_fake: FakeProvider,
    caplog: pytest.LogCaptureFixture,
    key: bytes | None,
) -> None:
    """Without a key file, a policy using hash mode is a WARNING (tokens match within this
    pod only) and /aigw/status says per-process; with one, it says file. Never the key."""
    settings = {"redaction": {"profile": "pii", "mode": "hash"}}
    caplog.set_level(logging.INFO, logger="aigw")
    async with (
        inspecting_gateway(tmp_path, oai_fake, claude_fake, settings, redaction_key=key) as gw,
        aiohttp.ClientSession() as session,
        session.get(f"{gw.admin_url}/aigw/status") as response,
    ):
        status = await response.json()
        text = await response.text()
    assert status["redaction"] == {"hashKey": "per-process" if key is None else "file"}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "hash" in r.message]
    assert bool(warnings) == (key is None)
    assert "canary" not in text + caplog.text
