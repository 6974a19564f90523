"""Sidecar injection as a pure function: a Pod (as admitted) + settings -> a JSONPatch.

The webhook server only parses the AdmissionReview, looks up the namespace's provider
Secrets, and calls :func:`plan_injection`; everything about *what* a pod gets lives here and
is tested against golden files without a cluster. The rules:

* inject when the pod is labelled ``aigw.dev/inject: "true"``, or its namespace is labelled
  ``aigw.dev/injection: enabled`` (the webhook configuration tells the server which); never
  when the pod says ``aigw.dev/inject: "false"``, uses hostNetwork, or was injected already
  (the status annotation, or a container called ``aigw-sidecar``): re-admission is a no-op;
* the sidecar is a native sidecar (an init container with ``restartPolicy: Always``, first,
  so other init containers can use it) where the cluster supports it, else a container;
* only the sidecar mounts the bundle ConfigMap and the provider Secrets;
* app containers get ``OPENAI_BASE_URL``/``ANTHROPIC_BASE_URL`` pointing at the sidecar,
  unless the pod opts out or the container sets them itself; and, so that ``OpenAI()`` and
  ``Anthropic()`` construct with no code change, the SDKs' API-key variables set to a
  placeholder when the container has none (not in ``env``, and no ``envFrom`` that might
  bring one): the sidecar holds the real keys and never forwards what the app sends;
* the bundle volume is projected: the pointer ConfigMap (envelope and part 0) and, optional,
  the ConfigMaps of parts 1..3 of a sharded format-2 bundle, in one directory that the
  kubelet swaps atomically;
* the pod is labelled ``aigw.dev/injected: "true"`` (the operator's rollout poller lists
  injected pods by it) and the status annotation names the admin port it polls;
* a ``rediss`` Redis's PEM files (CA, client certificate and key) come from the Secret
  ``redis_tls_secret`` of the pod's namespace, mounted read-only at ``redis_tls_dir`` in the
  sidecar container only; the ``AIGW_REDIS_TLS_*_FILE`` paths the operator passes on must lie
  in that directory (:func:`redis_tls_problems`, checked when the operator starts). It is not
  optional: a namespace without the Secret gets pods that wait for it (a ``FailedMount``
  event names it) rather than sidecars that cannot reach Redis;
* the key of redaction mode ``hash`` comes from the Secret ``redaction_key_secret`` of the
  pod's namespace (its entry ``redaction_key_entry``), mounted read-only in the sidecar
  container only and passed as ``--redaction-key-file``: every pod given the same Secret
  hashes a value to the same token. Not optional either: a pod waits for the Secret (and for
  that entry) rather than start a sidecar whose tokens would silently match nobody else's
  (:func:`redaction_key_problems` checks the names when the operator starts);
* Secret files are mode 0444: the injector sets no ``fsGroup`` (a pod-wide setting), so the
  kubelet writes them as root, and the sidecar runs as a non-root user; only the sidecar
  container mounts them;
* the sidecar writes its audit records to ``/var/log/aigw/audit.jsonl`` on an ``emptyDir``
  of its own (on disk, ``audit_size_limit``), where a log agent (a DaemonSet tailing the
  pod's volumes, or a sidecar of the platform's) ships them; ``audit_size_limit=None``
  turns that off;
* the sidecar's drain fits the pod's grace period: ``--drain-timeout`` is the operator's
  drain setting or ``terminationGracePeriodSeconds - DRAIN_MARGIN_S`` if that is shorter, and
  a pod without a grace period gets ``max(30, drain + DRAIN_MARGIN_S)`` (the margin covers
  closing connections and settling reservations after the drain).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aigw_contract.codec import MAX_PARTS

from . import names
from .settings import SidecarSettings

__all__ = [
    "API_KEY_ENV",
    "API_KEY_PLACEHOLDER",
    "DRAIN_MARGIN_S",
    "Decision",
    "InjectionPlan",
    "decide",
    "drain_and_grace",
    "plan_injection",
    "redaction_key_problems",
    "redis_tls_problems",
    "sidecar_container",
]

JsonPatch = list[dict[str, Any]]
_BUNDLE_VOLUME = "aigw-bundle"
_PODINFO_VOLUME = "aigw-podinfo"
_TMP_VOLUME = "aigw-tmp"
_AUDIT_VOLUME = "aigw-audit"
_REDIS_TLS_VOLUME = "aigw-redis-tls"
_REDACTION_KEY_VOLUME = "aigw-redaction-key"
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_REDIS_TLS_ENV = ("AIGW_REDIS_TLS_CA_FILE", "AIGW_REDIS_TLS_CERT_FILE", "AIGW_REDIS_TLS_KEY_FILE")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_OWN_MOUNTS = (
    names.BUNDLE_MOUNT,
    names.PODINFO_MOUNT,
    names.SECRETS_DIR,
    names.AUDIT_DIR,
    names.REDACTION_KEY_MOUNT,
    "/tmp",  # noqa: S108
)
_SECRET_MODE = 0o444
"""Read for everyone in the sidecar container: the files are root's (no fsGroup is set)."""
DRAIN_MARGIN_S = 5
"""Seconds of a pod's grace period kept beyond the sidecar's drain."""
_DEFAULT_GRACE_S = 30
"""Kubernetes' terminationGracePeriodSeconds when a pod sets none."""


def drain_and_grace(settings: SidecarSettings, pod_grace: object) -> tuple[int, int | None]:
    """The sidecar's drain seconds for a pod, and the grace period to inject (None: keep the
    pod's own)."""
    if isinstance(pod_grace, int) and not isinstance(pod_grace, bool) and pod_grace >= 0:
        return max(1, min(settings.drain_timeout_s, pod_grace - DRAIN_MARGIN_S)), None
    drain = max(1, settings.drain_timeout_s)
    return drain, max(_DEFAULT_GRACE_S, drain + DRAIN_MARGIN_S)


API_KEY_PLACEHOLDER = "aigw-placeholder-the-sidecar-holds-the-key"
"""What the app's SDK sends as its key: never a credential, ignored by the sidecar."""
API_KEY_ENV = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AZURE_OPENAI_API_KEY")


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether to inject, and why (logged and counted by the webhook)."""

    inject: bool
    reason: str


@dataclass(frozen=True, slots=True)
class InjectionPlan:
    """The outcome for one pod: the decision and the patch (empty when not injecting)."""

    decision: Decision
    patch: JsonPatch


def _labels(pod: Mapping[str, Any]) -> Mapping[str, str]:
    return pod.get("metadata", {}).get("labels") or {}


def _annotations(pod: Mapping[str, Any]) -> Mapping[str, str]:
    return pod.get("metadata", {}).get("annotations") or {}


def decide(pod: Mapping[str, Any], *, namespace_enabled: bool) -> Decision:
    """Apply the injection rules to a pod."""
    label = _labels(pod).get(names.LABEL_INJECT)
    spec = pod.get("spec", {})
    if label == "false":
        return Decision(False, "opted-out")
    if label != "true" and not namespace_enabled:
        return Decision(False, "not-selected")
    if spec.get("hostNetwork"):
        return Decision(False, "host-network")
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    if names.ANNOTATION_INJECTION_STATUS in _annotations(pod) or any(
        c.get("name") == names.SIDECAR_NAME for c in containers
    ):
        return Decision(False, "already-injected")
    return Decision(True, "pod-label" if label == "true" else "namespace-label")


def redis_tls_problems(settings: SidecarSettings) -> list[str]:
    """Why the Redis TLS Secret cannot work in an injected pod (empty: it can): a PEM path
    passed on outside the directory it is mounted at, a Secret name the apiserver would
    refuse, a directory that is relative or overlaps the sidecar's own mounts."""
    secret = settings.redis_tls_secret
    if secret is None:
        return []  # the paths name files of the image, or of a volume mounted otherwise
    paths = [(name, value) for name, value in settings.env if name in _REDIS_TLS_ENV and value]
    problems = []
    if len(secret) > 253 or not _DNS_SUBDOMAIN.fullmatch(secret):
        problems.append(f"Redis TLS Secret name {secret!r} is not a DNS-1123 subdomain")
    directory = posixpath.normpath(settings.redis_tls_dir)
    if not directory.startswith("/") or directory == "/":
        problems.append(f"Redis TLS directory {settings.redis_tls_dir!r} is not absolute")
    if any(_nested(directory, other) for other in _OWN_MOUNTS):
        problems.append(f"Redis TLS directory {directory} overlaps a mount of the sidecar's own")
    problems += [
        f"{name}={value} is not in {directory}/, where the Redis TLS Secret is mounted"
        for name, value in paths
        if posixpath.dirname(posixpath.normpath(value)) != directory
    ]
    return problems


def redaction_key_problems(settings: SidecarSettings) -> list[str]:
    """Why the redaction key Secret cannot be mounted (empty: it can): a Secret name or an
    entry name the apiserver would refuse."""
    secret, key = settings.redaction_key_secret, settings.redaction_key_entry
    if secret is None:
        return []
    problems = []
    if len(secret) > 253 or not _DNS_SUBDOMAIN.fullmatch(secret):
        problems.append(f"redaction key Secret name {secret!r} is not a DNS-1123 subdomain")
    if len(key) > 253 or not _SECRET_KEY.fullmatch(key) or key in (".", ".."):
        problems.append(f"redaction key entry {key!r} is not a valid Secret key")
    return problems


def _nested(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _secret_volume(secret: str) -> str:
    # Volume names are DNS-1123 labels of at most 63 characters; Secret names may be longer.
    return f"aigw-secret-{secret}"[:63].rstrip("-")


def sidecar_container(
    settings: SidecarSettings,
    secrets: Sequence[str],
    *,
    native: bool,
    drain_s: int | None = None,
) -> dict[str, Any]:
    """The sidecar container (or native sidecar init container); ``drain_s`` defaults to the
    operator's drain setting (see :func:`drain_and_grace` for a pod's own)."""
    if drain_s is None:
        drain_s = settings.drain_timeout_s
    res = settings.resources

    def field_env(name: str, path: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}

    def probe(path: str, failure_threshold: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": settings.admin_port},
            "periodSeconds": 2 if path.endswith("ready") else 10,
            "timeoutSeconds": 1,
            "failureThreshold": failure_threshold,
        }

    mounts: list[dict[str, Any]] = [
        {"name": _BUNDLE_VOLUME, "mountPath": names.BUNDLE_MOUNT, "readOnly": True},
        {"name": _PODINFO_VOLUME, "mountPath": names.PODINFO_MOUNT, "readOnly": True},
        {"name": _TMP_VOLUME, "mountPath": "/tmp"},  # noqa: S108 - an emptyDir of its own
    ]
    mounts += [
        {
            "name": _secret_volume(secret),
            "mountPath": f"{names.SECRETS_DIR}/{secret}",
            "readOnly": True,
        }
        for secret in secrets
    ]
    if settings.redis_tls_secret is not None:
        mounts.append(
            {"name": _REDIS_TLS_VOLUME, "mountPath": settings.redis_tls_dir, "readOnly": True}
        )
    key = settings.redaction_key_secret is not None
    if key:
        mount = {"name": _REDACTION_KEY_VOLUME, "mountPath": names.REDACTION_KEY_MOUNT}
        mounts.append({**mount, "readOnly": True})
    audit = settings.audit_size_limit is not None
    if audit:
        mounts.append({"name": _AUDIT_VOLUME, "mountPath": names.AUDIT_DIR})
    container: dict[str, Any] = {
        "name": names.SIDECAR_NAME,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": list(settings.command),
        "args": [
            f"--bundle={names.BUNDLE_FILE}",
            f"--port={settings.port}",
            f"--admin-port={settings.admin_port}",
            f"--secrets-dir={names.SECRETS_DIR}",
            f"--drain-timeout={drain_s}",
            *(["--status-from-network"] if settings.status_from_network else []),
            *([f"--audit-file={names.AUDIT_FILE}"] if audit else []),
            *([f"--redaction-key-file={names.REDACTION_KEY_FILE}"] if key else []),
        ],
        "ports": [
            {"name": "aigw-proxy", "containerPort": settings.port, "protocol": "TCP"},
            {"name": "aigw-admin", "containerPort": settings.admin_port, "protocol": "TCP"},
        ],
        "env": [
            field_env(names.ENV_POD_NAMESPACE, "metadata.namespace"),
            field_env(names.ENV_POD_NAME, "metadata.name"),
            field_env(names.ENV_SERVICE_ACCOUNT, "spec.serviceAccountName"),
            {"name": names.ENV_LABELS_FILE, "value": names.LABELS_FILE},
            *_sidecar_env(settings.env),
        ],
        "resources": {
            "requests": {"cpu": res.cpu_request, "memory": res.memory_request},
            "limits": {"cpu": res.cpu_limit, "memory": res.memory_limit},
        },
        "volumeMounts": mounts,
        "startupProbe": probe("/aigw/ready", 30),
        "readinessProbe": probe("/aigw/ready", 3),
        "livenessProbe": probe("/aigw/healthz", 3),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.user_id,
            "runAsGroup": settings.user_id,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if native:
        container["restartPolicy"] = "Always"
    return container


_POD_RESOURCE = (
    f"k8s.namespace.name=$({names.ENV_POD_NAMESPACE}),k8s.pod.name=$({names.ENV_POD_NAME}),"
    f"k8s.service_account.name=$({names.ENV_SERVICE_ACCOUNT}),"
    f"k8s.container.name={names.SIDECAR_NAME}"
)
"""The pod's OpenTelemetry resource attributes, from the downward-API variables above them
(the kubelet expands ``$(VAR)`` of variables defined earlier in the list)."""


def _sidecar_env(env: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """The operator's extra sidecar environment; when it configures OpenTelemetry, the pod's
    resource attributes come first in ``OTEL_RESOURCE_ATTRIBUTES`` (the chart's own
    attributes, if any, follow them)."""
    items = [{"name": name, "value": value} for name, value in env if name != _RESOURCE_ENV]
    if not any(name.startswith("OTEL_") for name, _ in env):
        return items
    extra = [value for name, value in env if name == _RESOURCE_ENV and value]
    items.append({"name": _RESOURCE_ENV, "value": ",".join([_POD_RESOURCE, *extra])})
    return items


_RESOURCE_ENV = "OTEL_RESOURCE_ATTRIBUTES"


def _volumes(secrets: Sequence[str], settings: SidecarSettings) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [
        # The pointer is not optional: without a bundle the sidecar cannot govern, so the pod
        # waits for one. Parts 1.. exist only for bundles too large for one ConfigMap.
        {
            "name": _BUNDLE_VOLUME,
            "projected": {
                "sources": [
                    {"configMap": {"name": names.POINTER_NAME}},
                    *(
                        {
                            "configMap": {
                                "name": names.part_configmap_name(names.POINTER_NAME, i),
                                "optional": True,
                            }
                        }
                        for i in range(1, MAX_PARTS)
                    ),
                ]
            },
        },
        {
            "name": _PODINFO_VOLUME,
            "downwardAPI": {
                "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
            },
        },
        {"name": _TMP_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
    ]
    if settings.audit_size_limit is not None:  # on disk: records survive a sidecar restart
        volumes.append(
            {"name": _AUDIT_VOLUME, "emptyDir": {"sizeLimit": settings.audit_size_limit}}
        )
    if settings.redis_tls_secret is not None:
        secret = {"secretName": settings.redis_tls_secret, "defaultMode": _SECRET_MODE}
        volumes.append({"name": _REDIS_TLS_VOLUME, "secret": secret})
    if settings.redaction_key_secret is not None:  # one entry, under a fixed file name
        item = {"key": settings.redaction_key_entry, "path": "key"}
        secret = {
            "secretName": settings.redaction_key_secret,
            "items": [item],
            "defaultMode": _SECRET_MODE,
        }
        volumes.append({"name": _REDACTION_KEY_VOLUME, "secret": secret})
    # Optional: a Secret for a backend that is not used yet must not keep the pod from starting;
    # the sidecar answers calls to that backend with an authentication error instead.
    volumes += [
        {
            "name": _secret_volume(secret),
            "secret": {"secretName": secret, "optional": True, "defaultMode": _SECRET_MODE},
        }
        for secret in secrets
    ]
    return volumes


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _append(patch: JsonPatch, path: str, present: bool, items: Sequence[Any]) -> None:
    """Append items to the array at path, creating it when absent."""
    if not items:
        return
    if not present:
        patch.append({"op": "add", "path": path, "value": list(items)})
        return
    patch.extend({"op": "add", "path": f"{path}/-", "value": item} for item in items)


def _base_url_env(settings: SidecarSettings) -> list[tuple[str, str]]:
    base = f"http://127.0.0.1:{settings.port}"
    return [("OPENAI_BASE_URL", f"{base}/v1"), ("ANTHROPIC_BASE_URL", base)]


def _app_env(
    pod: Mapping[str, Any], settings: SidecarSettings, patch: JsonPatch
) -> tuple[list[str], list[str]]:
    """Add the base URLs and key placeholders to the app containers; the containers that got
    base URLs, and those that got key placeholders."""
    spec = pod.get("spec", {})
    env_containers: list[str] = []
    key_containers: list[str] = []
    if _annotations(pod).get(names.ANNOTATION_INJECT_ENV) != "false":
        for index, container in enumerate(spec.get("containers") or []):
            existing = {e.get("name") for e in container.get("env") or []}
            env = [{"name": n, "value": v} for n, v in _base_url_env(settings) if n not in existing]
            if env:
                env_containers.append(str(container.get("name")))
            if not container.get("envFrom"):  # envFrom may bring a key of its own: keep it
                keys = [n for n in API_KEY_ENV if n not in existing]
                env += [{"name": n, "value": API_KEY_PLACEHOLDER} for n in keys]
                if keys:
                    key_containers.append(str(container.get("name")))
            _append(patch, f"/spec/containers/{index}/env", bool(container.get("env")), env)

    return env_containers, key_containers


def plan_injection(
    pod: Mapping[str, Any],
    settings: SidecarSettings,
    *,
    namespace_enabled: bool,
    native: bool,
    secrets: Sequence[str] = (),
) -> InjectionPlan:
    """Decide, and build the JSONPatch that injects the sidecar into ``pod``."""
    decision = decide(pod, namespace_enabled=namespace_enabled)
    if not decision.inject:
        return InjectionPlan(decision, [])
    secrets = sorted(set(secrets))
    spec = pod.get("spec", {})
    patch: JsonPatch = []
    drain, grace = drain_and_grace(settings, spec.get("terminationGracePeriodSeconds"))
    sidecar = sidecar_container(settings, secrets, native=native, drain_s=drain)
    if native:
        if spec.get("initContainers"):
            patch.append({"op": "add", "path": "/spec/initContainers/0", "value": sidecar})
        else:
            patch.append({"op": "add", "path": "/spec/initContainers", "value": [sidecar]})
    else:
        _append(patch, "/spec/containers", True, [sidecar])
    volumes = _volumes(secrets, settings)
    _append(patch, "/spec/volumes", bool(spec.get("volumes")), volumes)
    if grace is not None:
        patch.append({"op": "add", "path": "/spec/terminationGracePeriodSeconds", "value": grace})

    env_containers, key_containers = _app_env(pod, settings, patch)
    status = {
        "version": settings.version,
        "image": settings.image,
        "container": names.SIDECAR_NAME,
        "mode": "native" if native else "container",
        "reason": decision.reason,
        "secrets": secrets,
        "baseURLEnv": env_containers,
        "apiKeyEnv": key_containers,
        "adminPort": settings.admin_port,
    }
    labels = pod.get("metadata", {}).get("labels")
    if labels:
        path = f"/metadata/labels/{_escape(names.LABEL_INJECTED)}"
        patch.append({"op": "add", "path": path, "value": "true"})
    else:
        patch.append(
            {"op": "add", "path": "/metadata/labels", "value": {names.LABEL_INJECTED: "true"}}
        )
    value = json.dumps(status, sort_keys=True, separators=(",", ":"))
    if _annotations(pod):
        path = f"/metadata/annotations/{_escape(names.ANNOTATION_INJECTION_STATUS)}"
        patch.append({"op": "add", "path": path, "value": value})
    else:
        patch.append(
            {
                "op": "add",
                "path": "/metadata/annotations",
                "value": {names.ANNOTATION_INJECTION_STATUS: value},
            }
        )
    return InjectionPlan(decision, patch)
