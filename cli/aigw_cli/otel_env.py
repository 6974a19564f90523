"""The standard OpenTelemetry environment variables -> :class:`aigw_sidecar.TelemetryConfig`.

``aigw sidecar`` (:mod:`.sidecar_cmd`) reads the environment once and hands it here as a
mapping; nothing else in the sidecar reads an ``OTEL_*`` variable, and no OpenTelemetry
module is imported to parse them (an idle sidecar without tracing loads none).

Tracing is on when a traces endpoint is set (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_ENDPOINT``), unless ``OTEL_SDK_DISABLED=true`` or
``OTEL_TRACES_EXPORTER=none``. The signal-specific variable wins over the general one, as the
OpenTelemetry specification says; for ``http/protobuf`` the general endpoint is a base URL
that gets ``/v1/traces`` appended, the signal-specific one is used as it is. A value that
cannot be honoured (an unknown protocol or sampler, a ratio outside [0, 1]) is an error at
startup: a sidecar never runs with telemetry settings it silently ignores.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aigw_sidecar.settings import TelemetryConfig, TracingConfig

__all__ = ["OTEL_VARIABLES", "telemetry_from_env", "tracing_from_env"]

OTEL_VARIABLES = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_EXPORTER_OTLP_INSECURE",
    "OTEL_EXPORTER_OTLP_TRACES_INSECURE",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    "OTEL_EXPORTER_OTLP_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_PROPAGATORS",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_BSP_SCHEDULE_DELAY",
)
"""Every OpenTelemetry variable ``aigw sidecar`` reads."""

_SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
_PROTOCOLS = ("grpc", "http/protobuf")
_TRUE = ("1", "true", "yes")


def _get(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def _pairs(text: str, what: str) -> tuple[tuple[str, str], ...]:
    """``k1=v1,k2=v2`` with percent-encoded values (the W3C baggage format both use)."""
    pairs: list[tuple[str, str]] = []
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"{what}: {item.strip()!r} is not key=value")
        pairs.append((key, urllib.parse.unquote(value.strip())))
    return tuple(pairs)


def _positive_int(env: Mapping[str, str], name: str) -> int | None:
    raw = _get(env, name)
    if raw is None:
        return None
    value = int(raw)
    if value < 1:
        raise ValueError(f"{name} must be a positive integer")
    return value


def _endpoint(env: Mapping[str, str], protocol: str) -> str | None:
    specific = _get(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    general = _get(env, "OTEL_EXPORTER_OTLP_ENDPOINT")
    endpoint = specific or general
    if endpoint is None:
        return None
    if protocol == "http/protobuf":
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError(f"the OTLP/HTTP endpoint must be an http(s) URL, not {endpoint!r}")
        if specific is None:
            endpoint = endpoint.rstrip("/") + "/v1/traces"
    return endpoint


def _export_values(env: Mapping[str, str], values: dict[str, Any]) -> None:
    """Headers, timeout, TLS and compression of the exporter."""
    headers = _get(env, "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
    if headers is not None:
        values["headers"] = _pairs(headers, "OTEL_EXPORTER_OTLP_HEADERS")
    timeout = _get(env, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
    if timeout is not None:
        millis = float(timeout)
        if not 0 < millis <= 600_000:
            raise ValueError("OTEL_EXPORTER_OTLP_TIMEOUT must be 1..600000 milliseconds")
        values["timeout_s"] = millis / 1000
    insecure = _get(env, "OTEL_EXPORTER_OTLP_TRACES_INSECURE", "OTEL_EXPORTER_OTLP_INSECURE")
    if insecure is not None:
        values["insecure"] = insecure.lower() in _TRUE
    compression = _get(
        env, "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"
    )
    if compression is not None:
        if compression not in ("none", "gzip"):
            raise ValueError("OTEL_EXPORTER_OTLP_COMPRESSION must be none or gzip")
        values["compression"] = compression
    certificate = _get(
        env, "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE"
    )
    if certificate is not None:
        values["certificate"] = certificate


def _sdk_values(env: Mapping[str, str], values: dict[str, Any]) -> None:
    """Resource, sampler, propagators and the export queue."""
    if (service := _get(env, "OTEL_SERVICE_NAME")) is not None:
        values["service_name"] = service
    if (resource := _get(env, "OTEL_RESOURCE_ATTRIBUTES")) is not None:
        values["resource_attributes"] = _pairs(resource, "OTEL_RESOURCE_ATTRIBUTES")
    sampler = (_get(env, "OTEL_TRACES_SAMPLER") or "parentbased_always_on").lower()
    if sampler not in _SAMPLERS:
        raise ValueError(f"OTEL_TRACES_SAMPLER={sampler} is not supported ({', '.join(_SAMPLERS)})")
    values["sampler"] = sampler
    if (ratio := _get(env, "OTEL_TRACES_SAMPLER_ARG")) is not None and "ratio" in sampler:
        number = float(ratio)
        if not 0.0 <= number <= 1.0:
            raise ValueError("OTEL_TRACES_SAMPLER_ARG must be a ratio between 0 and 1")
        values["ratio"] = number
    propagators = {
        p.strip().lower() for p in (_get(env, "OTEL_PROPAGATORS") or "tracecontext").split(",")
    }
    unknown = propagators - {"tracecontext", "baggage", "none", ""}
    if unknown:
        raise ValueError(f"OTEL_PROPAGATORS: {', '.join(sorted(unknown))} not supported")
    values["baggage"] = "baggage" in propagators
    for name, field in (
        ("OTEL_BSP_MAX_QUEUE_SIZE", "queue_size"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "batch_size"),
    ):
        if (number_value := _positive_int(env, name)) is not None:
            values[field] = number_value
    if (delay := _positive_int(env, "OTEL_BSP_SCHEDULE_DELAY")) is not None:
        values["schedule_delay_s"] = delay / 1000


def tracing_from_env(env: Mapping[str, str]) -> TracingConfig | None:
    """The tracing settings of ``env``; None when tracing is not configured."""
    from aigw_sidecar.settings import TracingConfig  # noqa: PLC0415 - only aigw sidecar needs it

    if (_get(env, "OTEL_SDK_DISABLED") or "").lower() in _TRUE:
        return None
    exporter = (_get(env, "OTEL_TRACES_EXPORTER") or "otlp").lower()
    if exporter == "none":
        return None
    if exporter != "otlp":
        raise ValueError(f"OTEL_TRACES_EXPORTER={exporter} is not supported (otlp or none)")
    protocol = (
        _get(env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    if protocol not in _PROTOCOLS:
        raise ValueError(f"OTLP protocol {protocol!r} is not supported ({', '.join(_PROTOCOLS)})")
    endpoint = _endpoint(env, protocol)
    if endpoint is None:
        return None
    values: dict[str, Any] = {"endpoint": endpoint, "protocol": protocol}
    _export_values(env, values)
    _sdk_values(env, values)
    return TracingConfig(**values)


def telemetry_from_env(
    env: Mapping[str, str], *, semconv: str | None, tenant_label_cap: int | None
) -> TelemetryConfig:
    """Tracing from ``env`` plus the GenAI metric settings (flags or ``AIGW_*``)."""
    from aigw_sidecar.settings import TelemetryConfig  # noqa: PLC0415

    values: dict[str, Any] = {"tracing": tracing_from_env(env)}
    if semconv is not None:
        if semconv not in ("latest", "dup"):
            raise ValueError("genai-semconv must be latest or dup")
        values["semconv"] = semconv
    if tenant_label_cap is not None:
        if tenant_label_cap < 1:
            raise ValueError("tenant-label-cap must be a positive integer")
        values["tenant_label_cap"] = tenant_label_cap
    return TelemetryConfig(**values)
