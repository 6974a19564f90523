"""Every aigw row of the benchmark, and the steps each one switches on: the one place to edit.

The sidecar's cost is read as differences of rows of one run: ``aigw`` (the least policy
work a bundle allows), one row per pipeline step (``aigw`` plus that step alone), a cache
hit, and ``aigw-full`` with every step on. A step's marginal cost is its row minus ``aigw``;
what the steps cost together beyond the sum of their parts is ``aigw-full`` minus them all.

A step is three things, all here:

* what it adds to the bench policy (``use_case``: fields of the use case) and route
  (``route``: fields of the ModelRoute spec);
* the sidecar flags it needs (``flags``: the first of the accepted spellings that
  ``aigw sidecar --help`` lists is used; none listed means the feature is not built);
* a probe (``probes.py``, by step key) that shows the step acted, run before measuring.

Whether a step is measured, ``n/a: not built yet``, or a loud failure:

1. a flag it needs is missing from ``aigw sidecar --help``: not built yet;
2. the sidecar's ``/aigw/status`` warns about one of its ``fields`` (every accepted setting
   either acts or is warned about: the contract's field-status table): not built yet;
3. otherwise its probe must pass. A step that claims to exist and does not act is a
   defect: the row FAILS and the bench exits non-zero. A step claims to exist when its flag
   exists, when the sidecar publishes which settings it does not enforce and did not name
   this step's, or when it is marked ``landed`` here (for sidecars older than the field
   status). Otherwise a failed probe means: not built yet.

**When your feature lands**, make its step's config match what you built (the field values,
the flag's spelling), mark the field enforced in the contract's field-status table (which
clears the sidecar's warning), and run ``python bench --quick --cases
direct,passthrough,aigw,aigw-<step>``: the row must be measured, not n/a. The full row is
measured once every step is; until then ``aigw-built`` measures the steps that are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MINIMAL_ROUTE", "MINIMAL_USE_CASE", "ROWS", "STEPS", "Flag", "Row", "Step", "row"]

Json = dict[str, Any]


@dataclass(frozen=True)
class Flag:
    """A sidecar flag a step needs, by its accepted spellings (``--flag``, or ``env:VAR`` for
    an environment variable that ``aigw sidecar --help`` names); ``value`` names what the
    harness provides for it:
    ``redis`` (a redis:// URL of the row's own redis-server), ``audit`` (a file path in the
    run's temp dir), ``otlp`` (the base URL of the row's own OTLP/HTTP Collector receiver),
    ``otlp-grpc`` (its host:port for OTLP/gRPC), or a literal prefixed with ``=``."""

    names: tuple[str, ...]
    value: str


@dataclass(frozen=True)
class Step:
    """One pipeline step the benchmark can switch on (see the module docstring)."""

    key: str
    title: str
    fields: tuple[str, ...]
    """Policy/route fields it configures: a status warning naming one means not built."""
    use_case: Mapping[str, Any] = field(default_factory=dict)
    route: Mapping[str, Any] = field(default_factory=dict)
    flags: tuple[Flag, ...] = ()
    landed: bool = False
    """The feature is on main: a failed probe is then a failure, not 'not built yet'."""


MINIMAL_USE_CASE: Mapping[str, Any] = {
    "redaction": {"profile": "off"},
    "promptInjection": {"mode": "off"},
    "cache": {"exact": {"enabled": False}},
}
"""What ``aigw`` sets explicitly so that no default switches a step on (defaults redact
secrets and warn on prompt injection)."""
MINIMAL_ROUTE: Mapping[str, Any] = {"retry": {"attempts": 1}}
"""One attempt: no retry bookkeeping in the minimal row."""

_OTLP_SPELLINGS = (
    "--otlp-endpoint",
    "--otel-endpoint",
    "--otlp-traces-endpoint",
    "env:OTEL_EXPORTER_OTLP_ENDPOINT",
)
_NEVER = {"requestsPerMinute": 100_000_000, "tokensPerMinute": 1_000_000_000}

STEPS: Mapping[str, Step] = {
    s.key: s
    for s in (
        Step(
            "limits",
            "limits and budgets on Redis",
            ("rateLimits", "budgets", "limits"),
            use_case={
                "limits": {"maxTokens": 1024, "maxCostUSD": "1.00", "maxLatencyMs": 30000},
                "rateLimits": {**_NEVER, "concurrency": 1024},
                "budgets": [
                    {"name": "daily-tokens", "period": "day", "tokens": 1_000_000_000_000},
                    {"name": "monthly-spend", "period": "month", "costUSD": "1000000.00"},
                ],
            },
            flags=(Flag(("--redis-url",), "redis"),),
            landed=True,
        ),
        Step(
            "cache",
            "exact cache",
            ("cache.exact", "exact cache"),
            use_case={"cache": {"exact": {"enabled": True, "ttlSeconds": 600}}},
            landed=True,
        ),
        Step(
            "redaction",
            "redaction in and out",
            ("redaction",),
            use_case={"redaction": {"profile": "strict", "mode": "mask"}},
            landed=True,
        ),
        Step(
            "injection",
            "prompt-injection checks",
            ("promptInjection",),
            use_case={"promptInjection": {"mode": "block"}},
            landed=True,
        ),
        Step(
            "audit",
            "audit records to a file",
            ("audit",),
            flags=(Flag(("--audit-file", "--audit-path", "--audit-log"), "audit"),),
        ),
        Step(
            "tracing",
            "tracing to a local Collector",
            (),
            flags=(Flag(_OTLP_SPELLINGS, "otlp"),),
        ),
        Step(
            "retries",
            "retries, fallback and breakers configured",
            ("retry", "circuitBreaker", "fallback"),
            route={
                "retry": {
                    "attempts": 3,
                    "backoffBaseMs": 20,
                    "backoffMaxMs": 200,
                    "retryOn": ["rate_limited", "upstream_unavailable", "timeout"],
                },
                "circuitBreaker": {"consecutiveFailures": 5, "openSeconds": 30},
                "fallback": ["fake-fallback"],
            },
        ),
    )
}


@dataclass(frozen=True)
class Row:
    """One aigw target: the steps it switches on and the load it gets."""

    key: str
    label: str
    steps: tuple[str, ...]
    unique_bodies: bool = True
    """False: one fixed body for every request (a cache hit after the first)."""
    note: str = ""

    def use_case(self) -> Json:
        merged: Json = dict(MINIMAL_USE_CASE)
        for key in self.steps:
            merged.update(STEPS[key].use_case)
        return merged

    def route(self) -> Json:
        merged: Json = dict(MINIMAL_ROUTE)
        for key in self.steps:
            merged.update(STEPS[key].route)
        return merged

    def flags(self) -> tuple[Flag, ...]:
        return tuple(f for key in self.steps for f in STEPS[key].flags)


ALL_STEPS = tuple(STEPS)
ROWS: Mapping[str, Row] = {
    r.key: r
    for r in (
        Row("aigw", "aigw minimal policy", ()),
        *(Row(f"aigw-{s.key}", f"aigw + {s.title}", (s.key,)) for s in STEPS.values()),
        Row(
            "aigw-cache-hit",
            "aigw cache hit",
            ("cache",),
            unique_bodies=False,
            note="one fixed body: every request after the first is served from the cache",
        ),
        Row("aigw-full", "aigw full pipeline (every step)", ALL_STEPS),
        Row(
            "aigw-full-hit",
            "aigw full pipeline, cache hit",
            ALL_STEPS,
            unique_bodies=False,
            note="every step on and one fixed body: the full pipeline's cost of a hit (the"
            " cache on the row's Redis)",
        ),
    )
}
"""Every aigw row. ``aigw-cache`` is the cache-miss row (every request differs)."""


def row(key: str) -> Row:
    """The row named ``key``; ``aigw-built`` is computed by the harness, not listed here."""
    return ROWS[key]
