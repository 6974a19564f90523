"""The AIPolicy spec: who may call which routes, for which use cases, within which limits.

A policy governs the pods its selector matches in its namespace. It grants tenants and use
cases; each use case says which routes it may use, which tools and data classifications are
allowed, per-request limits, rate limits, periodic budgets, cache, redaction,
prompt-injection and audit settings. The enforcement mode decides whether a violation is
only recorded (observe), allowed with a warning (warn) or blocked (enforce).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Self

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from ._base import USD, Model, Name, duplicates
from .patterns import MAX_PATTERN_CHARS, check_pattern
from .route import Provider

__all__ = [
    "AIPolicySpec",
    "AuditQueueFull",
    "AuditSettings",
    "Budget",
    "BudgetPeriod",
    "CacheScope",
    "CacheSettings",
    "CustomPattern",
    "DataClassification",
    "EnforcementMode",
    "ExactCache",
    "ExhaustionAction",
    "FailMode",
    "Idempotency",
    "InFlightAction",
    "LabelSelector",
    "LabelSelectorRequirement",
    "Leasing",
    "LimitScope",
    "PromptInjection",
    "PromptInjectionMode",
    "RateLimits",
    "Redaction",
    "RedactionMode",
    "RedactionProfile",
    "RequestLimits",
    "ResidencyRule",
    "SemanticCache",
    "TelemetrySettings",
    "UseCase",
]

LabelKey = Annotated[str, StringConstraints(min_length=1, max_length=317)]
Region = Annotated[str, StringConstraints(min_length=1, max_length=63)]
LabelValue = Annotated[str, StringConstraints(max_length=63)]
ToolName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9_.:-]{1,64}$")]


class EnforcementMode(StrEnum):
    """What happens when a request violates the policy."""

    OBSERVE = "observe"
    WARN = "warn"
    ENFORCE = "enforce"


class FailMode(StrEnum):
    """What to do when shared state (Redis) cannot be reached."""

    OPEN = "open"
    CLOSED = "closed"


class DataClassification(StrEnum):
    """Sensitivity of the data in a request (header X-AIGW-Data-Classification)."""

    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    RESTRICTED = "restricted"


class LimitScope(StrEnum):
    """Which counter a limit or budget shares: per tenant, per app or per use case."""

    TENANT = "tenant"
    APP = "app"
    USE_CASE = "useCase"


class BudgetPeriod(StrEnum):
    """Calendar-aligned budget window, in UTC (weeks start on Monday)."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class ExhaustionAction(StrEnum):
    """What happens once a budget is spent."""

    DENY = "deny"
    FALLBACK = "fallback"


class RedactionProfile(StrEnum):
    """Which detectors redaction runs."""

    OFF = "off"
    SECRETS = "secrets"
    PII = "pii"
    STRICT = "strict"


class RedactionMode(StrEnum):
    """What redaction does with a match."""

    MASK = "mask"
    HASH = "hash"
    BLOCK = "block"


class PromptInjectionMode(StrEnum):
    """What prompt-injection detection does with a suspicious message."""

    OFF = "off"
    WARN = "warn"
    BLOCK = "block"


class InFlightAction(StrEnum):
    """What a request gets while the first request with its Idempotency-Key is in flight."""

    WAIT = "wait"
    CONFLICT = "conflict"


class LabelSelectorRequirement(Model):
    """A label selector requirement, as in Kubernetes."""

    key: LabelKey
    """The label key."""
    operator: Annotated[str, StringConstraints(pattern=r"^(In|NotIn|Exists|DoesNotExist)$")]
    """One of In, NotIn, Exists, DoesNotExist."""
    values: list[LabelValue] = Field(default_factory=list, max_length=64)
    """Values for In and NotIn; empty for Exists and DoesNotExist."""

    @model_validator(mode="after")
    def _values_match_operator(self) -> Self:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs values")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no values")
        return self


class LabelSelector(Model):
    """Which pods a policy governs. Empty selects every pod in the namespace."""

    match_labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=64)
    """Labels a pod must carry, all of them."""
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list, max_length=32)
    """Requirements a pod's labels must meet, all of them."""


class RequestLimits(Model):
    """Per-request constraints. Request headers may tighten them, never loosen them."""

    max_tokens: int | None = Field(default=None, ge=1, le=10_000_000)
    """Upper bound of output tokens; a larger or missing max_tokens is clamped to it."""
    max_cost_usd: USD | None = None
    """Largest estimated cost of one request (prompt + max output at the backend's prices)."""
    max_latency_ms: int | None = Field(default=None, ge=1, le=3_600_000)
    """Deadline of the whole request, retries and fallbacks included."""


class RateLimits(Model):
    """Short-window limits, enforced across every sidecar sharing the state store."""

    requests_per_minute: int | None = Field(default=None, ge=1, le=100_000_000)
    """Requests per minute."""
    tokens_per_minute: int | None = Field(default=None, ge=1, le=10_000_000_000)
    """Tokens (prompt + output) per minute; reserved before the call, reconciled after."""
    concurrency: int | None = Field(default=None, ge=1, le=1_000_000)
    """Requests in flight at once."""
    scope: LimitScope = LimitScope.USE_CASE
    """Which counter the limits share: tenant, app or useCase."""


class Budget(Model):
    """A periodic spending cap in tokens and/or money."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.tokens) || has(self.costUSD)",
                    "message": "a budget needs tokens or costUSD",
                },
                {
                    "rule": "self.onExhausted != 'fallback' || has(self.fallbackRoute)",
                    "message": "onExhausted: fallback needs fallbackRoute",
                },
                {
                    "rule": "self.onExhausted == 'fallback' || !has(self.fallbackRoute)",
                    "message": "fallbackRoute is only used with onExhausted: fallback",
                },
            ]
        }
    )

    name: Name
    """Name of the budget, unique within the use case (it names the counter)."""
    period: BudgetPeriod
    """Window: day, week or month, calendar-aligned in UTC."""
    tokens: int | None = Field(default=None, ge=1, le=10**15)
    """Tokens (prompt + output) allowed per period."""
    cost_usd: USD | None = None
    """US dollars allowed per period, as a decimal string."""
    scope: LimitScope = LimitScope.TENANT
    """Which counter the budget shares: tenant, app or useCase."""
    on_exhausted: ExhaustionAction = ExhaustionAction.DENY
    """deny (429 budget_exceeded) or fallback to fallbackRoute."""
    fallback_route: Name | None = None
    """The ModelRoute served once the budget is spent (onExhausted: fallback)."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.tokens is None and self.cost_usd is None:
            raise ValueError("a budget needs tokens or costUSD")
        if self.on_exhausted is ExhaustionAction.FALLBACK and not self.fallback_route:
            raise ValueError("onExhausted: fallback needs fallbackRoute")
        if self.on_exhausted is ExhaustionAction.DENY and self.fallback_route:
            raise ValueError("fallbackRoute is only used with onExhausted: fallback")
        return self


MAX_BLOCK_PERCENT = 10.0
"""Largest block a sidecar may lease, in percent of a limit (see :class:`Leasing`)."""


class Leasing(Model):
    """Hot-tenant mode: each sidecar leases blocks of this use case's limits and budgets.

    Instead of one shared-state round trip per call, a sidecar takes a block of every
    requests/min, tokens/min and budget counter of the use case (``blockPercent`` of each
    limit) with one reservation, admits calls against it in its own memory, and returns
    what is left when the block is replaced, unused for a lease period, at a bundle reload,
    at a budget window's end and at shutdown. Budgets stay exact (a block is counted when
    it is leased); a rate limit may admit up to ``pods x block`` more than its limit over a
    minute (docs/governance.md states the bound). Concurrency is never leased. Only in
    enforce mode; without shared state (one pod) it changes nothing.
    """

    block_percent: float = Field(ge=0.01, le=MAX_BLOCK_PERCENT)
    """Size of one block, in percent of each limit (0.01 to 10; rounded down to whole
    requests, tokens or nano-USD, at least 1): the most a sidecar holds unspent per counter."""


class CacheScope(StrEnum):
    """Who shares the entries of an exact cache (``docs/cache.md``)."""

    USE_CASE = "useCase"
    """One tenant's one use case (the default): nothing is shared beyond it."""
    TENANT = "tenant"
    """The tenant's use cases of this policy that also say ``tenant``."""
    SHARED = "shared"
    """Every tenant calling this use case: an explicit opt-in to share answers (and hits)
    across tenants, for public, non-personal content only."""


class ExactCache(Model):
    """Exact-match response cache (key over every output-affecting parameter, per tenant)."""

    enabled: bool = False
    """Whether exact caching is on."""
    ttl_seconds: int = Field(default=300, ge=1, le=604_800)
    """How long a cached response is served."""
    scope: CacheScope = CacheScope.USE_CASE
    """Who shares entries: useCase (one tenant's use case), tenant, or shared (every tenant)."""


class SemanticCache(Model):
    """Opt-in cache of answers to similar prompts (one tenant's use case, never shared)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!self.enabled || has(self.embeddingsRoute)",
                    "message": "a semantic cache needs embeddingsRoute",
                }
            ]
        }
    )

    enabled: bool = False
    """Whether semantic caching is on."""
    threshold: float = Field(default=0.95, ge=0.5, le=1.0)
    """Minimum cosine similarity for a hit."""
    ttl_seconds: int = Field(default=300, ge=1, le=604_800)
    """How long a cached response is served."""
    embeddings_route: Name | None = None
    """The ModelRoute (one of the use case's routes) that embeds prompts for the lookup."""

    @model_validator(mode="after")
    def _has_route(self) -> Self:
        if self.enabled and self.embeddings_route is None:
            raise ValueError("a semantic cache needs embeddingsRoute")
        return self


class CacheSettings(Model):
    """Response caching. Never applies to restricted data."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.excludedClassifications) || "
                    "'restricted' in self.excludedClassifications",
                    "message": "excludedClassifications must include restricted",
                }
            ]
        }
    )

    exact: ExactCache = Field(default_factory=ExactCache)
    """Exact-match cache."""
    semantic: SemanticCache = Field(default_factory=SemanticCache)
    """Semantic cache."""
    excluded_classifications: list[DataClassification] = Field(
        default_factory=lambda: [DataClassification.CONFIDENTIAL, DataClassification.RESTRICTED],
        min_length=1,
        max_length=4,
        json_schema_extra={
            "x-kubernetes-list-type": "set",
            "default": [DataClassification.CONFIDENTIAL.value, DataClassification.RESTRICTED.value],
        },
    )
    """Data classifications never cached (read or written); must include restricted."""

    @model_validator(mode="after")
    def _restricted_never_cached(self) -> Self:
        if DataClassification.RESTRICTED not in self.excluded_classifications:
            raise ValueError("excludedClassifications must include restricted")
        if repeated := duplicates([c.value for c in self.excluded_classifications]):
            raise ValueError(f"excludedClassifications repeats {', '.join(repeated)}")
        return self


class CustomPattern(Model):
    """A policy's own detector: a bounded regular expression (see docs/inspection.md)."""

    name: Name
    """Name of the detector, unique within the use case (reported with each finding)."""
    pattern: Annotated[str, StringConstraints(min_length=1, max_length=MAX_PATTERN_CHARS)]
    """Python regex: at most 128 characters per match, no backreferences, no nested repeats."""
    category: Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{0,31}$")] | None = None
    """Placeholder category such as EMPLOYEE_ID ([EMPLOYEE_ID_1]); default: the name in capitals."""

    @model_validator(mode="after")
    def _safe_pattern(self) -> Self:
        if (problem := check_pattern(self.pattern)) is not None:
            raise ValueError(f"customPatterns {self.name}: {problem}")
        return self

    @property
    def placeholder_category(self) -> str:
        return self.category or self.name.upper().replace("-", "_")


class Redaction(Model):
    """Redaction of secrets and personal data in prompts and answers."""

    profile: RedactionProfile = RedactionProfile.SECRETS
    """Detectors to run: off, secrets, pii or strict."""
    mode: RedactionMode = RedactionMode.MASK
    """mask, hash, or block the request."""
    custom_patterns: list[CustomPattern] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """This use case's own detectors, run beside the profile's (also when the profile is off)."""
    restore_in_answer: bool = False
    """mask mode: the prompt's placeholders ([EMAIL_1]) in the answer become the caller's values."""

    @model_validator(mode="after")
    def _unique_pattern_names(self) -> Self:
        if repeated := duplicates([p.name for p in self.custom_patterns]):
            raise ValueError(f"customPatterns names must be unique: {', '.join(repeated)}")
        return self


class PromptInjection(Model):
    """Prompt-injection checks on user and retrieved content."""

    mode: PromptInjectionMode = PromptInjectionMode.WARN
    """off, warn or block."""


class AuditQueueFull(StrEnum):
    """What a sidecar does with a record when its audit queue is full."""

    BACKPRESSURE = "backpressure"
    """The call waits for room in the queue before it ends: no record is lost."""
    DROP = "drop"
    """The record is dropped and counted (metric, and ``dropped`` in the next record)."""


class AuditSettings(Model):
    """What the audit record keeps."""

    store_prompts: bool = False
    """Whether prompts and answers (after redaction) are stored in audit records."""
    retention_days: int = Field(default=30, ge=1, le=3650)
    """Days audit records are kept: carried in each record, applied to the sidecar's files."""
    on_queue_full: AuditQueueFull = AuditQueueFull.BACKPRESSURE
    """Audit queue full: backpressure (the call waits, none lost) or drop (dropped, counted)."""


class TelemetrySettings(Model):
    """What this use case's traces may carry beyond the call's facts (docs/telemetry.md)."""

    capture_content: bool = False
    """Whether traces carry the prompt and answer (after redaction, size-bounded) as the
    GenAI input/output message attributes of its inference spans."""


class Idempotency(Model):
    """Idempotency-Key handling, with the IETF httpapi draft's semantics.

    A request with the same key and the same body (per tenant and use case) within the TTL
    gets the first request's result (JSON or a replayed stream) without an upstream call or
    a second budget charge, marked ``X-AIGW-Idempotent-Replay: true``; the same key with
    another body is a 422; a duplicate that arrives while the first is in flight waits for
    it (bounded) or gets a 409.
    """

    enabled: bool = True
    """Whether Idempotency-Key is honoured (false: the header is ignored)."""
    ttl_seconds: int = Field(default=86_400, ge=1, le=604_800)
    """How long a result is kept and replayed."""
    in_flight: InFlightAction = InFlightAction.WAIT
    """A duplicate of a request still in flight: wait for its result, or 409 at once."""
    wait_ms: int = Field(default=30_000, ge=1, le=600_000)
    """Longest wait for the first request's result (never past the request's deadline);
    then 409."""
    store_failures: bool = False
    """Also keep and replay a failed result (not a 429 or 503: those mean "try later");
    by default a failure is forgotten and the next duplicate tries again."""


class UseCase(Model):
    """One use case a workload may claim (header X-AIGW-Use-Case), and its rules."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.cache) || !has(self.cache.semantic) || "
                    "!has(self.cache.semantic.embeddingsRoute) || "
                    "self.cache.semantic.embeddingsRoute in self.routes",
                    "message": "cache.semantic.embeddingsRoute must be one of routes",
                }
            ]
        }
    )

    name: Name
    """Name of the use case, unique within the policy."""
    routes: list[Name] = Field(min_length=1, max_length=64)
    """ModelRoutes this use case may call (by name)."""
    quality_tier: Annotated[str, StringConstraints(min_length=1, max_length=63)] | None = None
    """Default quality tier when the request names no route."""
    tools: list[ToolName] | None = Field(default=None, max_length=256)
    """Function/tool names the request may declare. Omit to allow any; [] allows none."""
    data_classifications: list[DataClassification] = Field(
        default_factory=lambda: [DataClassification.PUBLIC, DataClassification.INTERNAL],
        max_length=4,
    )
    """Data classifications this use case may send."""
    limits: RequestLimits = Field(default_factory=RequestLimits)
    """Per-request limits."""
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    """Requests/min, tokens/min and concurrency."""
    budgets: list[Budget] = Field(default_factory=list, max_length=8)
    """Periodic token and cost budgets."""
    cache: CacheSettings = Field(default_factory=CacheSettings)
    """Response caching."""
    redaction: Redaction = Field(default_factory=Redaction)
    """Redaction of prompts and answers."""
    prompt_injection: PromptInjection = Field(default_factory=PromptInjection)
    """Prompt-injection checks."""
    audit: AuditSettings = Field(default_factory=AuditSettings)
    """Audit record settings."""
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    """What traces may carry (prompt and answer content: off by default)."""
    idempotency: Idempotency = Field(default_factory=Idempotency)
    """Idempotency-Key handling."""
    leasing: Leasing | None = None
    """Hot-tenant mode: sidecars lease blocks of the rate limits and budgets and count
    locally (omit: every call reserves in shared state)."""

    @model_validator(mode="after")
    def _unique_budget_names(self) -> Self:
        names = [b.name for b in self.budgets]
        if repeated := duplicates(names):
            raise ValueError(f"budget names must be unique: {', '.join(repeated)}")
        embed = self.cache.semantic.embeddings_route
        if embed is not None and embed not in self.routes:
            raise ValueError(f"cache.semantic.embeddingsRoute {embed!r} must be one of routes")
        return self


class ResidencyRule(Model):
    """Where data of some classifications may be sent: backend regions and/or providers.

    Every rule naming the request's data classification applies (all of them): a backend
    is used only if its ``region`` is one of ``regions`` (when given) and its ``provider``
    one of ``providers`` (when given; ``openai-compatible`` is how self-hosted models are
    reached). Fallbacks included; with no backend left the request is refused with
    ``permission_denied`` naming the rule.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "size(self.regions) > 0 || size(self.providers) > 0",
                    "message": "a residency rule needs regions or providers",
                }
            ]
        }
    )

    name: Name
    """Name of the rule, unique within the policy (refusals name it)."""
    data_classifications: list[DataClassification] = Field(min_length=1, max_length=4)
    """The classifications (X-AIGW-Data-Classification) the rule applies to."""
    regions: list[Region] = Field(default_factory=list, max_length=32)
    """Backend regions data of these classifications may go to (empty: any region)."""
    providers: list[Provider] = Field(default_factory=list, max_length=4)
    """Backend providers data of these classifications may go to (empty: any provider)."""

    @model_validator(mode="after")
    def _restricts_something(self) -> Self:
        if not self.regions and not self.providers:
            raise ValueError("a residency rule needs regions or providers")
        return self


class AIPolicySpec(Model):
    """Desired state of an AIPolicy."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.useCases.all(u, self.useCases.exists_one(v, v.name == u.name))",
                    "message": "use case names must be unique",
                },
                {
                    "rule": "!has(self.defaultUseCase) || "
                    "self.useCases.exists(u, u.name == self.defaultUseCase)",
                    "message": "defaultUseCase must name one of useCases",
                },
                {
                    "rule": "!has(self.residency) || "
                    "self.residency.all(r, self.residency.exists_one(s, s.name == r.name))",
                    "message": "residency rule names must be unique",
                },
            ]
        }
    )

    mode: EnforcementMode = EnforcementMode.ENFORCE
    """observe (record only), warn (allow with X-AIGW-Warning) or enforce (block)."""
    selector: LabelSelector = Field(default_factory=LabelSelector)
    """Pods this policy governs; the most specific matching policy wins."""
    tenant: Name | None = None
    """Default tenant of requests; defaults to the namespace."""
    additional_tenants: list[Name] = Field(default_factory=list, max_length=64)
    """Other tenants a request may claim with X-AIGW-Tenant."""
    default_use_case: Name | None = None
    """Use case of requests that name none; defaults to the first use case."""
    use_cases: list[UseCase] = Field(min_length=1, max_length=64)
    """Use cases this policy grants."""
    fail_mode: FailMode = FailMode.CLOSED
    """When shared state is unreachable: open (allow, count locally) or closed (deny)."""
    residency: list[ResidencyRule] = Field(default_factory=list, max_length=16)
    """Per data classification, the backend regions and providers data may reach."""

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Self:
        names = [u.name for u in self.use_cases]
        if repeated := duplicates(names):
            raise ValueError(f"use case names must be unique: {', '.join(repeated)}")
        if self.default_use_case is not None and self.default_use_case not in names:
            raise ValueError(f"defaultUseCase {self.default_use_case!r} is not one of useCases")
        if repeated := duplicates([r.name for r in self.residency]):
            raise ValueError(f"residency rule names must be unique: {', '.join(repeated)}")
        return self
