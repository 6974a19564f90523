"""The injection rules and the exact pod the webhook produces (golden files)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from aigw_operator import SidecarSettings
from aigw_operator.inject import (
    API_KEY_ENV,
    API_KEY_PLACEHOLDER,
    decide,
    plan_injection,
    redaction_key_problems,
    redis_tls_problems,
)

Patcher = Callable[[Any, list[dict[str, Any]]], Any]
Golden = Callable[[str, Any], None]
SETTINGS = SidecarSettings(image="registry.example/aigw:0.1.0", version="0.1.0")


def pod(labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "app-", "namespace": "team-a", "labels": labels or {}},
        "spec": {
            "containers": [
                {"name": "app", "image": "app:1", "env": [{"name": "LOG_LEVEL", "value": "info"}]},
                {"name": "worker", "image": "worker:1"},
            ],
            **spec,
        },
    }


LABELLED = {"app": "support-assistant", "aigw.dev/inject": "true"}


@pytest.mark.parametrize(
    ("labels", "namespace_enabled", "spec", "expected"),
    [
        (LABELLED, False, {}, "pod-label"),
        ({"app": "x"}, True, {}, "namespace-label"),
        ({"app": "x"}, False, {}, "not-selected"),
        ({"aigw.dev/inject": "false"}, True, {}, "opted-out"),
        (LABELLED, False, {"hostNetwork": True}, "host-network"),
        (LABELLED, False, {"initContainers": [{"name": "aigw-sidecar"}]}, "already-injected"),
    ],
)
def test_decisions(
    labels: dict[str, str], namespace_enabled: bool, spec: dict[str, Any], expected: str
) -> None:
    decision = decide(pod(labels, **spec), namespace_enabled=namespace_enabled)
    assert decision.reason == expected
    assert decision.inject == (expected in ("pod-label", "namespace-label"))


@pytest.mark.parametrize("native", [True, False], ids=["native", "container"])
def test_injected_pod_matches_golden(native: bool, json_patch: Patcher, golden: Golden) -> None:
    original = pod(LABELLED)
    plan = plan_injection(
        original, SETTINGS, namespace_enabled=False, native=native, secrets=["provider-keys"]
    )
    injected = json_patch(original, plan.patch)
    golden(f"pod-{'native' if native else 'container'}", injected)
    # Only the sidecar sees the bundle and the Secrets; the apps see the base URLs.
    containers = injected["spec"]["containers"]
    apps = [c for c in containers if c["name"] != "aigw-sidecar"]
    assert all("volumeMounts" not in c for c in apps)
    assert all(
        {"OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"} <= {e["name"] for e in c["env"]} for c in apps
    )


def test_reinjection_is_a_no_op(json_patch: Patcher) -> None:
    original = pod(LABELLED)
    first = plan_injection(original, SETTINGS, namespace_enabled=True, native=True)
    injected = json_patch(original, first.patch)
    again = plan_injection(injected, SETTINGS, namespace_enabled=True, native=True)
    assert again.decision.reason == "already-injected"
    assert again.patch == []
    status = json.loads(injected["metadata"]["annotations"]["aigw.dev/injection-status"])
    assert status["version"] == "0.1.0"
    assert status["mode"] == "native"


def test_existing_arrays_are_appended_to_and_user_env_wins(json_patch: Patcher) -> None:
    original = pod(
        LABELLED,
        initContainers=[{"name": "migrate", "image": "m:1"}],
        volumes=[{"name": "data", "emptyDir": {}}],
    )
    original["metadata"]["annotations"] = {"team": "a"}
    original["spec"]["containers"][0]["env"].append({"name": "OPENAI_BASE_URL", "value": "x"})
    before = copy.deepcopy(original)
    plan = plan_injection(original, SETTINGS, namespace_enabled=False, native=True)
    injected = json_patch(original, plan.patch)
    assert original == before  # the input is never mutated
    assert [c["name"] for c in injected["spec"]["initContainers"]] == ["aigw-sidecar", "migrate"]
    assert injected["spec"]["volumes"][0]["name"] == "data"
    app_env = {e["name"]: e["value"] for e in injected["spec"]["containers"][0]["env"]}
    assert app_env["OPENAI_BASE_URL"] == "x"
    assert app_env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:15400"
    assert injected["metadata"]["annotations"]["team"] == "a"


def test_env_opt_out(json_patch: Patcher) -> None:
    original = pod(LABELLED)
    original["metadata"]["annotations"] = {"aigw.dev/inject-base-url-env": "false"}
    injected = json_patch(
        original, plan_injection(original, SETTINGS, namespace_enabled=False, native=True).patch
    )
    assert injected["spec"]["containers"][0]["env"] == [{"name": "LOG_LEVEL", "value": "info"}]
    assert "env" not in injected["spec"]["containers"][1]
    assert injected["spec"]["initContainers"][0]["name"] == "aigw-sidecar"


def test_long_secret_names_give_valid_volume_names(json_patch: Patcher) -> None:
    original = pod(LABELLED)
    secret = "s" * 253
    plan = plan_injection(
        original, SETTINGS, namespace_enabled=False, native=True, secrets=[secret]
    )
    volumes = json_patch(original, plan.patch)["spec"]["volumes"]
    assert all(len(v["name"]) <= 63 for v in volumes)
    assert any(v.get("secret", {}).get("secretName") == secret for v in volumes)


def test_sidecar_env_from_the_operator_settings(json_patch: Patcher) -> None:
    settings = SidecarSettings(env=(("AIGW_REDIS_URL", "redis://redis:6379/0"),))
    original = pod(LABELLED)
    plan = plan_injection(original, settings, namespace_enabled=False, native=True)
    sidecar = json_patch(original, plan.patch)["spec"]["initContainers"][0]
    assert {"name": "AIGW_REDIS_URL", "value": "redis://redis:6379/0"} in sidecar["env"]


@pytest.mark.parametrize(
    ("pod_grace", "drain", "grace"),
    [
        (None, 25, 30),  # the pod's default 30 s holds 25 s of drain plus the margin
        (60, 25, 60),  # a longer grace period is kept, the drain stays the setting's
        (20, 15, 20),  # a shorter one caps the drain
        (3, 1, 3),
        (0, 1, 0),
    ],
)
def test_drain_fits_the_grace_period(
    json_patch: Patcher, pod_grace: int | None, drain: int, grace: int
) -> None:
    """Main injected no drain and no grace period: 25 s of drain (50 s in aiohttp) could be
    killed at the pod's 30 s."""
    spec = {} if pod_grace is None else {"terminationGracePeriodSeconds": pod_grace}
    original = pod(LABELLED, **spec)
    injected = json_patch(
        original, plan_injection(original, SETTINGS, namespace_enabled=False, native=True).patch
    )
    args = injected["spec"]["initContainers"][0]["args"]
    assert f"--drain-timeout={drain}" in args
    assert injected["spec"]["terminationGracePeriodSeconds"] == grace
    assert "--status-from-network" not in args


def test_a_long_drain_setting_raises_the_default_grace_period(json_patch: Patcher) -> None:
    settings = SidecarSettings(drain_timeout_s=90, status_from_network=True)
    original = pod(LABELLED)
    injected = json_patch(
        original, plan_injection(original, settings, namespace_enabled=False, native=False).patch
    )
    sidecar = next(c for c in injected["spec"]["containers"] if c["name"] == "aigw-sidecar")
    assert "--drain-timeout=90" in sidecar["args"]
    assert "--status-from-network" in sidecar["args"]
    assert injected["spec"]["terminationGracePeriodSeconds"] == 95


def test_sdk_key_placeholders_make_unchanged_clients_construct(json_patch: Patcher) -> None:
    original = pod(LABELLED)
    original["spec"]["containers"][0]["env"].append({"name": "ANTHROPIC_API_KEY", "value": "own"})
    original["spec"]["containers"].append(
        {"name": "from-secret", "image": "x:1", "envFrom": [{"secretRef": {"name": "keys"}}]}
    )
    plan = plan_injection(original, SETTINGS, namespace_enabled=False, native=True)
    injected = json_patch(original, plan.patch)
    app, worker, from_secret = injected["spec"]["containers"]
    app_env = {e["name"]: e["value"] for e in app["env"]}
    # The container's own value wins; the others get the placeholder, never a real key.
    assert app_env["ANTHROPIC_API_KEY"] == "own"
    assert app_env["OPENAI_API_KEY"] == API_KEY_PLACEHOLDER
    assert app_env["AZURE_OPENAI_API_KEY"] == API_KEY_PLACEHOLDER
    assert {e["name"] for e in worker["env"]} >= set(API_KEY_ENV)
    # envFrom may bring a key we cannot see: only the base URLs are added there.
    assert {e["name"] for e in from_secret["env"]} == {"OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"}
    status = json.loads(injected["metadata"]["annotations"]["aigw.dev/injection-status"])
    assert status["apiKeyEnv"] == ["app", "worker"]
    assert status["adminPort"] == 15401
    assert all(
        e.get("value") != API_KEY_PLACEHOLDER for e in injected["spec"]["initContainers"][0]["env"]
    )


def test_injected_pods_are_labelled_and_mount_every_bundle_part(json_patch: Patcher) -> None:
    for labels in (LABELLED, None):
        original = pod(labels)
        if labels is None:
            del original["metadata"]["labels"]
        plan = plan_injection(original, SETTINGS, namespace_enabled=True, native=True)
        injected = json_patch(original, plan.patch)
        assert injected["metadata"]["labels"]["aigw.dev/injected"] == "true"
        [bundle] = [v for v in injected["spec"]["volumes"] if v["name"] == "aigw-bundle"]
        sources = [s["configMap"] for s in bundle["projected"]["sources"]]
        assert sources[0] == {"name": "aigw-bundle"}  # required: no bundle, no start
        assert sources[1:] == [
            {"name": f"aigw-bundle-part-{i}", "optional": True} for i in (1, 2, 3)
        ]


def test_the_sidecar_writes_audit_records_to_an_emptydir_of_its_own(json_patch: Patcher) -> None:
    original = pod(LABELLED)
    plan = plan_injection(original, SETTINGS, namespace_enabled=False, native=True)
    patched = json_patch(original, plan.patch)
    sidecar = patched["spec"]["initContainers"][0]
    assert "--audit-file=/var/log/aigw/audit.jsonl" in sidecar["args"]
    assert {"name": "aigw-audit", "mountPath": "/var/log/aigw"} in sidecar["volumeMounts"]
    assert {"name": "aigw-audit", "emptyDir": {"sizeLimit": "1Gi"}} in patched["spec"]["volumes"]
    for container in patched["spec"]["containers"]:  # the app's containers do not see it
        assert all(m["name"] != "aigw-audit" for m in container.get("volumeMounts", []))

    off = SidecarSettings(audit_size_limit=None)
    plan = plan_injection(original, off, namespace_enabled=False, native=True)
    patched = json_patch(original, plan.patch)
    assert not any(a.startswith("--audit") for a in patched["spec"]["initContainers"][0]["args"])
    assert all(v["name"] != "aigw-audit" for v in patched["spec"]["volumes"])


TLS_ENV = (
    ("AIGW_REDIS_URL", "rediss://redis.state.svc:6380/0"),
    ("AIGW_REDIS_TLS_CA_FILE", "/etc/aigw/redis-tls/ca.crt"),
    ("AIGW_REDIS_TLS_CERT_FILE", "/etc/aigw/redis-tls/tls.crt"),
    ("AIGW_REDIS_TLS_KEY_FILE", "/etc/aigw/redis-tls/tls.key"),
)


@pytest.mark.parametrize("native", [True, False], ids=["native", "container"])
def test_the_redis_tls_secret_is_mounted_into_the_sidecar_alone(
    native: bool, json_patch: Patcher
) -> None:
    settings = SidecarSettings(env=TLS_ENV, redis_tls_secret="aigw-redis-tls")
    original = pod(LABELLED)
    plan = plan_injection(
        original, settings, namespace_enabled=False, native=native, secrets=["provider-keys"]
    )
    injected = json_patch(original, plan.patch)
    spec = injected["spec"]
    everything = spec["containers"] + spec.get("initContainers", [])
    (sidecar,) = [c for c in everything if c["name"] == "aigw-sidecar"]
    secrets = [v for v in spec["volumes"] if "secret" in v]
    (volume,) = [v for v in secrets if v["secret"]["secretName"] == "aigw-redis-tls"]
    assert volume["secret"] == {"secretName": "aigw-redis-tls", "defaultMode": 0o444}
    (mount,) = [m for m in sidecar["volumeMounts"] if m["name"] == volume["name"]]
    assert mount == {"name": volume["name"], "mountPath": "/etc/aigw/redis-tls", "readOnly": True}
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    for name, path in TLS_ENV[1:]:
        assert env[name] == path
        assert path.startswith(mount["mountPath"] + "/")
    apps = [c for c in everything if c["name"] != "aigw-sidecar"]
    assert all("volumeMounts" not in c for c in apps)
    # Every Secret the sidecar reads is readable by its non-root user (no fsGroup is set).
    assert "fsGroup" not in json.dumps(injected)
    assert all(v["secret"]["defaultMode"] & 0o004 for v in secrets)


def test_without_a_redis_tls_secret_nothing_more_is_mounted() -> None:
    settings = SidecarSettings(env=TLS_ENV)
    plan = plan_injection(pod(LABELLED), settings, namespace_enabled=False, native=True)
    assert "redis-tls" not in json.dumps(plan.patch).replace("/etc/aigw/redis-tls", "")


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        (SidecarSettings(env=TLS_ENV, redis_tls_secret="aigw-redis-tls"), None),
        (SidecarSettings(env=TLS_ENV), None),  # files of the image, or mounted otherwise
        (
            SidecarSettings(
                env=(("AIGW_REDIS_TLS_CA_FILE", "/etc/ssl/ca.crt"),), redis_tls_secret="s"
            ),
            "is not in /etc/aigw/redis-tls/",
        ),
        (
            SidecarSettings(
                env=(("AIGW_REDIS_TLS_KEY_FILE", "/etc/aigw/redis-tls/../bundle/k"),),
                redis_tls_secret="s",
            ),
            "is not in /etc/aigw/redis-tls/",
        ),
        (SidecarSettings(redis_tls_secret="Bad_Name"), "not a DNS-1123 subdomain"),
        (SidecarSettings(redis_tls_secret="s", redis_tls_dir="certs"), "not absolute"),
        (SidecarSettings(redis_tls_secret="s", redis_tls_dir="/etc/aigw"), "overlaps"),
        (SidecarSettings(redis_tls_secret="s", redis_tls_dir="/tmp/x"), "overlaps"),
    ],
)
def test_redis_tls_settings_that_cannot_work_are_named(
    settings: SidecarSettings, problem: str | None
) -> None:
    problems = redis_tls_problems(settings)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1, problems
        assert problem in problems[0]


KEYED = SidecarSettings(redaction_key_secret="aigw-redaction-key", redaction_key_entry="hash-key")


@pytest.mark.parametrize("native", [True, False], ids=["native", "container"])
def test_the_redaction_key_secret_is_mounted_into_the_sidecar_alone(
    native: bool, json_patch: Patcher, golden: Golden
) -> None:
    """One entry of the Secret, under a fixed file name, read-only in the sidecar container
    only, not optional (the pod waits for it), and passed as --redaction-key-file."""
    original = pod(LABELLED, containers=[{"name": "app", "image": "app:1"}, {"name": "b"}])
    plan = plan_injection(
        original, KEYED, namespace_enabled=False, native=native, secrets=["provider-keys"]
    )
    injected = json_patch(original, plan.patch)
    golden(f"pod-redaction-key-{'native' if native else 'container'}", injected)
    spec = injected["spec"]
    everything = spec["containers"] + spec.get("initContainers", [])
    (sidecar,) = [c for c in everything if c["name"] == "aigw-sidecar"]
    (volume,) = [
        v for v in spec["volumes"] if v.get("secret", {}).get("secretName") == "aigw-redaction-key"
    ]
    assert volume["secret"] == {
        "secretName": "aigw-redaction-key",
        "items": [{"key": "hash-key", "path": "key"}],
        "defaultMode": 0o444,  # readable by the non-root sidecar: no fsGroup is set
    }
    (mount,) = [m for m in sidecar["volumeMounts"] if m["name"] == volume["name"]]
    assert mount == {
        "name": volume["name"],
        "mountPath": "/etc/aigw/redaction-key",
        "readOnly": True,
    }
    assert "--redaction-key-file=/etc/aigw/redaction-key/key" in sidecar["args"]
    apps = [c for c in everything if c["name"] != "aigw-sidecar"]
    assert all(volume["name"] not in json.dumps(c) for c in apps)
    assert "fsGroup" not in json.dumps(injected)


def test_without_a_redaction_key_secret_each_sidecar_draws_its_own() -> None:
    plan = plan_injection(pod(LABELLED), SidecarSettings(), namespace_enabled=False, native=True)
    assert "redaction" not in json.dumps(plan.patch)


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        (KEYED, None),
        (SidecarSettings(), None),
        (SidecarSettings(redaction_key_secret="Hash_Key"), "not a DNS-1123 subdomain"),
        (SidecarSettings(redaction_key_secret="k" * 254), "not a DNS-1123 subdomain"),
        (SidecarSettings(redaction_key_secret="k", redaction_key_entry="a/b"), "valid Secret key"),
        (SidecarSettings(redaction_key_secret="k", redaction_key_entry=".."), "valid Secret key"),
        (SidecarSettings(redaction_key_secret="k", redaction_key_entry=""), "valid Secret key"),
    ],
)
def test_redaction_key_settings_that_cannot_work_are_named(
    settings: SidecarSettings, problem: str | None
) -> None:
    problems = redaction_key_problems(settings)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1, problems
        assert problem in problems[0]


def test_the_redis_tls_directory_may_not_overlap_the_redaction_key() -> None:
    settings = SidecarSettings(redis_tls_secret="s", redis_tls_dir="/etc/aigw/redaction-key")
    assert any("overlaps" in p for p in redis_tls_problems(settings))
