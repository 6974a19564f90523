"""``aigw sidecar``: run the data plane beside a workload.

Flags win over environment variables, which win over defaults. This ``run`` is the one place
the sidecar process reads its environment (``AIGW_*``, set by the injection webhook, and the
standard ``OTEL_*`` variables, parsed by :mod:`.otel_env`); the result is a frozen
:class:`aigw_sidecar.SidecarSettings`.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .otel_env import OTEL_VARIABLES, telemetry_from_env

if TYPE_CHECKING:
    from aigw_sidecar.settings import AuditConfig

__all__ = ["ENVIRONMENT", "add_arguments", "run"]

_ENV = {
    "bundle": "AIGW_BUNDLE_PATH",
    "port": "AIGW_PORT",
    "admin_port": "AIGW_ADMIN_PORT",
    "admin_host": "AIGW_ADMIN_HOST",
    "host": "AIGW_HOST",
    "secrets_dir": "AIGW_SECRETS_DIR",
    "drain_timeout": "AIGW_DRAIN_TIMEOUT_S",
    "reload_interval": "AIGW_RELOAD_INTERVAL_S",
    "max_body_bytes": "AIGW_MAX_BODY_BYTES",
    "log_level": "AIGW_LOG_LEVEL",
    "redis_url": "AIGW_REDIS_URL",
    "tokenizer": "AIGW_TOKENIZER",
    "redis_timeout": "AIGW_REDIS_TIMEOUT_S",
    "redis_tls_ca": "AIGW_REDIS_TLS_CA_FILE",
    "redis_tls_cert": "AIGW_REDIS_TLS_CERT_FILE",
    "redis_tls_key": "AIGW_REDIS_TLS_KEY_FILE",
    "redis_tls_server_name": "AIGW_REDIS_TLS_SERVER_NAME",
    "redaction_key_file": "AIGW_REDACTION_KEY_FILE",
    "injection_classifier": "AIGW_INJECTION_CLASSIFIER",
    "idle_timeout": "AIGW_IDLE_TIMEOUT_S",
    "body_timeout": "AIGW_BODY_TIMEOUT_S",
    "send_timeout": "AIGW_SEND_TIMEOUT_S",
    "status_from_network": "AIGW_STATUS_FROM_NETWORK",
    "audit_file": "AIGW_AUDIT_FILE",
    "audit_stdout": "AIGW_AUDIT_STDOUT",
    "audit_otlp_endpoint": "AIGW_AUDIT_OTLP_ENDPOINT",
    "audit_file_max_bytes": "AIGW_AUDIT_FILE_MAX_BYTES",
    "audit_file_keep": "AIGW_AUDIT_FILE_KEEP",
    "audit_queue_size": "AIGW_AUDIT_QUEUE_SIZE",
    "audit_key_file": "AIGW_AUDIT_KEY_FILE",
    "cache_store": "AIGW_CACHE_STORE",
    "cache_max_bytes": "AIGW_CACHE_MAX_BYTES",
    "cache_max_entry_bytes": "AIGW_CACHE_MAX_ENTRY_BYTES",
    "cache_semantic_max_bytes": "AIGW_CACHE_SEMANTIC_MAX_BYTES",
    "genai_semconv": "AIGW_GENAI_SEMCONV",
    "tenant_label_cap": "AIGW_TENANT_LABEL_CAP",
}
# Pod identity, injected by the operator from the downward API (environment only).
_POD_ENV = {
    "pod_namespace": "AIGW_POD_NAMESPACE",
    "pod_name": "AIGW_POD_NAME",
    "service_account": "AIGW_SERVICE_ACCOUNT",
}
_LABELS_FILE_ENV = "AIGW_POD_LABELS_FILE"

ENVIRONMENT = frozenset([*_ENV.values(), *_POD_ENV.values(), _LABELS_FILE_ENV, *OTEL_VARIABLES])
"""Every variable ``aigw sidecar`` reads (``tests/chart/test_operator_args.py`` fails on a
variable the chart hands the injected sidecar that is not one of these)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", type=Path, help=f"bundle file (env {_ENV['bundle']})")
    parser.add_argument("--port", type=int, help=f"API port, loopback only (env {_ENV['port']})")
    parser.add_argument(
        "--admin-port", type=int, help=f"admin port (env {_ENV['admin_port']}; default 8788)"
    )
    parser.add_argument(
        "--host",
        help=f"API bind address (env {_ENV['host']}; default 127.0.0.1: the pod's loopback)",
    )
    parser.add_argument(
        "--admin-host", help=f"admin bind address (env {_ENV['admin_host']}; default 0.0.0.0)"
    )
    parser.add_argument(
        "--secrets-dir",
        type=Path,
        help=f"where provider Secrets are mounted (env {_ENV['secrets_dir']})",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        help=f"seconds to drain on SIGTERM (env {_ENV['drain_timeout']})",
    )
    for flag, key, what in (
        ("--idle-timeout", "idle_timeout", "close a caller connection idle (or sending its head)"),
        ("--body-timeout", "body_timeout", "refuse a request body not sent within (408)"),
        ("--send-timeout", "send_timeout", "end a call whose caller stops reading for"),
    ):
        parser.add_argument(flag, type=float, help=f"seconds: {what} (env {_ENV[key]}; default 30)")
    parser.add_argument(
        "--status-from-network",
        action="store_const",
        const="true",
        help=f"serve /aigw/status to peers beyond the pod's loopback (env "
        f"{_ENV['status_from_network']}=true; default: loopback only)",
    )
    parser.add_argument(
        "--reload-interval",
        type=float,
        help=f"bundle poll interval in seconds (env {_ENV['reload_interval']})",
    )
    parser.add_argument(
        "--max-body-bytes", type=int, help=f"largest request body (env {_ENV['max_body_bytes']})"
    )
    parser.add_argument("--log-level", help=f"logging level (env {_ENV['log_level']}; INFO)")
    parser.add_argument(
        "--redis-url",
        help=f"shared state for limits and budgets: redis://host:port/db, rediss:// (TLS), "
        f"redis+cluster://host:port,host:port or rediss+cluster:// (env {_ENV['redis_url']}; "
        "default: this pod's memory)",
    )
    for flag, what in (
        ("ca", "PEM bundle of the CAs that sign the Redis server's certificate (default: the "
         "system's)"),
        ("cert", "client certificate (PEM) for a Redis that requires one"),
        ("key", "private key of the client certificate (PEM)"),
        ("server-name", "name the Redis server's certificate must carry (default: the URL's "
         "host)"),
    ):  # fmt: skip
        env = _ENV["redis_tls_" + flag.replace("-", "_")]
        parser.add_argument(f"--redis-tls-{flag}", help=f"rediss:// URLs: {what} (env {env})")
    parser.add_argument(
        "--redis-timeout",
        type=float,
        help=f"seconds for connecting to Redis and for each reply before the policy's failMode "
        f"applies (env {_ENV['redis_timeout']}; default 0.5)",
    )
    parser.add_argument(
        "--tokenizer",
        help=f"prompt token counting: estimate, o200k_base, cl100k_base (env "
        f"{_ENV['tokenizer']}; default estimate; encodings need the bpe-openai package)",
    )
    parser.add_argument(
        "--redaction-key-file",
        type=Path,
        help="file holding the key of redaction mode hash (a mounted Secret; env "
        f"{_ENV['redaction_key_file']}); without it each process draws its own key",
    )
    parser.add_argument(
        "--injection-classifier",
        help="optional prompt-injection classifier as module:factory, imported only when "
        f"given (env {_ENV['injection_classifier']})",
    )
    _audit_arguments(parser)
    group = parser.add_argument_group("response cache (docs/cache.md; policies switch it on)")
    group.add_argument(
        "--cache-store",
        choices=("auto", "memory", "redis"),
        help=f"where cache entries live (env {_ENV['cache_store']}; default auto: the "
        "--redis-url Redis when set, else this pod's memory)",
    )
    group.add_argument(
        "--cache-max-bytes",
        type=int,
        help=f"bound of the memory cache store (env {_ENV['cache_max_bytes']}; default 8 MiB)",
    )
    group.add_argument(
        "--cache-max-entry-bytes",
        type=int,
        help=f"largest cache entry kept (env {_ENV['cache_max_entry_bytes']}; default 1 MiB)",
    )
    group.add_argument(
        "--cache-semantic-max-bytes",
        type=int,
        help=f"bound of the semantic cache's vector index (env "
        f"{_ENV['cache_semantic_max_bytes']}; default 8 MiB)",
    )
    _telemetry_arguments(parser)


def _telemetry_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "telemetry (docs/telemetry.md)",
        "Traces: the standard OpenTelemetry variables, tracing on when an endpoint is set: "
        + ", ".join(OTEL_VARIABLES)
        + ". Default protocol http/protobuf (OTEL_EXPORTER_OTLP_ENDPOINT is then a base URL, "
        "e.g. http://collector:4318); sampler parentbased_always_on.",
    )
    group.add_argument(
        "--genai-semconv",
        choices=("latest", "dup"),
        help=f"GenAI metric and attribute names: latest (semantic-conventions-genai v0.1.0) or "
        f"dup (the v1.41 names too) (env {_ENV['genai_semconv']}; default latest)",
    )
    group.add_argument(
        "--tenant-label-cap",
        type=int,
        help=f"distinct (tenant, use case) pairs of the tenant metrics; more are counted as "
        f"_other (env {_ENV['tenant_label_cap']}; default 200)",
    )


def _audit_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("audit records (docs/audit.md; no sink: no records)")
    group.add_argument(
        "--audit-file",
        type=Path,
        help=f"JSON-lines audit file, rotated by size (env {_ENV['audit_file']})",
    )
    group.add_argument(
        "--audit-stdout",
        action="store_const",
        const="true",
        help=f"also write audit records to standard output (env {_ENV['audit_stdout']}=true)",
    )
    group.add_argument(
        "--audit-otlp-endpoint",
        help=f"also send audit records as OTLP logs to this OTLP/HTTP base URL, e.g. "
        f"http://collector:4318 (env {_ENV['audit_otlp_endpoint']})",
    )
    group.add_argument(
        "--audit-file-max-bytes",
        type=int,
        help=f"rotate the audit file at this size (env {_ENV['audit_file_max_bytes']}; "
        f"default 64 MiB)",
    )
    group.add_argument(
        "--audit-file-keep",
        type=int,
        help=f"rotated audit files kept at most (env {_ENV['audit_file_keep']}; default 8)",
    )
    group.add_argument(
        "--audit-queue-size",
        type=int,
        help=f"audit records waiting for the writer at most (env {_ENV['audit_queue_size']}; "
        f"default 10000)",
    )
    group.add_argument(
        "--audit-key-file",
        type=Path,
        help=f"key of the user-id hash in audit records (env {_ENV['audit_key_file']}; "
        f"default: a random key per process)",
    )


def _audit_config(args: argparse.Namespace) -> AuditConfig:
    """The audit settings of the flags and environment (``ValueError`` for a bad one)."""
    from aigw_sidecar.settings import AuditConfig  # noqa: PLC0415

    values: dict[str, object] = {}
    if (file := _pick(args, "audit_file")) is not None:
        values["file"] = Path(file)
    if (stdout := _pick(args, "audit_stdout")) is not None:
        values["stdout"] = stdout.lower() in ("1", "true", "yes")
    if (endpoint := _pick(args, "audit_otlp_endpoint")) is not None:
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError("audit-otlp-endpoint must be an http:// or https:// URL")
        values["otlp_endpoint"] = endpoint
    for name, field in (
        ("audit_file_max_bytes", "file_max_bytes"),
        ("audit_file_keep", "file_keep"),
        ("audit_queue_size", "queue_size"),
    ):
        if (raw := _pick(args, name)) is not None:
            number = int(raw)
            if number < 1:
                raise ValueError(f"{name.replace('_', '-')} must be a positive integer")
            values[field] = number
    if (key_file := _pick(args, "audit_key_file")) is not None:
        try:
            key = Path(key_file).read_bytes().strip()
        except OSError as exc:
            raise ValueError(f"cannot read the audit key file: {exc.strerror}") from None
        if len(key) < 16:
            raise ValueError("the audit key file must hold at least 16 bytes")
        values["hash_key"] = key
    return AuditConfig(**values)  # type: ignore[arg-type]


def _pick(args: argparse.Namespace, name: str) -> str | None:
    value = getattr(args, name)
    if value is not None:
        return str(value)
    return os.environ.get(_ENV[name]) or None


MIN_REDACTION_KEY_BYTES = 16
"""The shortest redaction key accepted: a shorter one could be guessed, and then every hash
token dictionary-checked."""


def _redaction_key(path: Path) -> tuple[bytes | None, str]:
    """The key of redaction mode hash from ``path`` (surrounding whitespace dropped), or None
    and why not. A file that cannot be read, or holds fewer than 16 bytes, is an error, never
    a silent fallback to a per-process key (hashes would then stop matching across pods);
    the message names the file and the length, never the content."""
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        return None, f"cannot read the redaction key file {path}: {exc.strerror or exc}"
    if len(key) < MIN_REDACTION_KEY_BYTES:
        return None, (
            f"the redaction key file {path} holds {len(key)} bytes; "
            f"at least {MIN_REDACTION_KEY_BYTES} are needed"
        )
    return key, ""


def _cache_store_problem(overrides: dict[str, object]) -> str | None:
    store = overrides.get("cache_store", "auto")
    if store not in ("auto", "memory", "redis"):
        return "cache-store must be auto, memory or redis"
    if store == "redis" and "redis_url" not in overrides:
        return "--cache-store redis needs --redis-url"
    return None


def _redis_tls(args: argparse.Namespace) -> dict[str, object]:
    """The ``rediss://`` settings given by flags or environment."""
    found: dict[str, object] = {}
    server_name = _pick(args, "redis_tls_server_name")
    if server_name is not None:
        found["redis_tls_server_name"] = server_name
    for name in ("redis_tls_ca", "redis_tls_cert", "redis_tls_key"):
        value = _pick(args, name)
        if value is not None:
            found[name + "_file"] = Path(value)
    return found


def run(args: argparse.Namespace) -> int:  # noqa: PLR0912, PLR0915 - one branch per setting
    from aigw_sidecar import SidecarSettings  # noqa: PLC0415 - only this subcommand needs it
    from aigw_sidecar import run as serve  # noqa: PLC0415
    from aigw_sidecar.settings import parse_downward_labels  # noqa: PLC0415

    bundle = _pick(args, "bundle")
    if bundle is None:
        print("error: --bundle (or AIGW_BUNDLE_PATH) is required", file=sys.stderr)
        return 2
    overrides: dict[str, object] = {}
    try:
        for name, field, kind in (
            ("port", "port", int),
            ("admin_port", "admin_port", int),
            ("drain_timeout", "drain_timeout_s", float),
            ("reload_interval", "reload_interval_s", float),
            ("max_body_bytes", "max_body_bytes", int),
            ("redis_timeout", "redis_timeout_s", float),
            ("idle_timeout", "idle_timeout_s", float),
            ("body_timeout", "body_timeout_s", float),
            ("send_timeout", "send_timeout_s", float),
            ("cache_max_bytes", "cache_max_bytes", int),
            ("cache_max_entry_bytes", "cache_max_entry_bytes", int),
            ("cache_semantic_max_bytes", "cache_semantic_max_bytes", int),
        ):
            raw = _pick(args, name)
            if raw is not None:
                number = kind(raw)
                if field.endswith("_s") and not 0 < number < math.inf:
                    raise ValueError(f"{name.replace('_', '-')} must be a positive number")
                if field.startswith("cache_") and number < 1:
                    raise ValueError(f"{name.replace('_', '-')} must be a positive number")
                overrides[field] = number
        overrides["audit"] = _audit_config(args)
        cap = _pick(args, "tenant_label_cap")
        overrides["telemetry"] = telemetry_from_env(
            os.environ,
            semconv=_pick(args, "genai_semconv"),
            tenant_label_cap=None if cap is None else int(cap),
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name in ("host", "admin_host"):
        value = _pick(args, name)
        if value is not None:
            overrides[name] = value
    status_from_network = _pick(args, "status_from_network")
    if status_from_network is not None:
        overrides["status_from_network"] = status_from_network.lower() in ("1", "true", "yes")
    secrets_dir = _pick(args, "secrets_dir")
    if secrets_dir is not None:
        overrides["secrets_dir"] = Path(secrets_dir)
    for name in ("redis_url", "tokenizer", "injection_classifier", "cache_store"):
        value = _pick(args, name)
        if value is not None:
            overrides[name] = value
    overrides.update(_redis_tls(args))
    if (problem := _cache_store_problem(overrides)) is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    key_file = _pick(args, "redaction_key_file")
    if key_file is not None:
        key, problem = _redaction_key(Path(key_file))
        if key is None:
            print(f"error: {problem}", file=sys.stderr)
            return 2
        overrides["redaction_key"] = key
    for field, env in _POD_ENV.items():
        if os.environ.get(env):
            overrides[field] = os.environ[env]
    labels_file = os.environ.get(_LABELS_FILE_ENV)
    if labels_file:
        try:
            overrides["pod_labels"] = parse_downward_labels(Path(labels_file).read_text("utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            print(f"error: cannot read {_LABELS_FILE_ENV}={labels_file}: {exc}", file=sys.stderr)
            return 2
    level = (_pick(args, "log_level") or "INFO").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    settings = SidecarSettings(bundle_path=Path(bundle), **overrides)  # type: ignore[arg-type]
    return serve(settings)
