"""GenAI client metrics and the tenant families in /metrics, the tenant cap, the OTEL_*
settings parser, and that an untraced sidecar imports no OpenTelemetry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from aigw_cli.otel_env import tracing_from_env
from aigw_fakeprovider import FakeProvider
from aigw_sidecar import SidecarServer
from aigw_sidecar.settings import TelemetryConfig
from aigw_sidecar.telemetry import OTHER, GenAiMetrics

from .conftest import HELLO_BODY, bundle_bytes, sidecar_settings, standard_docs, write_secrets


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.mark.parametrize("semconv", ["latest", "dup"])
async def test_genai_and_tenant_metrics_of_a_call_and_a_stream(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider, semconv: str
) -> None:
    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(bundle_bytes(standard_docs(oai_fake, claude_fake)))
    settings = sidecar_settings(
        bundle,
        write_secrets(tmp_path),
        telemetry=TelemetryConfig(semconv=semconv),  # type: ignore[arg-type]
    )
    async with SidecarServer(settings) as server, aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{server.api_port}/v1/chat/completions"
        oai_fake.queue_fault(cached_tokens=2)
        async with session.post(url, json=HELLO_BODY) as response:
            assert response.status == 200
        async with session.post(url, json={**HELLO_BODY, "stream": True}) as response:
            assert response.status == 200
            await response.read()
        oai_fake.queue_fault(status=400)  # the provider refuses it: not retried
        async with session.post(url, json=HELLO_BODY) as response:
            assert response.status == 400
        async with session.get(f"http://127.0.0.1:{server.admin_port}/metrics") as response:
            text = await response.text()
    samples = _samples(text)
    genai = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "openai",
        "gen_ai_request_model": "gpt-4o-mini",
    }
    assert (
        _value(samples, "gen_ai_client_inference_duration_seconds_count", **genai, error_type="")
        == 2
    )
    assert (
        _value(samples, "gen_ai_client_inference_time_to_first_chunk_seconds_count", **genai) == 1
    )
    token = {**genai, "gen_ai_token_modality": "unknown"}
    assert _value(samples, "gen_ai_client_inference_usage_input_tokens_total", **token) == 2 * 3
    assert _value(samples, "gen_ai_client_inference_usage_output_tokens_total", **token) == 2 * 3
    assert (
        _value(samples, "gen_ai_client_inference_usage_cache_read_input_tokens_total", **token) == 2
    )
    assert _value(samples, "gen_ai_client_inference_operation_input_tokens_count", **genai) == 2
    tenant = {"tenant": "team-a", "use_case": "default"}
    assert _value(samples, "aigw_tenant_requests_total", **tenant, status_class="2xx") == 2
    assert _value(samples, "aigw_tenant_requests_total", **tenant, status_class="4xx") == 1
    assert _value(samples, "aigw_tenant_tokens_total", **tenant, kind="prompt") == 6
    assert _value(samples, "aigw_tenant_cost_usd_total", **tenant) > 0
    legacy = (
        "gen_ai_client_operation_duration_seconds_count",
        tuple(sorted({**genai, "error_type": ""}.items())),
    )
    assert (legacy in samples) is (semconv == "dup")
    # Bounded labels: never a request id, a user or a prompt.
    assert "hello" not in text
    assert "req_" not in text


def test_tenant_labels_stop_at_the_cap() -> None:
    metrics = GenAiMetrics(CollectorRegistry(), dup=False, tenant_cap=2)
    assert metrics.tenant("a", "x") == ("a", "x")
    assert metrics.tenant("b", "x") == ("b", "x")
    assert metrics.tenant("c", "x") == (OTHER, OTHER)
    assert metrics.tenant("a", "x") == ("a", "x")  # a pair seen before keeps its labels


def test_otel_variables_become_tracing_settings() -> None:
    assert tracing_from_env({}) is None
    assert tracing_from_env({"OTEL_SERVICE_NAME": "x"}) is None  # no endpoint: no tracing
    on = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}
    assert tracing_from_env({**on, "OTEL_SDK_DISABLED": "true"}) is None
    assert tracing_from_env({**on, "OTEL_TRACES_EXPORTER": "none"}) is None
    config = tracing_from_env(
        {
            **on,
            "OTEL_EXPORTER_OTLP_HEADERS": "api-key=s%3Dcret, x-tenant = a",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
            "OTEL_PROPAGATORS": "tracecontext,baggage",
            "OTEL_BSP_MAX_QUEUE_SIZE": "64",
        }
    )
    assert config is not None
    assert config.endpoint == "http://c:4318/v1/traces"  # the general endpoint is a base URL
    assert config.protocol == "http/protobuf"
    assert config.headers == (("api-key", "s=cret"), ("x-tenant", "a"))
    assert "s=cret" not in repr(config)  # export headers may hold keys: never shown
    assert (config.timeout_s, config.sampler, config.ratio) == (
        2.5,
        "parentbased_traceidratio",
        0.25,
    )
    assert (config.baggage, config.queue_size) == (True, 64)
    specific = tracing_from_env(
        {
            **on,
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:9/custom",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        }
    )
    assert specific is not None
    assert (specific.endpoint, specific.protocol) == ("http://t:9/custom", "grpc")
    for bad in (
        {"OTEL_TRACES_SAMPLER_ARG": "1.5", "OTEL_TRACES_SAMPLER": "traceidratio"},
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
        {"OTEL_PROPAGATORS": "b3"},
        {"OTEL_BSP_MAX_QUEUE_SIZE": "0"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "c:4318"},
    ):
        with pytest.raises(ValueError, match=r"\w"):
            tracing_from_env({**on, **bad})


def test_only_a_traced_sidecar_loads_the_tracer_and_none_loads_opentelemetry(
    tmp_path: Path,
) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from aigw_sidecar import SidecarSettings\n"
        "from aigw_sidecar.app import create_apps\n"
        "from aigw_sidecar.settings import TelemetryConfig, TracingConfig\n"
        "tracing = TracingConfig('http://127.0.0.1:1/v1/traces') if sys.argv[1] == 'on' else None\n"
        "create_apps(SidecarSettings(Path('b.json'), telemetry=TelemetryConfig(tracing)))\n"
        "print(sorted({m.split('.')[0] + '.' + m.split('.')[1] for m in sys.modules\n"
        "              if m.startswith(('opentelemetry.', 'grpc.'))}\n"
        "             | {m for m in sys.modules if m.startswith('aigw_sidecar.telemetry.')\n"
        "                and m.rsplit('.', 1)[1] in ('export', 'otlp', 'spans')}))\n"
    )
    off = subprocess.run(
        [sys.executable, "-c", code, "off"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert off.stdout.strip() == "[]"
    on = subprocess.run(
        [sys.executable, "-c", code, "on"], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    # The tracer and its OTLP encoder, and still no OpenTelemetry SDK nor gRPC (http/protobuf).
    assert on.stdout.strip() == str(
        [
            "aigw_sidecar.telemetry.export",
            "aigw_sidecar.telemetry.otlp",
            "aigw_sidecar.telemetry.spans",
        ]
    )
