"""Every benchmark row is a valid bundle that switches on exactly its steps, and is decided
from the sidecar's own word (status warnings) and its probes, never silently run without a
step it names."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from aigw import NotBuilt, StepIgnored, documents, flag_listed, missing_flags, verdict
from aigw_contract import compile_bundle, parse_documents
from probes import PROBES, warned
from rows import MINIMAL_USE_CASE, ROWS, STEPS, Flag, Step


def _compiled(key: str) -> dict[str, Any]:
    docs = documents(ROWS[key], "http://127.0.0.1:9")
    parsed, problems = parse_documents(yaml.safe_dump_all(docs).encode(), key)
    assert problems == []
    bundle = compile_bundle(
        [d.resource for d in parsed], namespace="bench", generated_at=datetime.now(UTC)
    )
    data: dict[str, Any] = bundle.model_dump(mode="json", by_alias=True)
    return data


def _use_case(bundle: dict[str, Any]) -> dict[str, Any]:
    (policy,) = bundle["policies"]
    (use_case,) = policy["spec"]["useCases"] if "spec" in policy else policy["useCases"]
    return dict(use_case)


@pytest.mark.parametrize("key", list(ROWS))
def test_every_row_compiles_into_a_bundle(key: str) -> None:
    bundle = _compiled(key)
    assert [r["name"] for r in bundle["routes"]] == ["chat"]


def test_the_minimal_row_switches_off_what_defaults_would_switch_on() -> None:
    use_case = _use_case(_compiled("aigw"))
    assert use_case["redaction"]["profile"] == "off"
    assert use_case["promptInjection"]["mode"] == "off"
    assert use_case["cache"]["exact"]["enabled"] is False
    assert use_case.get("rateLimits", {}).get("requestsPerMinute") is None
    assert use_case.get("budgets", []) == []
    (route,) = _compiled("aigw")["routes"]
    route = route.get("spec", route)
    assert route["retry"]["attempts"] == 1


@pytest.mark.parametrize("step", [s for s in STEPS if STEPS[s].use_case])
def test_a_step_row_differs_from_the_minimal_row_in_that_step_only(step: str) -> None:
    minimal, mine = _use_case(_compiled("aigw")), _use_case(_compiled(f"aigw-{step}"))
    changed = {k for k in set(minimal) | set(mine) if minimal.get(k) != mine.get(k)}
    assert changed == set(STEPS[step].use_case)


def test_the_full_row_has_every_step_and_the_cache_hit_row_one_fixed_body() -> None:
    assert set(ROWS["aigw-full"].steps) == set(STEPS)
    assert ROWS["aigw-full"].unique_bodies
    assert ROWS["aigw-cache-hit"].steps == ("cache",)
    assert not ROWS["aigw-cache-hit"].unique_bodies
    assert set(PROBES) == set(STEPS)  # every step can prove it acts
    full = _use_case(_compiled("aigw-full"))
    for step in STEPS.values():
        for field, value in step.use_case.items():
            assert field in full, (step.key, field)
            assert value != MINIMAL_USE_CASE.get(field)


LANDED = Step("limits", "limits", ("rateLimits",), landed=True)
UNLANDED = Step("cache", "exact cache", ("cache.exact",))
STEPS_UNDER_TEST = {"limits": LANDED, "cache": UNLANDED}


def test_a_row_whose_steps_all_act_is_measured() -> None:
    verdict(("limits", "cache"), STEPS_UNDER_TEST, [], {"limits": None, "cache": None})


def test_a_status_warning_makes_the_step_not_built_even_if_it_was_marked_landed() -> None:
    warnings = ["useCases[0].rateLimits is accepted but not enforced yet"]
    with pytest.raises(NotBuilt) as caught:
        verdict(("limits",), STEPS_UNDER_TEST, warnings, {})
    assert caught.value.why == {"limits": f"the sidecar warns: {warnings[0]}"}


def test_a_landed_step_whose_probe_fails_fails_the_run() -> None:
    with pytest.raises(StepIgnored) as caught:
        verdict(("limits", "cache"), STEPS_UNDER_TEST, [], {"limits": "no Redis", "cache": None})
    assert caught.value.step == "limits"
    assert "configured but ignored: no Redis" in str(caught.value)


def test_a_step_the_sidecar_claims_to_enforce_fails_the_run_when_its_probe_fails() -> None:
    # A sidecar that lists what it does not enforce, and did not list the cache.
    with pytest.raises(StepIgnored) as caught:
        verdict(("cache",), STEPS_UNDER_TEST, [], {"cache": "no hit"}, declares=True)
    assert caught.value.step == "cache"
    flagged = {
        "audit": Step("audit", "audit", ("audit",), flags=(Flag(("--audit-file",), "audit"),))
    }
    with pytest.raises(StepIgnored):  # its flag exists, or the row would not have started
        verdict(("audit",), flagged, [], {"audit": "no record"})


def test_steps_not_built_are_all_named() -> None:
    with pytest.raises(NotBuilt) as caught:
        verdict(
            ("limits", "cache"), STEPS_UNDER_TEST, ["cache.exact: not enforced"], {"limits": None}
        )
    assert set(caught.value.why) == {"cache"}
    with pytest.raises(NotBuilt) as caught:
        verdict(("cache",), STEPS_UNDER_TEST, [], {"cache": "served from upstream twice"})
    assert caught.value.why == {"cache": "its probe found: served from upstream twice"}


def test_warnings_are_found_anywhere_in_the_status_and_matched_case_insensitively() -> None:
    assert warned(["Budgets: not enforced"], ("budgets",)) == "Budgets: not enforced"
    assert warned(["credential file missing"], ("budgets", "rateLimits")) is None


HELP = """  --redis-url REDIS_URL  shared state (env AIGW_REDIS_URL)
  --audit-file-mode MODE  (env OTEL_EXPORTER_OTLP_ENDPOINT_X)"""


def test_a_flag_is_found_only_as_a_whole_word_of_the_help() -> None:
    assert flag_listed("--redis-url", HELP)
    assert flag_listed("env:AIGW_REDIS_URL", HELP)
    assert not flag_listed("--audit-file", HELP)  # only --audit-file-mode exists
    assert not flag_listed("env:OTEL_EXPORTER_OTLP_ENDPOINT", HELP)
    assert not flag_listed("--redis", HELP)


def test_the_sidecar_of_this_checkout_has_the_flags_of_its_landed_steps() -> None:
    landed = [k for k, s in STEPS.items() if s.landed]
    for key in landed:
        assert missing_flags(ROWS[f"aigw-{key}"], sys.executable) == {}, key
