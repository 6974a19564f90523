"""The lean loop metrics expose exactly what prometheus_client's own classes expose."""

from __future__ import annotations

import re
from types import ModuleType

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from aigw_sidecar import loopmetrics

_CREATED = re.compile(r"_created(\{[^}]*\})? \S+")


def _exposition(kind: ModuleType) -> str:
    registry = CollectorRegistry(auto_describe=True)
    requests = kind.Counter("aigw_x_requests", "Requests.", ["route", "status"], registry=registry)
    requests.labels("chat", "200").inc()
    requests.labels("chat", 200).inc(2)  # the same series as "200"
    requests.labels("embed", "429").inc(0)
    findings = kind.Counter("aigw_x_findings_total", "Findings.", ["kind"], registry=registry)
    findings.labels("secret").inc(1.5)
    kind.Counter("aigw_x_plain", "Unlabelled.", registry=registry).inc(3)
    latency = kind.Histogram(
        "aigw_x_seconds", "Latency.", ["route"], buckets=(0.001, 0.5, 1, 1e6), registry=registry
    )
    for value in (0.0005, 0.001, 0.2, 1, 3, 5e6):
        latency.labels("chat").observe(value)
    kind.Histogram("aigw_x_default", "Default buckets.", registry=registry).observe(0.3)
    in_flight = kind.Gauge("aigw_x_in_flight", "In flight.", registry=registry)
    in_flight.inc()
    in_flight.inc()
    in_flight.dec()
    kind.Gauge("aigw_x_ratio", "Ratio.", ["budget"], registry=registry).labels("day").set(0.25)
    kind.Gauge("aigw_x_queue", "From a function.", registry=registry).set_function(lambda: 7)
    return _CREATED.sub(r"_created\1 T", generate_latest(registry).decode())


def test_the_exposition_is_prometheus_clients_own() -> None:
    assert _exposition(loopmetrics) == _exposition(prometheus_client)


def test_names_and_labels_are_checked_like_prometheus_client() -> None:
    registry = CollectorRegistry(auto_describe=True)
    counter = loopmetrics.Counter("aigw_y", "Y.", ["a", "b"], registry=registry)
    with pytest.raises(ValueError, match="labels"):
        counter.labels("only-one")
    with pytest.raises(ValueError, match="non-negative"):
        counter.labels("a", "b").inc(-1)
    with pytest.raises(ValueError, match="Duplicated"):
        loopmetrics.Counter("aigw_y", "Again.", registry=registry)
    with pytest.raises(ValueError, match="increasing"):
        loopmetrics.Histogram("aigw_z", "Z.", buckets=(2, 1), registry=registry)
