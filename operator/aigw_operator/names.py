"""Names shared by the operator, the injected pods and the sidecar: the injection contract.

Every label, annotation, ConfigMap name, environment variable and mount path that crosses a
process boundary is defined here once, and documented in ``docs/operator.md``. The sidecar
does not import this module (the layers forbid it); the names are its documented interface.
"""

from __future__ import annotations

__all__ = [
    "ANNOTATION_BUNDLE_CONFIGMAP",
    "ANNOTATION_CONTENT_HASH",
    "ANNOTATION_INJECTION_STATUS",
    "ANNOTATION_INJECT_ENV",
    "ANNOTATION_PROVIDER_SECRETS",
    "ANNOTATION_REVISION",
    "ANNOTATION_ROLLBACK",
    "AUDIT_DIR",
    "AUDIT_FILE",
    "BUNDLE_FILE",
    "BUNDLE_KEY",
    "BUNDLE_MOUNT",
    "ENV_LABELS_FILE",
    "ENV_POD_NAME",
    "ENV_POD_NAMESPACE",
    "ENV_SERVICE_ACCOUNT",
    "HISTORY_PREFIX",
    "LABELS_FILE",
    "LABEL_BUNDLE",
    "LABEL_INJECT",
    "LABEL_INJECTED",
    "LABEL_MANAGED_BY",
    "LABEL_NAMESPACE_INJECTION",
    "MANAGED_BY",
    "PODINFO_MOUNT",
    "POINTER_NAME",
    "REDACTION_KEY_FILE",
    "REDACTION_KEY_MOUNT",
    "ROLLOUT_NAME",
    "SECRETS_DIR",
    "SIDECAR_NAME",
    "history_name",
    "part_configmap_name",
]

POINTER_NAME = "aigw-bundle"
"""The pointer ConfigMap every injected pod mounts; it always holds the bundle in force."""
HISTORY_PREFIX = "aigw-bundle-"
"""Immutable history ConfigMaps are called ``aigw-bundle-<revision>``."""
BUNDLE_KEY = "bundle.json"
"""The ConfigMap data key holding the serialized bundle."""

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "aigw-operator"
LABEL_BUNDLE = "aigw.dev/bundle"
"""``pointer`` or ``history``: what a bundle ConfigMap is (GC lists by this label)."""
ANNOTATION_REVISION = "aigw.dev/revision"
ANNOTATION_CONTENT_HASH = "aigw.dev/content-hash"
ANNOTATION_BUNDLE_CONFIGMAP = "aigw.dev/bundle-configmap"
"""On the pointer: the name of the history ConfigMap it copies."""
ANNOTATION_PROVIDER_SECRETS = "aigw.dev/provider-secrets"
"""On the pointer: comma-separated Secret names its routes use (the webhook mounts them
without decoding the bundle)."""
ANNOTATION_ROLLBACK = "aigw.dev/rollback"
"""On the pointer after ``aigw rollout undo``: JSON with the revision restored, the revision
and content hash it replaced, who and why. The operator keeps the rollback in force until a
resource of the namespace changes."""
ROLLOUT_NAME = "aigw-rollout"
"""Per namespace: the ConfigMap where the operator records which pod serves which bundle."""

LABEL_INJECT = "aigw.dev/inject"
"""Pod label: ``"true"`` asks for the sidecar, ``"false"`` opts out of namespace injection."""
LABEL_NAMESPACE_INJECTION = "aigw.dev/injection"
"""Namespace label: ``enabled`` injects every pod of the namespace."""
LABEL_INJECTED = "aigw.dev/injected"
"""Pod label set by the webhook (``"true"``): the operator's rollout poller lists by it."""
ANNOTATION_INJECTION_STATUS = "aigw.dev/injection-status"
"""Pod annotation written by the webhook: what was injected, with which sidecar version."""
ANNOTATION_INJECT_ENV = "aigw.dev/inject-base-url-env"
"""Pod annotation: ``"false"`` leaves the app containers' environment alone."""

SIDECAR_NAME = "aigw-sidecar"
BUNDLE_MOUNT = "/etc/aigw/bundle"
BUNDLE_FILE = f"{BUNDLE_MOUNT}/{BUNDLE_KEY}"
SECRETS_DIR = "/var/run/aigw/secrets"
"""Each provider Secret is mounted at ``<SECRETS_DIR>/<secret-name>/<key>``."""
AUDIT_DIR = "/var/log/aigw"
"""The sidecar's audit emptyDir: ``audit.jsonl`` and its rotated files, for a log agent."""
AUDIT_FILE = f"{AUDIT_DIR}/audit.jsonl"
PODINFO_MOUNT = "/etc/aigw/podinfo"
LABELS_FILE = f"{PODINFO_MOUNT}/labels"
REDACTION_KEY_MOUNT = "/etc/aigw/redaction-key"
"""Where the redaction key Secret is mounted in the sidecar container (read-only)."""
REDACTION_KEY_FILE = f"{REDACTION_KEY_MOUNT}/key"
"""The sidecar's ``--redaction-key-file``: the Secret's key entry, always under this name."""

ENV_POD_NAMESPACE = "AIGW_POD_NAMESPACE"
ENV_POD_NAME = "AIGW_POD_NAME"
ENV_SERVICE_ACCOUNT = "AIGW_SERVICE_ACCOUNT"
ENV_LABELS_FILE = "AIGW_POD_LABELS_FILE"
"""Path of the downward-API file of the pod's labels (``key="value"`` lines)."""


def history_name(revision: int) -> str:
    """Name of the immutable ConfigMap of one revision."""
    return f"{HISTORY_PREFIX}{revision}"


def part_configmap_name(main: str, index: int) -> str:
    """The ConfigMap holding part ``index`` (>= 1) of a format-2 bundle whose envelope and
    part 0 are in ``main`` (``aigw-bundle`` -> ``aigw-bundle-part-1``)."""
    return f"{main}-part-{index}"
