"""The evidence trail: one hash-chained audit record per call (``docs/audit.md``).

- :mod:`.record`: the record (schema ``aigw.audit/v1``) of a finished request;
- :mod:`.chain`: sealing records into a per-sidecar hash chain, and verifying files;
- :mod:`.sinks`: the rotated JSON-lines file, standard output, OTLP logs;
- :mod:`.log`: the bounded queue and the writer task (off the hot path, flushed on exit).

The step that feeds it is :mod:`aigw_sidecar.steps.audit`; the offline tools (``aigw audit
verify|report``, ``aigw replay``) live in the CLI and read the same chain and schema.
"""

from __future__ import annotations

import secrets

from prometheus_client import CollectorRegistry

from aigw_sidecar.settings import SidecarSettings

from .chain import GENESIS, Chainer, ChainReport, VerifyReport, iter_records, seal, verify_files
from .log import AuditLog
from .record import SCHEMA, PodInfo, UserHasher, bare_record, call_record
from .sinks import FileSink, OtlpSink, Sink, SinkError, StdoutSink

__all__ = [
    "GENESIS",
    "SCHEMA",
    "AuditLog",
    "ChainReport",
    "Chainer",
    "FileSink",
    "OtlpSink",
    "PodInfo",
    "Sink",
    "SinkError",
    "StdoutSink",
    "UserHasher",
    "VerifyReport",
    "bare_record",
    "call_record",
    "hasher_of",
    "iter_records",
    "open_audit",
    "seal",
    "verify_files",
]


def open_audit(settings: SidecarSettings, registry: CollectorRegistry) -> AuditLog | None:
    """The audit log the settings ask for (None: no sink configured); :meth:`AuditLog.start`
    opens its sinks and starts its writer."""
    config = settings.audit
    if not config.enabled:
        return None
    sinks: list[Sink] = []
    log = AuditLog(sinks, registry, queue_size=config.queue_size, pod=PodInfo.of(settings))
    if config.file is not None:
        file = FileSink(
            config.file,
            max_bytes=config.file_max_bytes,
            keep=config.file_keep,
            on_remove=log.count_removed,
        )
        sinks.append(file)
    if config.stdout:
        sinks.append(StdoutSink())
    if config.otlp_endpoint is not None:
        resource = {
            "service.name": "aigw-sidecar",
            "k8s.namespace.name": settings.pod_namespace or "",
            "k8s.pod.name": settings.pod_name or "",
        }
        sinks.append(
            OtlpSink(
                config.otlp_endpoint,
                resource=resource,
                backlog=config.queue_size,
                on_drop=log.count_removed,
            )
        )
    log.sinks = tuple(sinks)
    return log


def hasher_of(settings: SidecarSettings) -> UserHasher:
    """The user-id hasher of the settings' key (a random key for this process without one)."""
    return UserHasher(settings.audit.hash_key or secrets.token_bytes(32))
