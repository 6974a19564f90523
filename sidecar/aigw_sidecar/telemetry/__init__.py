"""Telemetry of the sidecar: GenAI metrics (always on) and OpenTelemetry traces (optional).

- :mod:`.semconv`: every name we emit and the GenAI semantic-conventions version we follow;
- :mod:`.genai`: the GenAI client metrics and the tenant families (``prometheus_client``);
- :mod:`.attributes`: span attributes and guardrail events of a request (pure functions);
- :mod:`.export`: the OpenTelemetry SDK, sampler and the bounded export queue. Imported
  only when tracing is configured, like :mod:`aigw_sidecar.steps.trace`: nothing here
  imports OpenTelemetry at import time.

See docs/telemetry.md.
"""

from __future__ import annotations

from .genai import OTHER, GenAiMetrics, InferenceChildren
from .semconv import GENAI_SEMCONV_VERSION

__all__ = ["GENAI_SEMCONV_VERSION", "OTHER", "GenAiMetrics", "InferenceChildren"]
