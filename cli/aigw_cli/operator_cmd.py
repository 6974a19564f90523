"""``aigw operator``: run the operator, in a cluster or outside it with a kubeconfig.

Flags and the environment become an ``OperatorSettings`` here, and nowhere else. Environment
variables (the chart sets them): KUBECONFIG, KUBERNETES_SERVICE_HOST/PORT (in a pod),
AIGW_WATCH_NAMESPACES (comma-separated), AIGW_POD_NAME (the peering
priority is derived from it when not given: replicas of one Deployment need distinct ones), and
AIGW_SIDECAR_<NAME>, passed to every injected sidecar as AIGW_<NAME> (AIGW_SIDECAR_REDIS_URL
becomes the sidecar's AIGW_REDIS_URL), except AIGW_SIDECAR_OTEL_<NAME>, which becomes the
standard OTEL_<NAME> (AIGW_SIDECAR_OTEL_EXPORTER_OTLP_ENDPOINT: OTEL_EXPORTER_OTLP_ENDPOINT).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import os
import sys
from pathlib import Path

from aigw_operator import OperatorError
from aigw_operator import settings as s
from aigw_operator.app import run as run_operator
from aigw_operator.inject import redaction_key_problems, redis_tls_problems

__all__ = ["add_arguments", "run", "settings_from_args"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--kubeconfig", type=Path, help="kubeconfig (default: $KUBECONFIG, else in-cluster)")
    add("--context", help="kubeconfig context (default: its current context)")
    add("--namespace", action="append", default=[], help="namespace to watch (repeat; all)")
    add("--peering-name", default="aigw-operator", help="kopf peering object; '' = standalone")
    add("--priority", type=int, help="peering priority, distinct per replica (default: hashed)")
    add("--peering-lifetime", type=int, default=60, help="seconds until a silent peer is dead")
    add("--health-host", default="0.0.0.0", help="address of /healthz, /readyz, /metrics")  # noqa: S104
    add("--health-port", type=int, default=8080)
    add("--no-webhook", action="store_true", help="do not serve the injection webhook")
    add("--webhook-host", default="0.0.0.0")  # noqa: S104
    add("--webhook-port", type=int, default=9443)
    add("--webhook-cert-dir", type=Path, default=Path("/tmp/aigw-webhook-certs"))  # noqa: S108
    add("--webhook-san", action="append", default=[], help="SAN of generated certificates")
    add(
        "--webhook-cert-secret",
        help="NAMESPACE/NAME of a Secret with the certificate all replicas serve (generated "
        "there by the first replica when missing)",
    )
    add("--webhook-configuration", help="MutatingWebhookConfiguration to give a generated CA")
    add("--register-webhook-url", help="outside a cluster: create the configuration, this URL")
    add("--exclude-namespace", action="append", default=[], help="never inject here (repeat)")
    add("--failure-policy", choices=["Fail", "Ignore"], default="Fail")
    add("--sidecar-image", default="ghcr.io/aigw/aigw:0.1.0")
    add("--sidecar-version", default="0.1.0")
    add("--sidecar-port", type=int, default=15400)
    add("--sidecar-admin-port", type=int, default=15401)
    add("--native-sidecar", choices=["auto", "always", "never"], default="auto")
    add(
        "--sidecar-drain-timeout",
        type=int,
        default=25,
        help="seconds an injected sidecar drains on SIGTERM (capped by the pod's grace period)",
    )
    add(
        "--sidecar-status-from-network",
        action="store_true",
        help="injected sidecars serve /aigw/status beyond the pod's loopback",
    )
    add(
        "--sidecar-audit-size-limit",
        default="1Gi",
        help="size limit of the injected sidecar's audit emptyDir at /var/log/aigw (1Gi)",
    )
    add(
        "--sidecar-no-audit",
        action="store_true",
        help="injected sidecars get no audit volume and write no audit records",
    )
    add(
        "--sidecar-redis-tls-secret",
        help="Secret (in each workload namespace) with the PEM files of a rediss:// Redis, "
        "mounted read-only into injected sidecars at --sidecar-redis-tls-dir",
    )
    add(
        "--sidecar-redis-tls-dir",
        default="/etc/aigw/redis-tls",
        help="where the Redis TLS Secret is mounted; AIGW_SIDECAR_REDIS_TLS_*_FILE must be in it",
    )
    add(
        "--sidecar-redaction-key-secret",
        help="Secret (in each workload namespace) holding the key of redaction mode hash, "
        "mounted read-only into injected sidecars only (pods wait for it); without it each "
        "sidecar draws its own key and hashes match within one pod only",
    )
    add(
        "--sidecar-redaction-key-secret-key",
        default="key",
        help="the entry of --sidecar-redaction-key-secret holding the key (at least 16 bytes)",
    )
    add("--sidecar-cpu-request", default="50m")
    add("--sidecar-memory-request", default="64Mi")
    add("--sidecar-cpu-limit", default="1")
    add("--sidecar-memory-limit", default="256Mi")
    add("--keep-revisions", type=int, default=5, help="history ConfigMaps kept per namespace")
    add("--debounce-seconds", type=float, default=0.15)
    add("--max-delay-seconds", type=float, default=1.0)
    add("--bundle-format", type=int, choices=[1, 2], default=2, help="bundle format written")
    add("--bundle-part-bytes", type=int, default=900_000, help="largest part of a bundle")
    add("--no-rollout", action="store_true", help="do not poll the sidecars' rollout status")
    add("--rollout-interval", type=float, default=0.5, help="seconds between rollout polls")
    add("--rollout-unknown-after", type=float, default=10.0, help="seconds to Unknown")
    add("--log-level", default="INFO")


def _priority(args: argparse.Namespace) -> int:
    if args.priority is not None:
        return int(args.priority)
    identity = os.environ.get("AIGW_POD_NAME") or f"{os.uname().nodename}-{os.getpid()}"
    return int.from_bytes(hashlib.sha256(identity.encode()).digest()[:3], "big") + 1


def _secret_ref(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    namespace, sep, name = value.partition("/")
    if not sep or not namespace or not name:
        raise SystemExit(f"error: --webhook-cert-secret wants NAMESPACE/NAME, not {value!r}")
    return namespace, name


SIDECAR_ENV_PREFIX = "AIGW_SIDECAR_"


def _sidecar_name(key: str) -> str:
    name = key.removeprefix(SIDECAR_ENV_PREFIX)
    return name if name.startswith("OTEL_") else "AIGW_" + name


def _sidecar_env() -> tuple[tuple[str, str], ...]:
    return tuple(
        sorted(
            (_sidecar_name(key), value)
            for key, value in os.environ.items()
            if key.startswith(SIDECAR_ENV_PREFIX) and len(key) > len(SIDECAR_ENV_PREFIX)
        )
    )


def settings_from_args(args: argparse.Namespace) -> s.OperatorSettings:
    """Flags + environment -> OperatorSettings."""
    kubeconfig = args.kubeconfig or (
        Path(os.environ["KUBECONFIG"]) if os.environ.get("KUBECONFIG") else None
    )
    host, port = (
        os.environ.get("KUBERNETES_SERVICE_HOST"),
        os.environ.get("KUBERNETES_SERVICE_PORT", "443"),
    )
    namespaces = list(args.namespace) or [
        n for n in os.environ.get("AIGW_WATCH_NAMESPACES", "").split(",") if n
    ]
    return s.OperatorSettings(
        kube=s.KubeSettings(
            kubeconfig=kubeconfig,
            context=args.context,
            in_cluster_host=f"https://{host}:{port}" if host else None,
        ),
        namespaces=tuple(namespaces),
        sidecar=s.SidecarSettings(
            image=args.sidecar_image,
            version=args.sidecar_version,
            port=args.sidecar_port,
            admin_port=args.sidecar_admin_port,
            native=args.native_sidecar,
            drain_timeout_s=args.sidecar_drain_timeout,
            status_from_network=args.sidecar_status_from_network,
            audit_size_limit=None if args.sidecar_no_audit else args.sidecar_audit_size_limit,
            env=_sidecar_env(),
            redis_tls_secret=args.sidecar_redis_tls_secret or None,
            redis_tls_dir=args.sidecar_redis_tls_dir,
            redaction_key_secret=args.sidecar_redaction_key_secret or None,
            redaction_key_entry=args.sidecar_redaction_key_secret_key,
            resources=s.Resources(
                cpu_request=args.sidecar_cpu_request,
                memory_request=args.sidecar_memory_request,
                cpu_limit=args.sidecar_cpu_limit,
                memory_limit=args.sidecar_memory_limit,
            ),
        ),
        webhook=s.WebhookSettings(
            enabled=not args.no_webhook,
            host=args.webhook_host,
            port=args.webhook_port,
            cert_dir=args.webhook_cert_dir,
            sans=tuple(args.webhook_san) or ("127.0.0.1", "localhost"),
            configuration_name=args.webhook_configuration
            or ("aigw-sidecar-injector" if args.register_webhook_url else None),
            register_url=args.register_webhook_url,
            cert_secret=_secret_ref(args.webhook_cert_secret),
            excluded_namespaces=tuple(sorted({"kube-system", *args.exclude_namespace})),
            failure_policy=args.failure_policy,
        ),
        bundles=s.BundleSettings(
            keep_revisions=args.keep_revisions,
            debounce_seconds=args.debounce_seconds,
            max_delay_seconds=args.max_delay_seconds,
            format_version=args.bundle_format,
            part_bytes=args.bundle_part_bytes,
        ),
        rollout=s.RolloutSettings(
            enabled=not args.no_rollout,
            interval_seconds=args.rollout_interval,
            unknown_after_seconds=args.rollout_unknown_after,
        ),
        peering=s.PeeringSettings(
            name=args.peering_name or None,
            priority=_priority(args),
            lifetime_seconds=args.peering_lifetime,
        ),
        health_host=args.health_host,
        health_port=args.health_port,
    )


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if logging.getLogger().level > logging.DEBUG:
        # kopf logs every handler call at INFO: one line per watch event is noise here.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    settings = settings_from_args(args)
    problems = redis_tls_problems(settings.sidecar) + redaction_key_problems(settings.sidecar)
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    logging.getLogger("aigw_operator").info(
        "aigw operator: %s, peering %s priority %d",
        f"namespaces {', '.join(settings.namespaces)}" if settings.namespaces else "cluster-wide",
        settings.peering.name or "(standalone)",
        settings.peering.priority,
    )
    try:
        asyncio.run(run_operator(settings))
    except OperatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
