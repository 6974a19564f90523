"""nginx (the compiled floor) proxies plain and streamed calls over a kept-alive upstream
connection; the Collector's span counts can be read back from its log."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path

import openai
import pytest

from aigw_fakeprovider import FakeProviderThread
from infra import collector, nginx_binary, otelcol_path, start_nginx
from probes import spans_exported

KEY = "sk-infra"
ESTABLISHED, TIME_WAIT = "01", "06"


def _states_towards(port: int) -> list[str]:
    """TCP states of loopback sockets whose remote end is ``port`` (from /proc/net/tcp)."""
    states = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[2].split(":")[1], 16) == port:
            states.append(fields[3])
    return states


@pytest.mark.skipif(nginx_binary() is None, reason="nginx comes from bench/deps.sh")
def test_nginx_proxies_plain_and_streamed_calls_over_one_kept_alive_connection(
    tmp_path: Path,
) -> None:
    with (
        FakeProviderThread("openai", api_key=KEY) as fake,
        start_nginx("0-63", tmp_path, fake.port) as (_proc, port),
        openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0) as sdk,
    ):
        for n in range(5):
            answer = sdk.chat.completions.create(
                model="m", messages=[{"role": "user", "content": f"plain {n}"}]
            )
            assert answer.choices[0].message.content == f"Echo: plain {n}"
        # Read to the end of the body: the SDK stops at [DONE] and may close the connection
        # before nginx has read the upstream's last chunk, and nginx then drops (RST) the
        # upstream connection instead of keeping it (the bench's clients read to the end).
        with sdk.chat.completions.with_streaming_response.create(
            model="m", messages=[{"role": "user", "content": "a streamed answer"}], stream=True
        ) as response:
            events = [line.removeprefix("data: ") for line in response.iter_lines() if line]
        chunks = [json.loads(e) for e in events if e != "[DONE]"]
        text = "".join(
            c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
        )
        assert text == "Echo: a streamed answer"
        states = _states_towards(fake.port)
        assert states.count(ESTABLISHED) == 1  # six calls, one upstream connection
        assert TIME_WAIT not in states  # none was opened and closed
    assert "[emerg]" not in (tmp_path / "nginx.log").read_text()


COLLECTOR = otelcol_path(Path(os.environ.get("AIGW_CACHE", Path.home() / ".cache" / "aigw")))


def _span(n: int) -> bytes:
    spans = [
        {"traceId": f"{i + 1:032x}", "spanId": f"{i + 1:016x}", "name": "bench", "kind": 2,
         "startTimeUnixNano": "1", "endTimeUnixNano": "2"}
        for i in range(n)
    ]  # fmt: skip
    body = {"resourceSpans": [{"resource": {}, "scopeSpans": [{"scope": {}, "spans": spans}]}]}
    return json.dumps(body).encode()


@pytest.mark.skipif(COLLECTOR is None, reason="the pinned otelcol comes from `make tools`")
def test_the_collector_log_counts_every_span_received(tmp_path: Path) -> None:
    assert COLLECTOR is not None
    with collector("otelcol-test", COLLECTOR, "0-63", tmp_path, tmp_path) as found:
        assert spans_exported(found.log) == 0
        for n in (3, 4):
            request = urllib.request.Request(
                f"{found.http_endpoint}/v1/traces", data=_span(n), method="POST",
                headers={"Content-Type": "application/json"},
            )  # fmt: skip
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
        deadline = time.monotonic() + 10
        while spans_exported(found.log) < 7 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert spans_exported(found.log) == 7
