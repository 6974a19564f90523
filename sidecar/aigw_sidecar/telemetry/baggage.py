"""A caller's W3C baggage, passed on to the provider (``OTEL_PROPAGATORS`` naming ``baggage``).

Parsed and re-encoded with OpenTelemetry's own W3C propagator (its size limits, its handling
of malformed members, its percent-encoding), so what reaches the provider is well formed.
Imported only when the setting is on and a request carries baggage: the one place a traced
sidecar still loads an OpenTelemetry module, and only the API. Baggage is never recorded.
"""

from __future__ import annotations

from opentelemetry import baggage as otel_baggage
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context

__all__ = ["passed_on"]

_BAGGAGE = W3CBaggagePropagator()


def passed_on(header: str | None) -> str | None:
    """The ``baggage`` header to send upstream for the caller's one (None: nothing valid)."""
    if not header:
        return None
    entries = otel_baggage.get_all(_BAGGAGE.extract({"baggage": header}))
    if not entries:
        return None
    context = Context()
    for key, value in entries.items():
        context = otel_baggage.set_baggage(str(key), str(value), context)
    carrier: dict[str, str] = {}
    _BAGGAGE.inject(carrier, context)
    return carrier.get("baggage")
