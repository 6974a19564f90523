"""The values reach the operator: the Deployment's arguments are parsed by ``aigw operator``'s own
argument parser and turned into its settings, so a flag the operator does not know, or a value
that lands in the wrong setting, fails here and not in a cluster."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from aigw_cli import operator_cmd, sidecar_cmd
from aigw_cli.otel_env import tracing_from_env
from aigw_operator.inject import plan_injection, redis_tls_problems, sidecar_container
from aigw_operator.settings import OperatorSettings

Render = Callable[..., str]
CHART = Path(__file__).resolve().parents[2] / "charts" / "aigw"
Doc = dict[str, Any]


def _container(text: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(text) if d]
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert len(deployments) == 1
    container: dict[str, Any] = deployments[0]["spec"]["template"]["spec"]["containers"][0]
    return container


def _settings(args: Sequence[str]) -> OperatorSettings:
    assert args[0] == "operator"
    parser = argparse.ArgumentParser(prog="aigw operator")
    operator_cmd.add_arguments(parser)
    parsed, unknown = parser.parse_known_args(list(args[1:]))
    assert unknown == [], f"flags aigw operator does not know: {unknown}"
    return operator_cmd.settings_from_args(parsed)


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def test_defaults_become_the_operators_settings(render: Render) -> None:
    container = _container(render())
    settings = _settings(container["args"])
    assert settings.namespaces == ()
    assert settings.peering.name == "aigw-operator"
    assert settings.bundles.keep_revisions == 5
    assert settings.health_port == 8080
    assert settings.webhook.port == 9443
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert settings.webhook.cert_dir == Path(mounts["webhook-tls"])
    assert settings.webhook.configuration_name is None  # the chart supplies the caBundle
    sidecar = settings.sidecar
    assert sidecar.image == "ghcr.io/aigw/aigw:0.1.0"
    assert sidecar.version == "0.1.0"
    assert (sidecar.port, sidecar.admin_port) == (15400, 15401)
    assert sidecar.native == "auto"
    resources = sidecar.resources
    assert (resources.cpu_request, resources.memory_request) == ("50m", "64Mi")
    assert (resources.cpu_limit, resources.memory_limit) == ("1", "256Mi")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"webhook": settings.webhook.port, "health": settings.health_port}
    # Probes reach the health server.
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}


def test_every_value_reaches_its_setting(render: Render) -> None:
    values = {
        "watchNamespaces": ["team-a", "team-b"],
        "operator": {"peeringName": "gw", "keepRevisions": 9, "healthPort": 8081},
        "webhook": {"port": 10443, "patchCABundle": True, "configurationName": "inj"},
        "image": {"tag": "2.0.0"},
        "sidecar": {
            "ports": {"api": 16000, "admin": 16001},
            "native": "never",
            "resources": {
                "requests": {"cpu": "10m", "memory": "32Mi"},
                "limits": {"cpu": "2", "memory": "1Gi"},
            },
        },
    }
    settings = _settings(_container(render(values))["args"])
    assert settings.namespaces == ("team-a", "team-b")
    assert settings.peering.name == "gw"
    assert settings.bundles.keep_revisions == 9
    assert settings.health_port == 8081
    assert settings.webhook.port == 10443
    assert settings.webhook.configuration_name == "inj"
    assert settings.sidecar.image == "ghcr.io/aigw/aigw:2.0.0"
    assert settings.sidecar.version == "2.0.0"
    assert (settings.sidecar.port, settings.sidecar.admin_port) == (16000, 16001)
    assert settings.sidecar.native == "never"
    resources = settings.sidecar.resources
    assert (resources.cpu_request, resources.memory_request) == ("10m", "32Mi")
    assert (resources.cpu_limit, resources.memory_limit) == ("2", "1Gi")


@pytest.mark.parametrize(
    ("values", "operator_image", "sidecar_image"),
    [
        ({}, "ghcr.io/aigw/aigw:0.1.0", "ghcr.io/aigw/aigw:0.1.0"),
        (
            {"image": {"repository": "reg.example/aigw", "digest": "sha256:" + "a" * 64}},
            "reg.example/aigw@sha256:" + "a" * 64,
            "reg.example/aigw@sha256:" + "a" * 64,
        ),
        (
            {"sidecar": {"image": {"repository": "reg.example/aigw-sidecar", "tag": "9"}}},
            "ghcr.io/aigw/aigw:0.1.0",
            "reg.example/aigw-sidecar:9",
        ),
    ],
)
def test_images(
    render: Render, values: dict[str, Any], operator_image: str, sidecar_image: str
) -> None:
    container = _container(render(values))
    assert container["image"] == operator_image
    assert _settings(container["args"]).sidecar.image == sidecar_image


def test_sidecar_settings_without_a_flag_travel_as_environment(render: Render) -> None:
    """Redis and OpenTelemetry: AIGW_SIDECAR_* on the operator, only when enabled."""
    plain = _env(_container(render()))
    assert not [n for n in plain if n.startswith("AIGW_SIDECAR_")]
    env = _env(
        _container(
            render(
                {
                    "redis": {"enabled": True, "url": "rediss://r.state.svc:6380/1"},
                    "opentelemetry": {
                        "enabled": True,
                        "endpoint": "http://otel.obs.svc:4318",
                        "protocol": "http/protobuf",
                        "samplingRatio": 0.25,
                    },
                }
            )
        )
    )
    assert {k: v for k, v in env.items() if k.startswith("AIGW_SIDECAR_")} == {
        "AIGW_SIDECAR_REDIS_URL": "rediss://r.state.svc:6380/1",
        "AIGW_SIDECAR_OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel.obs.svc:4318",
        "AIGW_SIDECAR_OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "AIGW_SIDECAR_OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "AIGW_SIDECAR_OTEL_TRACES_SAMPLER_ARG": "0.25",
        "AIGW_SIDECAR_OTEL_SERVICE_NAME": "aigw-sidecar",
    }


def test_the_peering_priority_comes_from_the_pod_name(render: Render) -> None:
    container = _container(render())
    fields = {
        e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"]
        for e in container["env"]
        if "valueFrom" in e
    }
    assert fields == {"AIGW_POD_NAME": "metadata.name"}
    assert not any(a.startswith("--priority") for a in container["args"])


def test_redis_and_otlp_values_reach_the_injected_sidecar(
    render: Render, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chart values -> the operator's environment -> its settings -> the injected container."""
    container = _container(
        render(
            {
                "redis": {"enabled": True, "url": "redis://r.state.svc:6379/0"},
                "opentelemetry": {
                    "enabled": True,
                    "endpoint": "http://otel.obs.svc:4317",
                    "protocol": "grpc",
                    "resourceAttributes": {"deployment.environment.name": "prod a"},
                },
                "metrics": {"genaiSemconv": "dup"},
            }
        )
    )
    for name, value in _env(container).items():
        monkeypatch.setenv(name, value)
    settings = _settings(container["args"])
    sidecar = sidecar_container(settings.sidecar, [], native=True)
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    assert env["AIGW_REDIS_URL"] == "redis://r.state.svc:6379/0"  # what aigw sidecar reads
    assert env["AIGW_GENAI_SEMCONV"] == "dup"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel.obs.svc:4317"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"
    assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    # The pod's identity from the downward API first (the kubelet expands $(VAR) of the
    # variables above it), then the chart's own attributes, percent-encoded.
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == (
        "k8s.namespace.name=$(AIGW_POD_NAMESPACE),k8s.pod.name=$(AIGW_POD_NAME),"
        "k8s.service_account.name=$(AIGW_SERVICE_ACCOUNT),k8s.container.name=aigw-sidecar,"
        "deployment.environment.name=prod%20a"
    )
    names = [e["name"] for e in sidecar["env"]]
    assert names.index("OTEL_RESOURCE_ATTRIBUTES") > names.index("AIGW_SERVICE_ACCOUNT")
    # ... and aigw sidecar turns them into its tracing settings.
    expanded = {
        **env,
        "OTEL_RESOURCE_ATTRIBUTES": env["OTEL_RESOURCE_ATTRIBUTES"]
        .replace("$(AIGW_POD_NAMESPACE)", "team-a")
        .replace("$(AIGW_POD_NAME)", "p-1")
        .replace("$(AIGW_SERVICE_ACCOUNT)", "sa"),
    }
    tracing = tracing_from_env({k: v for k, v in expanded.items() if v is not None})
    assert tracing is not None
    assert (tracing.endpoint, tracing.protocol) == ("http://otel.obs.svc:4317", "grpc")
    assert (tracing.sampler, tracing.ratio) == ("parentbased_traceidratio", 1.0)
    assert dict(tracing.resource_attributes) == {
        "k8s.namespace.name": "team-a",
        "k8s.pod.name": "p-1",
        "k8s.service_account.name": "sa",
        "k8s.container.name": "aigw-sidecar",
        "deployment.environment.name": "prod a",
    }


def test_every_setting_the_chart_hands_the_sidecar_is_read_by_it(
    render: Render, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chart values that reach the injected sidecar and are never read are settings without
    an effect: each variable it gets is one `aigw sidecar` reads."""
    everything = {
        "redis": {"enabled": True, "url": "redis://r.state.svc:6379/0"},
        "opentelemetry": {
            "enabled": True,
            "endpoint": "http://otel.obs.svc:4317",
            "resourceAttributes": {"team": "a"},
            "propagateBaggage": True,
        },
        "metrics": {"genaiSemconv": "dup"},
        "sidecar": {"drainTimeoutSeconds": 40, "statusFromNetwork": True},
    }
    container = _container(render(everything))
    for name, value in _env(container).items():
        monkeypatch.setenv(name, value)
    settings = _settings(container["args"])
    sidecar = sidecar_container(settings.sidecar, [], native=True)
    names = {e["name"] for e in sidecar["env"]}
    unread = names - sidecar_cmd.ENVIRONMENT
    assert not unread, f"the injected sidecar gets, and never reads: {sorted(unread)}"
    assert {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_PROPAGATORS", "AIGW_GENAI_SEMCONV"} <= names


def test_drain_and_status_values_reach_the_injected_sidecar(render: Render) -> None:
    """sidecar.drainTimeoutSeconds and statusFromNetwork -> operator flags -> injected args."""
    default = _settings(_container(render())["args"]).sidecar
    assert (default.drain_timeout_s, default.status_from_network) == (25, False)
    values = {"sidecar": {"drainTimeoutSeconds": 40, "statusFromNetwork": True}}
    settings = _settings(_container(render(values))["args"]).sidecar
    assert (settings.drain_timeout_s, settings.status_from_network) == (40, True)
    args = sidecar_container(settings, [], native=True)["args"]
    assert "--drain-timeout=40" in args
    assert "--status-from-network" in args


REDIS_TLS: dict[str, Any] = {
    "enabled": True,
    "url": "rediss+cluster://r.state.svc:6380",
    "tls": {
        "secretName": "aigw-redis-tls",
        "caFile": "/etc/aigw/redis-tls/ca.crt",
        "certFile": "/etc/aigw/redis-tls/tls.crt",
        "keyFile": "/etc/aigw/redis-tls/tls.key",
        "serverName": "redis.state.svc",
    },
}


@pytest.mark.parametrize("mount_path", [None, "/var/run/redis-certs/"])
def test_the_redis_tls_secret_is_mounted_where_the_paths_point(
    render: Render, monkeypatch: pytest.MonkeyPatch, mount_path: str | None
) -> None:
    """redis.tls.secretName -> operator flags -> a read-only Secret volume in the sidecar
    container alone, at the directory the AIGW_REDIS_TLS_*_FILE paths point into."""
    redis: dict[str, Any] = {**REDIS_TLS, "tls": dict(REDIS_TLS["tls"])}
    directory = "/etc/aigw/redis-tls"
    if mount_path is not None:
        directory = mount_path.rstrip("/")
        redis["tls"]["mountPath"] = mount_path
        for field in ("caFile", "certFile", "keyFile"):
            redis["tls"][field] = redis["tls"][field].replace("/etc/aigw/redis-tls", directory)
    container = _container(render({"redis": redis}))
    for name, value in _env(container).items():
        monkeypatch.setenv(name, value)
    settings = _settings(container["args"]).sidecar
    assert (settings.redis_tls_secret, settings.redis_tls_dir) == ("aigw-redis-tls", directory)
    assert redis_tls_problems(settings) == []
    pod = {
        "metadata": {"labels": {"aigw.dev/inject": "true"}},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]},
    }
    patch = plan_injection(pod, settings, namespace_enabled=False, native=True).patch
    (sidecar,) = next(op["value"] for op in patch if op["path"] == "/spec/initContainers")
    (volumes,) = [op["value"] for op in patch if op["path"] == "/spec/volumes"]
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    mounts = {m["name"]: m for m in sidecar["volumeMounts"]}
    volume = next(v for v in volumes if v.get("secret", {}).get("secretName") == "aigw-redis-tls")
    mount = mounts[volume["name"]]
    assert (mount["mountPath"], mount["readOnly"]) == (directory, True)
    assert volume["secret"].get("optional") is not True  # a missing Secret is seen at once
    # Readable by the sidecar's non-root user: the injector sets no fsGroup.
    assert volume["secret"]["defaultMode"] & 0o004
    for name in ("AIGW_REDIS_TLS_CA_FILE", "AIGW_REDIS_TLS_CERT_FILE", "AIGW_REDIS_TLS_KEY_FILE"):
        assert env[name].rsplit("/", 1)[0] == directory, name
    assert env["AIGW_REDIS_TLS_SERVER_NAME"] == "redis.state.svc"
    assert env["AIGW_REDIS_URL"] == "rediss+cluster://r.state.svc:6380"
    assert {n for n in env if n.startswith("AIGW_REDIS")} <= sidecar_cmd.ENVIRONMENT


def test_without_a_redis_tls_secret_nothing_is_mounted(render: Render) -> None:
    redis = {**REDIS_TLS, "tls": {"caFile": "/etc/ssl/certs/ca-certificates.crt"}}
    container = _container(render({"redis": redis}))
    assert not [a for a in container["args"] if "redis-tls" in a]
    settings = _settings(container["args"]).sidecar
    mounts = sidecar_container(settings, [], native=True)["volumeMounts"]
    assert not [m for m in mounts if "redis" in m["name"]]


@pytest.mark.parametrize(
    "tls",
    [
        {"secretName": "aigw-redis-tls", "caFile": "/etc/ssl/ca.crt"},
        {"secretName": "aigw-redis-tls", "keyFile": "/etc/aigw/redis-tls/sub/tls.key"},
        {"secretName": "tls", "mountPath": "/certs", "certFile": "/etc/aigw/redis-tls/c"},
    ],
)
def test_a_redis_tls_file_outside_the_mounted_secret_fails_the_render(
    helm: Callable[..., Any], tls: dict[str, str]
) -> None:
    values = {"redis": {"enabled": True, "url": "rediss://r:6380", "tls": tls}}
    result = helm("template", "aigw", str(CHART), values=values, check=False)
    assert result.returncode != 0
    assert "must be a file in redis.tls.mountPath" in result.stderr


@pytest.mark.parametrize("entry", [None, "hash-key"])
def test_the_redaction_key_secret_reaches_every_injected_sidecar(
    render: Render, entry: str | None
) -> None:
    """sidecar.redactionKey -> operator flags -> the Secret's entry mounted into the sidecar
    container alone, passed as --redaction-key-file (a flag aigw sidecar reads)."""
    key: dict[str, Any] = {"secretName": "aigw-redaction-key"}
    if entry is not None:
        key["secretKey"] = entry
    container = _container(render({"sidecar": {"redactionKey": key}}))
    settings = _settings(container["args"]).sidecar
    assert settings.redaction_key_secret == "aigw-redaction-key"
    assert settings.redaction_key_entry == (entry or "key")
    pod = {
        "metadata": {"labels": {"aigw.dev/inject": "true"}},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]},
    }
    patch = plan_injection(pod, settings, namespace_enabled=False, native=True).patch
    (sidecar,) = next(op["value"] for op in patch if op["path"] == "/spec/initContainers")
    (volumes,) = [op["value"] for op in patch if op["path"] == "/spec/volumes"]
    volume = next(
        v for v in volumes if v.get("secret", {}).get("secretName") == "aigw-redaction-key"
    )
    assert volume["secret"]["items"] == [{"key": entry or "key", "path": "key"}]
    (flag,) = [a for a in sidecar["args"] if a.startswith("--redaction-key-file=")]
    parser = argparse.ArgumentParser(prog="aigw sidecar")
    sidecar_cmd.add_arguments(parser)
    parsed = parser.parse_args(sidecar["args"])
    mount = next(m for m in sidecar["volumeMounts"] if m["name"] == volume["name"])
    assert str(parsed.redaction_key_file) == f"{mount['mountPath']}/key" == flag.split("=", 1)[1]


def test_without_a_redaction_key_secret_no_flag_is_passed(render: Render) -> None:
    container = _container(render())
    assert not [a for a in container["args"] if "redaction" in a]
    assert _settings(container["args"]).sidecar.redaction_key_secret is None
