# ruff: noqa: E501 - one line per field, so that flipping a field's status is a one-line diff
"""Which fields of AIPolicy and ModelRoute are enforced, by what, proven by which test.

This table is the one source of truth for "every accepted field has an effect". Every leaf
field of both specs (``aigw_contract.fields``) has exactly one entry, by the path users write
(``spec.useCases[].cache.exact.enabled``). An entry is either

- ``Enforced(by, test)``: the module that gives the field its effect, and the test that
  proves it (``tests/<file>.py::<test function>``, which must exist); or
- ``NotEnforced(noop=..., inert_when=...)``: accepted by the schema but not enforced yet.
  Until it is, ``aigw validate``, the operator (a ``Warning`` condition and Event) and the
  sidecar (``warnings`` in ``/aigw/status``) warn about every resource that sets it to a
  value that would do something (see ``enforcement`` for the rule).

``tests/contract/test_field_status.py`` fails when a model field has no entry, when an entry
names no field, when an ``Enforced`` test or module does not exist; ``docs/policy-reference.md``
is generated from this table (``aigw docs policy-reference -o docs/policy-reference.md``) and a
test fails when it is stale.

**When your feature makes a field enforced**: replace its ``NotEnforced(...)`` with
``Enforced("<module>", "tests/<file>.py::<test>")`` (one line), then regenerate the reference.
**When you add a field**: add its line here (``NotEnforced`` until a test proves it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["FIELD_STATUS", "Enforced", "FieldStatus", "NotEnforced"]


@dataclass(frozen=True, slots=True)
class Enforced:
    """The field has an effect: ``by`` gives it, ``test`` proves it."""

    by: str
    """Dotted name of the module that enforces the field."""
    test: str
    """``tests/<file>.py::<test>`` (or ``::<Class>::<test>``): the test that proves it."""


@dataclass(frozen=True, slots=True)
class NotEnforced:
    """Accepted by the schema, not enforced yet: setting it warns, unless it does nothing."""

    noop: tuple[Any, ...] = ()
    """JSON values that do nothing even once the field is enforced (``false``, ``off``, an
    empty list): a resource with one of them is not warned about."""
    inert_when: tuple[str, Any] | None = None
    """``(sibling, value)``: the field does nothing while its sibling field (same object)
    has this value, e.g. a cache's ``ttlSeconds`` while ``enabled`` is false."""
    note: str = ""
    """What will enforce it, for the reference."""


FieldStatus = Enforced | NotEnforced

# fmt: off
FIELD_STATUS: dict[str, dict[str, FieldStatus]] = {
    "AIPolicy": {
        "spec.mode": Enforced("aigw_sidecar.governance.governor", "tests/governance/test_limits.py::test_observe_and_warn_never_block_and_record_each_decision"),
        "spec.selector.matchLabels": Enforced("aigw_sidecar.governance.identity", "tests/governance/test_admission.py::test_label_selector_semantics"),
        "spec.selector.matchExpressions[].key": Enforced("aigw_sidecar.governance.identity", "tests/governance/test_admission.py::test_label_selector_semantics"),
        "spec.selector.matchExpressions[].operator": Enforced("aigw_sidecar.governance.identity", "tests/governance/test_admission.py::test_label_selector_semantics"),
        "spec.selector.matchExpressions[].values": Enforced("aigw_sidecar.governance.identity", "tests/governance/test_admission.py::test_label_selector_semantics"),
        "spec.tenant": Enforced("aigw_sidecar.governance.identity", "tests/governance/test_admission.py::test_most_specific_policy_wins"),
        "spec.additionalTenants": Enforced("aigw_sidecar.governance.identity", "tests/governance/test_admission.py::test_claims_only_granted_tenants_and_use_cases"),
        "spec.defaultUseCase": Enforced("aigw_sidecar.governance.identity", "tests/governance/test_field_effects.py::test_default_use_case_serves_requests_that_name_none"),
        "spec.useCases[].name": Enforced("aigw_sidecar.governance.identity", "tests/governance/test_admission.py::test_claims_only_granted_tenants_and_use_cases"),
        "spec.useCases[].routes": Enforced("aigw_sidecar.governance.authorize", "tests/governance/test_admission.py::test_authorization_allowlists"),
        "spec.useCases[].qualityTier": Enforced("aigw_sidecar.steps.route", "tests/sidecar/test_routing.py::test_quality_tier_selects_among_the_use_case_routes"),
        "spec.useCases[].tools": Enforced("aigw_sidecar.steps.inspect_stream", "tests/sidecar/test_inspection_egress.py::test_a_tool_outside_the_allowlist_is_blocked_in_every_wire_form"),
        "spec.useCases[].dataClassifications": Enforced("aigw_sidecar.governance.authorize", "tests/governance/test_admission.py::test_authorization_allowlists"),
        "spec.useCases[].limits.maxTokens": Enforced("aigw_sidecar.governance.constraints", "tests/governance/test_sidecar_governance.py::test_max_tokens_clamped_and_cost_limit"),
        "spec.useCases[].limits.maxCostUSD": Enforced("aigw_sidecar.governance.constraints", "tests/governance/test_admission.py::test_policy_cost_limit"),
        "spec.useCases[].limits.maxLatencyMs": Enforced("aigw_sidecar.steps.govern", "tests/sidecar/test_field_effects.py::test_max_latency_bounds_the_upstream_call"),
        "spec.useCases[].rateLimits.requestsPerMinute": Enforced("aigw_sidecar.governance.plan", "tests/governance/test_limits.py::test_requests_per_minute_refill_and_exact_retry_after"),
        "spec.useCases[].rateLimits.tokensPerMinute": Enforced("aigw_sidecar.governance.plan", "tests/governance/test_limits.py::test_tokens_per_minute_reserve_then_reconcile"),
        "spec.useCases[].rateLimits.concurrency": Enforced("aigw_sidecar.governance.plan", "tests/governance/test_limits.py::test_concurrency_leases"),
        "spec.useCases[].rateLimits.scope": Enforced("aigw_sidecar.governance.plan", "tests/governance/test_field_effects.py::test_rate_limit_scope_decides_which_calls_share_a_counter"),
        "spec.useCases[].budgets[].name": Enforced("aigw_sidecar.governance.plan", "tests/governance/test_limits.py::test_status_shows_remaining_budget"),
        "spec.useCases[].budgets[].period": Enforced("aigw_sidecar.governance.windows", "tests/governance/test_limits.py::test_token_budget_reserve_reconcile_and_day_rollover"),
        "spec.useCases[].budgets[].tokens": Enforced("aigw_sidecar.governance.plan", "tests/governance/test_limits.py::test_token_budget_reserve_reconcile_and_day_rollover"),
        "spec.useCases[].budgets[].costUSD": Enforced("aigw_sidecar.governance.plan", "tests/governance/test_limits.py::test_money_budget_month_end_and_leap_day"),
        "spec.useCases[].budgets[].scope": Enforced("aigw_sidecar.governance.plan", "tests/governance/test_field_effects.py::test_budget_scope_decides_which_calls_share_a_counter"),
        "spec.useCases[].budgets[].onExhausted": Enforced("aigw_sidecar.governance.governor", "tests/governance/test_limits.py::test_budget_exhaustion_degrades_to_the_fallback_route"),
        "spec.useCases[].budgets[].fallbackRoute": Enforced("aigw_sidecar.governance.governor", "tests/governance/test_limits.py::test_budget_exhaustion_degrades_to_the_fallback_route"),
        "spec.useCases[].cache.exact.enabled": Enforced("aigw_sidecar.steps.cache", "tests/sidecar/test_cache.py::test_second_identical_request_is_a_hit_the_provider_never_sees"),
        "spec.useCases[].cache.exact.ttlSeconds": Enforced("aigw_sidecar.steps.caching", "tests/sidecar/test_cache.py::test_an_entry_is_served_for_its_ttl_only"),
        "spec.useCases[].cache.exact.scope": Enforced("aigw_sidecar.cache.key", "tests/sidecar/test_cache_scopes.py::test_no_entry_crosses_a_tenant_or_use_case_unless_the_scope_says_so"),
        "spec.useCases[].cache.semantic.enabled": Enforced("aigw_sidecar.steps.cache", "tests/sidecar/test_cache_semantic.py::test_a_paraphrase_above_the_threshold_hits_below_it_and_other_tenants_miss"),
        "spec.useCases[].cache.semantic.threshold": Enforced("aigw_sidecar.steps.cache", "tests/sidecar/test_cache_semantic.py::test_a_paraphrase_above_the_threshold_hits_below_it_and_other_tenants_miss"),
        "spec.useCases[].cache.semantic.ttlSeconds": Enforced("aigw_sidecar.cache.semantic", "tests/sidecar/test_cache_semantic.py::test_a_semantic_entry_is_served_for_its_ttl_only"),
        "spec.useCases[].cache.semantic.embeddingsRoute": Enforced("aigw_sidecar.steps.semantic", "tests/sidecar/test_cache_semantic.py::test_a_paraphrase_above_the_threshold_hits_below_it_and_other_tenants_miss"),
        "spec.useCases[].cache.excludedClassifications": Enforced("aigw_sidecar.steps.cache", "tests/sidecar/test_cache_scopes.py::test_excluded_classifications_bypass_the_cache"),
        "spec.useCases[].redaction.profile": Enforced("aigw_sidecar.inspection.catalog", "tests/sidecar/test_inspection_ingress.py::test_every_text_the_model_sees_is_masked_openai_sdk"),
        "spec.useCases[].redaction.mode": Enforced("aigw_sidecar.inspection.redactor", "tests/sidecar/test_inspection_ingress.py::test_hash_mode_is_keyed_per_tenant"),
        "spec.useCases[].redaction.customPatterns[].name": Enforced("aigw_sidecar.inspection.plan", "tests/sidecar/test_inspection_ingress.py::test_custom_patterns_and_profile_off"),
        "spec.useCases[].redaction.customPatterns[].pattern": Enforced("aigw_sidecar.inspection.plan", "tests/sidecar/test_inspection_ingress.py::test_custom_patterns_and_profile_off"),
        "spec.useCases[].redaction.customPatterns[].category": Enforced("aigw_sidecar.inspection.plan", "tests/sidecar/test_inspection_ingress.py::test_custom_patterns_and_profile_off"),
        "spec.useCases[].redaction.restoreInAnswer": Enforced("aigw_sidecar.steps.inspect", "tests/sidecar/test_inspection_egress.py::test_restore_in_answer_gives_the_caller_its_own_values_back"),
        "spec.useCases[].promptInjection.mode": Enforced("aigw_sidecar.inspection.injection", "tests/sidecar/test_inspection_ingress.py::test_prompt_injection_blocked_in_user_and_retrieved_content"),
        "spec.useCases[].audit.storePrompts": Enforced("aigw_sidecar.audit.record", "tests/sidecar/test_audit_records.py::test_prompts_only_with_store_prompts_after_redaction_and_never_a_secret"),
        "spec.useCases[].audit.retentionDays": Enforced("aigw_sidecar.audit.sinks", "tests/sidecar/test_audit_files.py::test_retention_removes_expired_rotated_files_and_file_keep_bounds_them"),
        "spec.useCases[].telemetry.captureContent": Enforced("aigw_sidecar.steps.trace_content", "tests/sidecar/test_telemetry_content.py::test_content_on_spans_only_when_the_policy_opts_in_and_always_redacted"),
        "spec.useCases[].audit.onQueueFull": Enforced("aigw_sidecar.audit.log", "tests/sidecar/test_audit_queue.py::test_a_full_queue_follows_on_queue_full"),
        "spec.useCases[].idempotency.enabled": Enforced("aigw_sidecar.steps.idempotency", "tests/sidecar/test_idempotency.py::test_the_same_key_and_body_answer_the_first_result_without_calling_upstream"),
        "spec.useCases[].idempotency.ttlSeconds": Enforced("aigw_sidecar.steps.idempotency", "tests/sidecar/test_idempotency.py::test_a_result_is_kept_for_ttl_seconds"),
        "spec.useCases[].idempotency.inFlight": Enforced("aigw_sidecar.steps.idempotency", "tests/sidecar/test_idempotency.py::test_in_flight_duplicates_wait_or_conflict"),
        "spec.useCases[].idempotency.waitMs": Enforced("aigw_sidecar.steps.idempotency", "tests/sidecar/test_idempotency.py::test_in_flight_duplicates_wait_or_conflict"),
        "spec.useCases[].idempotency.storeFailures": Enforced("aigw_sidecar.steps.idempotency", "tests/sidecar/test_idempotency.py::test_failures_are_kept_only_when_the_policy_says_so"),
        "spec.useCases[].leasing.blockPercent": Enforced("aigw_sidecar.governance.leases", "tests/governance/test_leases.py::test_several_governors_stay_within_the_bound_and_every_remainder_is_credited_back"),
        "spec.failMode": Enforced("aigw_sidecar.governance.governor", "tests/governance/test_state_faults.py::test_readonly_during_a_failover_follows_the_fail_mode"),
        "spec.residency[].name": Enforced("aigw_sidecar.steps.residency", "tests/sidecar/test_routing.py::test_restricted_data_never_reaches_a_backend_outside_its_regions"),
        "spec.residency[].dataClassifications": Enforced("aigw_sidecar.steps.residency", "tests/sidecar/test_routing.py::test_restricted_data_never_reaches_a_backend_outside_its_regions"),
        "spec.residency[].regions": Enforced("aigw_sidecar.steps.residency", "tests/sidecar/test_routing.py::test_restricted_data_never_reaches_a_backend_outside_its_regions"),
        "spec.residency[].providers": Enforced("aigw_sidecar.steps.residency", "tests/sidecar/test_routing.py::test_a_provider_rule_keeps_data_on_self_hosted_backends"),
    },
    "ModelRoute": {
        "spec.intent.family": Enforced("aigw_sidecar.steps.route", "tests/sidecar/test_routing.py::test_quality_tier_selects_among_the_use_case_routes"),
        "spec.intent.qualityTier": Enforced("aigw_sidecar.steps.route", "tests/sidecar/test_routing.py::test_quality_tier_selects_among_the_use_case_routes"),
        "spec.intent.regions": Enforced("aigw_sidecar.steps.route", "tests/sidecar/test_routing.py::test_region_header_picks_the_route_serving_it"),
        "spec.modelAliases": Enforced("aigw_sidecar.steps.route", "tests/sidecar/test_fleet.py::test_format_2_sharded_bundle_loads_and_aliases_resolve"),
        "spec.backends[].name": Enforced("aigw_sidecar.attempts.chain", "tests/sidecar/test_sdk.py::test_weighted_backends_never_pick_weight_zero"),
        "spec.backends[].provider": Enforced("aigw_sidecar.adapters", "tests/sidecar/test_sdk.py::test_openai_sdk_served_by_anthropic_backend"),
        "spec.backends[].model": Enforced("aigw_sidecar.runtime", "tests/sidecar/test_sdk.py::test_weighted_backends_never_pick_weight_zero"),
        "spec.backends[].baseURL": Enforced("aigw_sidecar.runtime", "tests/sidecar/test_sdk.py::test_chat_non_streaming"),
        "spec.backends[].region": Enforced("aigw_sidecar.steps.residency", "tests/sidecar/test_routing.py::test_region_header_keeps_every_attempt_in_the_region"),
        "spec.backends[].weight": Enforced("aigw_sidecar.runtime", "tests/sidecar/test_sdk.py::test_weighted_backends_never_pick_weight_zero"),
        "spec.backends[].credentialSecretRef.name": Enforced("aigw_sidecar.runtime", "tests/sidecar/test_sdk.py::test_chat_non_streaming"),
        "spec.backends[].credentialSecretRef.key": Enforced("aigw_sidecar.runtime", "tests/sidecar/test_sdk.py::test_chat_non_streaming"),
        "spec.backends[].apiVersion": Enforced("aigw_sidecar.runtime", "tests/sidecar/test_sdk.py::test_azure_backend"),
        "spec.backends[].pricing.inputPerMillionTokensUSD": Enforced("aigw_sidecar.runtime", "tests/sidecar/test_sdk.py::test_chat_non_streaming"),
        "spec.backends[].pricing.outputPerMillionTokensUSD": Enforced("aigw_sidecar.runtime", "tests/sidecar/test_sdk.py::test_chat_non_streaming"),
        "spec.backends[].pricing.cachedInputPerMillionTokensUSD": Enforced("aigw_sidecar.governance.money", "tests/sidecar/test_accounting.py::test_cached_prompt_tokens_are_priced_as_cache_reads"),
        "spec.backends[].pricing.cacheWritePerMillionTokensUSD": Enforced("aigw_sidecar.governance.money", "tests/sidecar/test_accounting.py::test_anthropic_cache_reads_and_writes_have_their_prices"),
        "spec.fallback": Enforced("aigw_sidecar.attempts.select", "tests/sidecar/test_resilience.py::test_faults_before_the_first_byte_never_reach_the_caller"),
        "spec.retry.attempts": Enforced("aigw_sidecar.attempts.retry", "tests/sidecar/test_resilience.py::test_retries_stop_at_attempts"),
        "spec.retry.backoffBaseMs": Enforced("aigw_sidecar.attempts.select", "tests/sidecar/test_backoff.py::test_full_jitter_grows_exponentially_up_to_backoff_max"),
        "spec.retry.backoffMaxMs": Enforced("aigw_sidecar.attempts.select", "tests/sidecar/test_resilience.py::test_a_retry_after_longer_than_backoff_max_ends_retrying"),
        "spec.retry.retryOn": Enforced("aigw_sidecar.attempts.retry", "tests/sidecar/test_resilience.py::test_non_retryable_classes_fail_fast"),
        "spec.timeouts.connectMs": Enforced("aigw_sidecar.attempts.http", "tests/sidecar/test_field_effects.py::test_connect_timeout_bounds_connecting"),
        "spec.timeouts.requestMs": Enforced("aigw_sidecar.attempts.http", "tests/sidecar/test_sdk.py::test_unknown_route_and_timeout"),
        "spec.timeouts.idleMs": Enforced("aigw_sidecar.attempts.http", "tests/sidecar/test_field_effects.py::test_idle_timeout_ends_a_stalled_stream"),
        "spec.circuitBreaker.consecutiveFailures": Enforced("aigw_sidecar.attempts.health", "tests/sidecar/test_resilience.py::test_breaker_opens_then_lets_exactly_one_probe_through"),
        "spec.circuitBreaker.openSeconds": Enforced("aigw_sidecar.attempts.health", "tests/sidecar/test_resilience.py::test_breaker_opens_then_lets_exactly_one_probe_through"),
    },
}
# fmt: on
