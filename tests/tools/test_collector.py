"""The Go-built OpenTelemetry Collector receives OTLP/HTTP and writes it to its file exporter."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from aigw_e2e import Collector, Tools
from aigw_e2e.processes import pid_alive

pytestmark = pytest.mark.k8s

TRACE = {
    "resourceSpans": [
        {
            "resource": {
                "attributes": [{"key": "service.name", "value": {"stringValue": "aigw-test"}}]
            },
            "scopeSpans": [
                {
                    "scope": {"name": "aigw"},
                    "spans": [
                        {
                            "traceId": "5b8efff798038103d269b633813fc60c",
                            "spanId": "eee19b7ec3c1b174",
                            "name": "chat gpt-4o-mini",
                            "kind": 3,
                            "startTimeUnixNano": "1700000000000000000",
                            "endTimeUnixNano": "1700000000500000000",
                            "attributes": [
                                {"key": "gen_ai.system", "value": {"stringValue": "openai"}}
                            ],
                        }
                    ],
                }
            ],
        }
    ]
}


def _spans(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        span
        for doc in documents
        for resource in doc.get("resourceSpans", [])
        for scope in resource.get("scopeSpans", [])
        for span in scope.get("spans", [])
    ]


def test_otlp_http_trace_reaches_the_file_exporter(otel_collector: Collector) -> None:
    request = urllib.request.Request(
        f"{otel_collector.otlp_http_endpoint}/v1/traces",
        data=json.dumps(TRACE).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200

    documents = otel_collector.wait_for("traces", lambda docs: bool(_spans(docs)))
    [span] = _spans(documents)
    assert span["name"] == "chat gpt-4o-mini"
    assert span["traceId"] == "5b8efff798038103d269b633813fc60c"
    assert span["attributes"] == [{"key": "gen_ai.system", "value": {"stringValue": "openai"}}]
    assert otel_collector.read("metrics") == []


def test_malformed_otlp_is_refused(otel_collector: Collector) -> None:
    request = urllib.request.Request(
        f"{otel_collector.otlp_http_endpoint}/v1/traces",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    refused.value.close()
    assert refused.value.code == 400


LAUNCHER = """
import sys, time
from pathlib import Path
from aigw_e2e import Collector, Tools
collector = Collector(Tools(Path(sys.argv[1])), Path(sys.argv[2]))
collector.start()
assert collector.process is not None
print(collector.process.pid, flush=True)
time.sleep(600)
"""


def test_processes_die_with_a_killed_launcher(e2e_tools: Tools, tmp_path: Path) -> None:
    """A launcher killed before it can clean up (say, pytest on a timeout) leaks nothing."""
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(e2e_tools.root), str(tmp_path / "otelcol")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert launcher.stdout is not None
    pid = int(launcher.stdout.readline())
    assert pid_alive(pid)
    launcher.kill()
    launcher.wait()
    launcher.stdout.close()
    deadline = time.monotonic() + 30
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(pid)
