"""The names the sidecar's telemetry uses: OpenTelemetry GenAI semantic conventions plus ours.

The GenAI conventions left the core semantic-conventions repository after v1.41.0 (May 2026)
for ``open-telemetry/semantic-conventions-genai``; we follow its first release, **v0.1.0**
(:data:`GENAI_SEMCONV_VERSION`, also the schema URL of our instrumentation scope). What that
release changed and we follow (its migration guide): the inference span's type is
``gen_ai.client.inference`` (the span *name* stays ``{gen_ai.operation.name}
{gen_ai.request.model}``); ``gen_ai.client.operation.duration`` became
``gen_ai.client.inference.duration``; ``gen_ai.client.operation.time_to_first_chunk`` became
``gen_ai.client.inference.time_to_first_chunk``; the ``gen_ai.client.token.usage`` histogram
became one counter per token type (``gen_ai.client.inference.usage.*``) plus per-operation
histograms; ``gen_ai.usage.cache_creation.input_tokens`` became
``gen_ai.usage.cache_write.input_tokens``. With ``--genai-semconv dup`` the v1.41 names
(``V141_*``) are emitted as well. Guardrails (in-process here) are ``gen_ai.guardrail.result``
events, as that release says for dedicated in-process guardrail APIs.

Prometheus names are the OpenTelemetry-to-Prometheus translation (dots to underscores, the
unit as a suffix, ``_total`` on counters): what a Collector's Prometheus exporter or
Prometheus's own OTLP receiver would name the same instruments, so a dashboard works with
either path.
"""

from __future__ import annotations

__all__ = [
    "GENAI_SEMCONV_VERSION",
    "PROVIDER_NAMES",
    "SCHEMA_URL",
    "SCOPE",
]

GENAI_SEMCONV_VERSION = "0.1.0"
"""The release of open-telemetry/semantic-conventions-genai whose names we emit."""
SCHEMA_URL = "https://opentelemetry.io/schemas/gen-ai/" + GENAI_SEMCONV_VERSION
SCOPE = "aigw.sidecar"
"""The instrumentation scope of every span the sidecar makes."""

PROVIDER_NAMES = {
    "openai": "openai",
    "azure-openai": "azure.ai.openai",
    "anthropic": "anthropic",
    "openai-compatible": "openai",
}
"""``gen_ai.provider.name`` of each backend provider (an OpenAI-compatible server speaks the
OpenAI format, which is what the attribute discriminates)."""

# Span attributes (GenAI, v0.1.0).
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_TOP_P = "gen_ai.request.top_p"
REQUEST_STREAM = "gen_ai.request.stream"
REQUEST_CHOICES = "gen_ai.request.choice.count"
REQUEST_SEED = "gen_ai.request.seed"
REQUEST_STOP = "gen_ai.request.stop_sequences"
REQUEST_FREQUENCY_PENALTY = "gen_ai.request.frequency_penalty"
REQUEST_PRESENCE_PENALTY = "gen_ai.request.presence_penalty"
RESPONSE_ID = "gen_ai.response.id"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_FINISH = "gen_ai.response.finish_reasons"
RESPONSE_TTFC = "gen_ai.response.time_to_first_chunk"
USAGE_INPUT = "gen_ai.usage.input_tokens"
USAGE_OUTPUT = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ = "gen_ai.usage.cache_read.input_tokens"
USAGE_CACHE_WRITE = "gen_ai.usage.cache_write.input_tokens"
V141_USAGE_CACHE_CREATION = "gen_ai.usage.cache_creation.input_tokens"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"

# The guardrail result event (v0.1.0).
GUARDRAIL_EVENT = "gen_ai.guardrail.result"
GUARDRAIL_COMPONENT = "gen_ai.guardrail.component.name"
GUARDRAIL_POLICY_ID = "gen_ai.guardrail.policy.id"
GUARDRAIL_POLICY_VERSION = "gen_ai.guardrail.policy.version"
GUARDRAIL_RULE = "gen_ai.guardrail.policy.rule.id"
GUARDRAIL_RESULT_TYPE = "gen_ai.guardrail.result.type"
GUARDRAIL_RESULT_VALUE = "gen_ai.guardrail.result.value"
GUARDRAIL_SOURCE = "gen_ai.guardrail.source"
GUARDRAIL_CATEGORY = "gen_ai.guardrail.risk.category"

# HTTP server span attributes (stable HTTP conventions).
HTTP_METHOD = "http.request.method"
HTTP_ROUTE = "http.route"
HTTP_STATUS = "http.response.status_code"
URL_PATH = "url.path"

# Ours.
AIGW_REQUEST_ID = "aigw.request.id"
AIGW_TENANT = "aigw.tenant"
AIGW_USE_CASE = "aigw.use_case"
AIGW_APP = "aigw.app"
AIGW_POLICY = "aigw.policy"
AIGW_POLICY_VERSION = "aigw.policy.version"
AIGW_MODE = "aigw.mode"
AIGW_ROUTE = "aigw.route"
AIGW_BACKEND = "aigw.backend"
AIGW_CACHE = "aigw.cache"
AIGW_ATTEMPTS = "aigw.attempts"
AIGW_ATTEMPT = "aigw.attempt"
AIGW_ATTEMPT_OUTCOME = "aigw.attempt.outcome"
AIGW_COST = "aigw.cost_usd"
AIGW_DECISIONS = "aigw.decisions"
AIGW_ANSWERED_BY = "aigw.answered_by"
AIGW_ERROR_CODE = "aigw.error.code"
AIGW_USAGE_ESTIMATED = "aigw.usage.estimated"
AIGW_CONTENT_TRUNCATED = "aigw.content.truncated"

OPERATIONS = {"chat": "chat", "embeddings": "embeddings", "count_tokens": "count_tokens"}
"""``gen_ai.operation.name`` of each sidecar operation (``count_tokens`` has no predefined
value; the conventions allow a custom one)."""
