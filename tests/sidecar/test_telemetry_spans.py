"""The lean tracer: W3C trace context, sampling, and the OTLP encoding decoded by protobuf.

The encoder is checked against OTLP's own message definitions (the generated protobuf
classes of ``opentelemetry-proto`` parse what it writes); the sampler against the
OpenTelemetry SDK's ratio sampler for the same trace ids; the W3C grammar with hostile
headers. The end-to-end tests (``test_telemetry_traces.py``, and gRPC below) send the bytes
to the real Collector.
"""

from __future__ import annotations

import random
from pathlib import Path

import aiohttp
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.sampling import Decision, TraceIdRatioBased

from aigw_e2e import Collector
from aigw_fakeprovider import FakeProvider
from aigw_sidecar.telemetry.baggage import passed_on
from aigw_sidecar.telemetry.otlp import Encoder
from aigw_sidecar.telemetry.spans import (
    Span,
    SpanKind,
    Tracer,
    parse_traceparent,
    parse_tracestate,
    sampler_of,
)

from .conftest import HELLO_BODY, bundle_bytes, standard_docs, write_secrets
from .tracing import CLIENT, SERVER, attributes, spans, traced_sidecar

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _ended() -> tuple[Tracer, list[Span]]:
    ended: list[Span] = []
    return Tracer(sampler_of("parentbased_always_on", 1.0), ended.append), ended


def test_the_encoding_is_otlp_as_protobuf_reads_it() -> None:
    tracer, ended = _ended()
    parent = parse_traceparent(CALLER, "vendor=x, other=y")
    server = tracer.start(
        "POST /v1/chat/completions",
        SpanKind.SERVER,
        parent,
        1_000,
        {"text": "é ü", "count": 3, "negative": -2, "ratio": 0.25, "flag": True, "list": ["a"]},
    )
    client = tracer.start("chat gpt-4o-mini", SpanKind.CLIENT, server.as_parent(), 1_100)
    client.attributes["big"] = 2**40
    client.error("upstream_unavailable")
    server.events.append(("gen_ai.guardrail.result", 1_500, {"value": "blocked"}))
    tracer.end(client, 1_200)
    tracer.end(server, 2_000)
    encoder = Encoder({"service.name": "svc"}, "aigw.sidecar", "0.1.0", "https://schema/x")
    for _ in range(2):  # the second time from the cache of encoded attributes
        request = ExportTraceServiceRequest.FromString(encoder.request(ended))
        [resource_spans] = request.resource_spans
        assert [(a.key, a.value.string_value) for a in resource_spans.resource.attributes] == [
            ("service.name", "svc")
        ]
        [scope_spans] = resource_spans.scope_spans
        assert (scope_spans.scope.name, scope_spans.scope.version) == ("aigw.sidecar", "0.1.0")
        assert scope_spans.schema_url == "https://schema/x"
        wire_client, wire_server = scope_spans.spans
        assert wire_server.trace_id.hex() == "4bf92f3577b34da6a3ce929d0e0e4736"
        assert wire_server.parent_span_id.hex() == "00f067aa0ba902b7"
        assert wire_server.trace_state == "vendor=x,other=y"
        assert (wire_server.kind, wire_server.name) == (2, "POST /v1/chat/completions")
        assert (wire_server.start_time_unix_nano, wire_server.end_time_unix_nano) == (1000, 2000)
        assert wire_server.flags == 0x300  # the parent is known to be remote
        values = {a.key: a.value for a in wire_server.attributes}
        assert values["text"].string_value == "é ü"
        assert (values["count"].int_value, values["negative"].int_value) == (3, -2)
        assert (values["ratio"].double_value, values["flag"].bool_value) == (0.25, True)
        assert [v.string_value for v in values["list"].array_value.values] == ["a"]
        [event] = wire_server.events
        assert (event.name, event.time_unix_nano) == ("gen_ai.guardrail.result", 1500)
        assert event.attributes[0].value.string_value == "blocked"
        assert not wire_server.HasField("status")
        assert wire_client.parent_span_id == wire_server.span_id
        assert wire_client.trace_id == wire_server.trace_id
        assert (wire_client.kind, wire_client.flags) == (3, 0x100)
        assert wire_client.attributes[0].value.int_value == 2**40
        assert (wire_client.status.code, wire_client.status.message) == (
            2,
            "upstream_unavailable",
        )


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero span id
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper-case hex
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # extra on 00
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # short
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\n",
    ],
)
def test_an_invalid_traceparent_starts_a_new_trace(header: str | None) -> None:
    assert parse_traceparent(header, "vendor=x") is None


def test_traceparent_versions_and_flags() -> None:
    joined = parse_traceparent(" " + CALLER + "\t", None)
    assert joined is not None
    assert (f"{joined.trace_id:032x}", f"{joined.span_id:016x}") == (
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00f067aa0ba902b7",
    )
    assert joined.sampled
    future = parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-x", None)
    assert future is not None
    assert not future.sampled


def test_tracestate_is_kept_only_when_every_member_is_well_formed() -> None:
    assert parse_tracestate("a=1,b@t=2 , c=x y") == "a=1,b@t=2,c=x y"
    for bad in (
        "a=1,Bad=2",
        "a",
        "a=1,a=2",
        "a=x=",
        "a=1," + ",".join(f"k{i}=v" for i in range(32)),
    ):
        assert parse_tracestate(bad) == ""


def test_new_traces_set_the_random_flag_and_children_inherit_the_decision() -> None:
    tracer, ended = _ended()
    root = tracer.start("root", SpanKind.SERVER, None, 1)
    assert root.traceparent().endswith("-03")
    assert root.trace_id
    assert root.span_id
    assert root.parent is None
    unsampled = parse_traceparent(CALLER[:-2] + "00", None)
    child = tracer.start("child", SpanKind.SERVER, unsampled, 1, {"never": "kept"})
    assert not child.recording
    assert child.attributes == {}
    assert child.traceparent().endswith("-00")
    grandchild = tracer.start("client", SpanKind.CLIENT, child.as_parent(), 2)
    assert not grandchild.recording
    tracer.end(grandchild, 3)
    tracer.end(child, 3)
    assert ended == []  # unsampled spans are never queued


def test_the_ratio_sampler_decides_as_the_sdk_does() -> None:
    rng = random.Random(7)
    for ratio in (0.0, 0.1, 0.5, 0.999, 1.0):
        ours = sampler_of("traceidratio", ratio)
        sdk = TraceIdRatioBased(ratio)
        for _ in range(2_000):
            trace_id = rng.getrandbits(128)
            expected = sdk.should_sample(None, trace_id, "x").decision is Decision.RECORD_AND_SAMPLE
            assert ours.sampled(trace_id, None) is expected
    parent = parse_traceparent(CALLER, None)
    assert sampler_of("parentbased_traceidratio", 0.0).sampled(1, parent)  # follows the parent
    assert not sampler_of("traceidratio", 0.0).sampled(1, parent)  # ignores it
    assert not sampler_of("parentbased_always_off", 1.0).sampled(1, None)


@pytest.mark.k8s  # the Collector is one of the Go-built tools
async def test_spans_reach_the_collector_over_grpc(
    tmp_path: Path, otel_collector: Collector, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(bundle_bytes(standard_docs(oai_fake, claude_fake)))
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{otel_collector.otlp_grpc_endpoint}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    async with (
        traced_sidecar(bundle, write_secrets(tmp_path), env) as sidecar,
        aiohttp.ClientSession() as session,
        session.post(
            f"{sidecar.url}/v1/chat/completions", json=HELLO_BODY, headers={"traceparent": CALLER}
        ) as response,
    ):
        assert response.status == 200
        request_id = response.headers["X-AIGW-Request-Id"]
    found = spans(otel_collector.wait_for("traces", lambda docs: len(spans(docs)) >= 2))
    [server] = [s for s in found if s["kind"] == SERVER]
    [client] = [s for s in found if s["kind"] == CLIENT]
    assert server["traceId"] == client["traceId"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert server["parentSpanId"] == "00f067aa0ba902b7"
    assert client["parentSpanId"] == server["spanId"]
    assert attributes(server)["aigw.request.id"] == request_id
    assert server["resource"]["telemetry.sdk.name"] == "aigw"


def test_baggage_is_passed_on_well_formed_or_not_at_all() -> None:
    assert passed_on("user.tier=gold, region=eu%20west") == "user.tier=gold,region=eu+west"
    assert passed_on("no-equals-sign") is None
    assert passed_on("") is None
    assert passed_on(None) is None
