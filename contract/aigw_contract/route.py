"""The ModelRoute spec: which providers and models serve an intent, and how to call them.

A route is what an application names in its request's ``model`` field. It holds weighted
backends (a 1% canary is a backend with weight 1 beside one with weight 99), a fallback
order tried when the chosen backend fails with a retryable error, the retry policy,
timeouts and circuit-breaker thresholds. Backends with weight 0 only serve as fallbacks.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Self

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from ._base import USD, Model, Name, duplicates

__all__ = [
    "MODEL_ALIAS_PATTERN",
    "Backend",
    "CircuitBreaker",
    "ErrorClass",
    "ModelRouteSpec",
    "Pricing",
    "Provider",
    "RetryPolicy",
    "RouteIntent",
    "SecretKeyRef",
    "Timeouts",
]

Label = Annotated[str, StringConstraints(min_length=1, max_length=63)]
MODEL_ALIAS_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$"
ModelAlias = Annotated[str, StringConstraints(pattern=MODEL_ALIAS_PATTERN, max_length=128)]
"""A model-like name an app may send in ``model`` (``gpt-4.1-mini``, ``claude-sonnet-4-5``,
``meta-llama/Llama-3.1-8B-Instruct``): letters, digits and ``. _ : / @ + -``."""
HttpURL = Annotated[str, StringConstraints(pattern=r"^https?://[^\s/?#]+[^\s]*$", max_length=512)]


class Provider(StrEnum):
    """The wire protocol a backend speaks."""

    OPENAI = "openai"
    AZURE_OPENAI = "azure-openai"
    ANTHROPIC = "anthropic"
    OPENAI_COMPATIBLE = "openai-compatible"


class ErrorClass(StrEnum):
    """Normalized upstream failure classes a retry policy may retry."""

    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    UPSTREAM_ERROR = "upstream_error"


class SecretKeyRef(Model):
    """A key of a Secret in the route's namespace. Only the sidecar container mounts it."""

    name: Name
    """Name of the Secret."""
    key: Annotated[str, StringConstraints(pattern=r"^[-._a-zA-Z0-9]+$", max_length=253)]
    """Key within the Secret whose value is the provider credential."""


class Pricing(Model):
    """What a backend costs, used to estimate and account spend."""

    input_per_million_tokens_usd: USD = Field(default=..., alias="inputPerMillionTokensUSD")
    """US dollars per one million prompt (input) tokens, as a decimal string."""
    output_per_million_tokens_usd: USD = Field(default=..., alias="outputPerMillionTokensUSD")
    """US dollars per one million completion (output) tokens, as a decimal string."""
    cached_input_per_million_tokens_usd: USD | None = Field(
        default=None, alias="cachedInputPerMillionTokensUSD"
    )
    """USD per million prompt tokens read from the provider's prompt cache; default: input price."""
    cache_write_per_million_tokens_usd: USD | None = Field(
        default=None, alias="cacheWritePerMillionTokensUSD"
    )
    """USD per million prompt tokens written to the provider's cache; default: input price."""


class Backend(Model):
    """One concrete provider model that can serve the route."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.provider != 'azure-openai' || has(self.apiVersion)",
                    "message": "azure-openai backends need apiVersion",
                }
            ]
        }
    )

    name: Name
    """Name of the backend, unique within the route; fallback entries refer to it."""
    provider: Provider
    """Wire protocol: openai, azure-openai, anthropic or openai-compatible (vLLM, Ollama, ...)."""
    model: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    """Provider model name sent upstream (for azure-openai: the deployment name)."""
    base_url: HttpURL
    """Base URL of the provider API, e.g. https://api.openai.com/v1."""
    region: Label | None = None
    """Region the backend runs in; requests may ask for a region and policies may require one."""
    weight: int = Field(default=1, ge=0, le=1000)
    """Relative share of traffic (canaries: 99 and 1). Weight 0: used only as a fallback."""
    credential_secret_ref: SecretKeyRef | None = None
    """Secret holding the API key. Omit for backends that need no credential."""
    api_version: Annotated[str, StringConstraints(max_length=64)] | None = None
    """azure-openai only: the api-version query parameter."""
    pricing: Pricing
    """Prices used for cost estimates, budgets and the X-AIGW-Cost-USD header."""

    @model_validator(mode="after")
    def _azure_needs_api_version(self) -> Self:
        if self.provider is Provider.AZURE_OPENAI and not self.api_version:
            raise ValueError("azure-openai backends need apiVersion")
        return self


class RouteIntent(Model):
    """What the route offers, so callers can ask for intent instead of a vendor model."""

    family: Label | None = None
    """Model family, e.g. gpt-4o or claude-sonnet."""
    quality_tier: Label | None = None
    """Quality tier this route serves (e.g. high, standard, cheap); X-AIGW-Quality-Tier picks it."""
    regions: list[Label] = Field(default_factory=list, max_length=32)
    """Regions where this route can serve requests (residency)."""


class RetryPolicy(Model):
    """Retries of one request across attempts (on the same or fallback backends)."""

    attempts: int = Field(default=2, ge=1, le=10)
    """Maximum number of attempts in total, the first one included."""
    backoff_base_ms: int = Field(default=100, ge=0, le=60_000)
    """Base of the exponential backoff (full jitter), in milliseconds."""
    backoff_max_ms: int = Field(default=2_000, ge=0, le=300_000)
    """Upper bound of one backoff pause, in milliseconds. A longer Retry-After ends retrying."""
    retry_on: list[ErrorClass] = Field(
        default_factory=lambda: [
            ErrorClass.RATE_LIMITED,
            ErrorClass.UPSTREAM_UNAVAILABLE,
            ErrorClass.TIMEOUT,
        ],
        max_length=4,
    )
    """Error classes worth another attempt; anything else fails fast."""


class Timeouts(Model):
    """Time limits of one upstream attempt; the request deadline bounds them all."""

    connect_ms: int = Field(default=2_000, ge=1, le=60_000)
    """Time to establish a connection to the backend."""
    request_ms: int = Field(default=60_000, ge=1, le=3_600_000)
    """Time for a whole non-streaming attempt, or until the first byte of a stream."""
    idle_ms: int = Field(default=30_000, ge=1, le=3_600_000)
    """Longest pause between two chunks of a stream."""


class CircuitBreaker(Model):
    """Passive health: stop sending to a backend that keeps failing."""

    consecutive_failures: int = Field(default=5, ge=1, le=1000)
    """Failures in a row that open the circuit."""
    open_seconds: int = Field(default=30, ge=1, le=3600)
    """How long an open circuit rejects traffic before one probe request is let through."""


class ModelRouteSpec(Model):
    """Desired state of a ModelRoute: the backends serving one intent and how to call them."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.backends.all(b, self.backends.exists_one(c, c.name == b.name))",
                    "message": "backend names must be unique",
                },
                {
                    "rule": "!has(self.modelAliases) || "
                    "self.modelAliases.all(a, self.modelAliases.exists_one(b, b == a))",
                    "message": "modelAliases must be unique",
                },
                {
                    "rule": "self.backends.exists(b, b.weight > 0)",
                    "message": "at least one backend must have weight > 0",
                },
                {
                    "rule": "!has(self.fallback) || "
                    "self.fallback.all(f, self.backends.exists(b, b.name == f))",
                    "message": "fallback names undeclared backends",
                },
            ]
        }
    )

    intent: RouteIntent = Field(default_factory=RouteIntent)
    """The intent the route serves."""
    model_aliases: list[ModelAlias] = Field(default_factory=list, max_length=16)
    """Other names a request's ``model`` may use for this route, so apps keep their vendor
    model strings (``gpt-4.1-mini``, ``claude-sonnet-4-5``). Unique within the namespace, and
    never the name of another route."""
    backends: list[Backend] = Field(min_length=1, max_length=16)
    """Backends with weights; at least one must have weight > 0."""
    fallback: list[Name] = Field(default_factory=list, max_length=16)
    """Backend names tried in this order when the chosen backend fails retryably."""
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    """Retry policy."""
    timeouts: Timeouts = Field(default_factory=Timeouts)
    """Timeouts of each attempt."""
    circuit_breaker: CircuitBreaker = Field(default_factory=CircuitBreaker)
    """Circuit-breaker thresholds, per backend."""

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Self:
        if repeated := duplicates(self.model_aliases):
            raise ValueError(f"modelAliases must be unique: {', '.join(repeated)}")
        names = [b.name for b in self.backends]
        if repeated := duplicates(names):
            raise ValueError(f"backend names must be unique: {', '.join(repeated)}")
        if not any(b.weight > 0 for b in self.backends):
            raise ValueError("at least one backend must have weight > 0")
        unknown = [f for f in self.fallback if f not in names]
        if unknown:
            raise ValueError(f"fallback names undeclared backends: {', '.join(unknown)}")
        return self
