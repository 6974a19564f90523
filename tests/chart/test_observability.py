"""The chart's Grafana dashboard and PrometheusRule: discoverable, parseable, and built only
on metrics the sidecar or the operator really exports.

Every expression is parsed with a real PromQL parser (``promql-parser``, the Rust parser of
the promql-parser crate); the metric names come from its syntax tree, not from a regex. The
exported names come from the registries of a sidecar built with every optional part on
(tracing, audit, the v1.41 GenAI names) and of the operator.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import CollectorRegistry

from aigw_operator.metrics import Metrics as OperatorMetrics
from aigw_sidecar import SidecarSettings
from aigw_sidecar.app import create_apps
from aigw_sidecar.app_keys import METRICS, TRACING
from aigw_sidecar.settings import AuditConfig, TelemetryConfig, TracingConfig

from .conftest import Render

ON = {
    "grafana": {"dashboard": {"enabled": True}},
    "metrics": {"prometheusRule": {"enabled": True}, "podMonitor": {"enabled": True}},
}
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$namespace": ".*"}


def _names(registry: CollectorRegistry) -> set[str]:
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "gauge": ("",),
        "summary": ("_count", "_sum"),
    }
    found: set[str] = set()
    for family in registry.collect():
        found.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return found


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    root = tmp_path_factory.mktemp("exported")
    settings = SidecarSettings(
        root / "bundle.json",
        audit=AuditConfig(file=root / "audit.jsonl"),
        telemetry=TelemetryConfig(TracingConfig("http://127.0.0.1:9/v1/traces"), semconv="dup"),
    )
    api, _ = create_apps(settings)
    try:
        names = _names(api[METRICS].registry)
    finally:
        api[TRACING].shutdown(0.1)
    return names | _names(OperatorMetrics().registry)


def _metrics_of(expr: str) -> set[str]:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    tree = promql_parser.parse(expr)  # raises ValueError on a bad expression
    found: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            found.add(node.name)

    promql_parser.walk(tree, visit)
    return found


def _docs(render: Render, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(render(values)) if d]


def _targets(dashboard: dict[str, Any]) -> Iterable[str]:
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield target["expr"]


def test_the_dashboard_is_a_configmap_the_grafana_sidecar_finds(render: Render) -> None:
    docs = _docs(render, ON)
    [config] = [
        d for d in docs if d["kind"] == "ConfigMap" and "dashboard" in d["metadata"]["name"]
    ]
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config["data"]["aigw-overview.json"])
    titles = {p["title"] for p in dashboard["panels"]}
    for wanted in (
        "Cost by tenant and use case (USD/s)",
        "Tokens by tenant and use case (tokens/s)",
        "Request latency percentiles",
        "Time to first token percentiles (streams)",
        "Cache hit rate",
        "Retries and fallbacks",
        "Circuit breaker state (0 closed, 1 half-open, 2 open)",
        "Limit and budget events",
        "Policy decisions and inspection findings",
        "Bundle revision per pod",
    ):
        assert wanted in titles
    assert not [d for d in _docs(render) if d["kind"] in ("PrometheusRule", "PodMonitor")]
    assert not [d for d in _docs(render) if "dashboard" in d["metadata"]["name"]]


def test_every_panel_uses_exported_metrics_only(render: Render, exported: set[str]) -> None:
    [config] = [d for d in _docs(render, ON) if "dashboard" in d["metadata"]["name"]]
    dashboard = json.loads(config["data"]["aigw-overview.json"])
    used: set[str] = set()
    for expr in _targets(dashboard):
        names = _metrics_of(expr)
        assert names, expr
        used |= names
    assert not used - exported, f"panels use metrics nobody exports: {sorted(used - exported)}"


def test_every_alert_parses_and_uses_exported_metrics_only(
    render: Render, exported: set[str]
) -> None:
    [rule] = [d for d in _docs(render, ON) if d["kind"] == "PrometheusRule"]
    rules = rule["spec"]["groups"][0]["rules"]
    alerts = {r["alert"] for r in rules}
    for wanted in (
        "AigwBudgetBurnRate",
        "AigwCircuitBreakerOpen",
        "AigwSidecarsOnStaleBundle",
        "AigwRedisFailOpen",
        "AigwAuditRecordsDropped",
    ):
        assert wanted in alerts
    for alert in rules:
        names = _metrics_of(alert["expr"])
        assert names <= exported, (alert["alert"], sorted(names - exported))


def test_a_broken_expression_is_caught() -> None:
    """The check can fail: a typo'd expression does not parse, an unknown name is reported."""
    with pytest.raises(ValueError, match="unclosed left parenthesis"):
        _metrics_of("sum(rate(aigw_requests_total[5m])")
    assert _metrics_of("rate(aigw_made_up_total[$__rate_interval])") == {"aigw_made_up_total"}


def test_pod_monitor_scrapes_the_injected_sidecars(render: Render) -> None:
    [monitor] = [d for d in _docs(render, ON) if d["kind"] == "PodMonitor"]
    assert monitor["spec"]["selector"]["matchLabels"] == {"aigw.dev/injected": "true"}
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "aigw-admin"
