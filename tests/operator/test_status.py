"""Validation verdicts, blocked bundles and the status/conditions written on resources."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from aigw_contract import MAX_BUNDLE_BYTES, AIPolicySpec
from aigw_contract.enforcement import unenforced
from aigw_contract.field_status import FIELD_STATUS, NotEnforced
from aigw_operator.evaluate import evaluate
from aigw_operator.status import Outcome, desired_status, newly_invalid, newly_warned

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"
WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def bodies() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted(QUICKSTART.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            doc["metadata"].update(generation=1, uid="u-" + doc["metadata"]["name"])
            out.append(doc)
    return out


def by_name(items: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(i for i in items if i["metadata"]["name"] == name)


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_valid_namespace_compiles_and_every_resource_is_ready() -> None:
    items = bodies()
    evaluation = evaluate(items, namespace="team-a", generated_at=WHEN)
    assert evaluation.bundle is not None
    outcome = Outcome(evaluation, revision=4, published=True)
    status = desired_status(by_name(items, "support-assistant"), outcome, WHEN)
    assert conditions(status)["Ready"]["status"] == "True"
    assert conditions(status)["Ready"]["reason"] == "InBundle"
    assert conditions(status)["Valid"]["status"] == "True"
    assert status["observedGeneration"] == 1
    assert status["bundleRevision"] == 4
    assert status["tenant"] == "acme"
    report = desired_status(by_name(items, "report-summarizer"), outcome, WHEN)
    assert report["tenant"] == "team-a"


def test_a_missing_route_blocks_the_bundle_and_names_the_problem() -> None:
    items = [i for i in bodies() if i["metadata"]["name"] != "chat-economy"]
    evaluation = evaluate(items, namespace="team-a", generated_at=WHEN)
    assert evaluation.bundle is None
    assert evaluation.blocked_reason == "InvalidReference"
    outcome = Outcome(evaluation, revision=4, published=False)
    policy = by_name(items, "report-summarizer")
    policy["status"] = {"bundleRevision": 4}
    status = desired_status(policy, outcome, WHEN)
    valid = conditions(status)["Valid"]
    assert (valid["status"], valid["reason"]) == ("False", "InvalidReference")
    assert "chat-economy" in valid["message"]
    assert status["bundleRevision"] == 4  # the previous bundle stays in force
    assert newly_invalid(policy, status) == valid
    # The route itself is valid, but not ready: the namespace's bundle is blocked.
    route = desired_status(by_name(items, "chat"), outcome, WHEN)
    ready = conditions(route)["Ready"]
    assert (ready["reason"], conditions(route)["Valid"]["status"]) == ("BundleBlocked", "True")
    assert "revision 4 stays in force" in ready["message"]
    assert newly_invalid(by_name(items, "chat"), route) is None


def test_schema_problems_are_reported_with_field_paths() -> None:
    items = bodies()
    by_name(items, "chat")["spec"]["retry"]["attempts"] = "three"
    evaluation = evaluate(items, namespace="team-a", generated_at=WHEN)
    verdict = evaluation.verdicts["ModelRoute/chat"]
    assert verdict.reason == "InvalidSpec"
    assert any(p.path == "spec.retry.attempts" for p in verdict.problems)


def test_a_bundle_too_large_keeps_the_previous_one() -> None:
    items = bodies()
    template = by_name(items, "chat-economy")
    backend = template["spec"]["backends"][0]
    for r in range(MAX_BUNDLE_BYTES // (16 * 300) + 1):
        route = copy.deepcopy(template)
        route["metadata"]["name"] = f"bulk-{r}"
        route["spec"]["backends"] = [
            {**backend, "name": f"b{i}", "model": "m" * 256} for i in range(16)
        ]
        items.append(route)
    evaluation = evaluate(items, namespace="team-a", generated_at=WHEN, format_version=1)
    assert evaluation.bundle is None
    assert evaluation.blocked_reason == "BundleTooLarge"
    # Format 2 compresses the same bundle into one ConfigMap.
    fits = evaluate(items, namespace="team-a", generated_at=WHEN)
    assert fits.encoded is not None
    assert fits.encoded.parts == ["part-0.gz"]
    status = desired_status(items[-1], Outcome(evaluation, revision=2, published=False), WHEN)
    ready = conditions(status)["Ready"]
    assert ready["reason"] == "BundleTooLarge"
    assert "a ConfigMap holds at most" in ready["message"]
    assert "revision 2 stays in force" in ready["message"]
    assert conditions(status)["Valid"]["status"] == "True"
    assert newly_invalid(items[-1], status) == ready


def test_a_format_2_bundle_too_large_for_the_mounted_parts_is_blocked() -> None:
    evaluation = evaluate(bodies(), namespace="team-a", generated_at=WHEN, part_bytes=100)
    assert evaluation.bundle is None
    assert evaluation.blocked_reason == "BundleTooLarge"
    assert "at most 4 parts of 100 bytes" in evaluation.blocked_message


def test_transition_time_moves_only_when_the_status_changes() -> None:
    items = bodies()
    outcome = Outcome(evaluate(items, namespace="team-a", generated_at=WHEN), 1, True)
    body = by_name(items, "chat")
    first = desired_status(body, outcome, WHEN)
    body = copy.deepcopy(body) | {"status": first}
    later = WHEN + timedelta(hours=1)
    assert desired_status(body, outcome, later) == first
    outcome2 = Outcome(outcome.evaluation, 2, True)
    second = desired_status(body, outcome2, later)
    assert conditions(second)["Ready"]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert second["bundleRevision"] == 2


def test_settings_not_enforced_yet_set_the_warning_condition() -> None:
    items = bodies()
    policy = by_name(items, "support-assistant")
    use_case = policy["spec"]["useCases"][0]
    semantic = {"enabled": True, "embeddingsRoute": "chat"}
    use_case["cache"] = {"exact": {"enabled": True}, "semantic": semantic}
    spec = AIPolicySpec.model_validate(policy["spec"])
    # Every field of this release is enforced, so the real table warns about nothing; the
    # condition is built from the verdict, here the one a table with two pending fields gives.
    assert unenforced("AIPolicy", spec).short == ()
    table = {
        **FIELD_STATUS["AIPolicy"],
        "spec.useCases[].cache.exact.enabled": NotEnforced(noop=(False,)),
        "spec.useCases[].cache.semantic.enabled": NotEnforced(noop=(False,)),
    }
    expected = unenforced("AIPolicy", spec, statuses=table).short
    assert len(expected) == 2
    evaluation = evaluate(items, namespace="team-a", generated_at=WHEN)
    key = "AIPolicy/support-assistant"
    verdict = replace(evaluation.verdicts[key], not_enforced=expected)
    outcome = Outcome(
        replace(evaluation, verdicts={**evaluation.verdicts, key: verdict}), 4, published=True
    )
    status = desired_status(policy, outcome, WHEN)
    warning = conditions(status)["Warning"]
    assert (warning["status"], warning["reason"]) == ("True", "NotEnforced")
    for setting in expected:
        assert setting in warning["message"]
    assert conditions(status)["Ready"]["status"] == "True"  # in force all the same
    assert newly_warned(policy, status) == warning
    policy["status"] = status
    assert newly_warned(policy, desired_status(policy, outcome, WHEN)) is None  # no repeat
    plain = Outcome(evaluation, revision=4, published=True)  # the real table: all enforced
    assert conditions(desired_status(policy, plain, WHEN))["Warning"]["status"] == "False"


def test_defaults_alone_do_not_warn_but_are_stated() -> None:
    items = bodies()
    route = by_name(items, "chat-economy")
    route["spec"]["intent"] = {}
    evaluation = evaluate(items, namespace="team-a", generated_at=WHEN)
    status = desired_status(route, Outcome(evaluation, revision=4, published=True), WHEN)
    warning = conditions(status)["Warning"]
    assert warning["status"] == "False"
    assert "spec.retry" not in warning["message"]  # retries and breakers are enforced
    assert newly_warned(route, status) is None


def test_an_invalid_resource_has_an_unknown_warning_condition() -> None:
    items = bodies()
    by_name(items, "chat")["spec"]["retry"]["attempts"] = "three"
    evaluation = evaluate(items, namespace="team-a", generated_at=WHEN)
    route = by_name(items, "chat")
    status = desired_status(route, Outcome(evaluation, revision=4, published=False), WHEN)
    assert conditions(status)["Warning"]["status"] == "Unknown"
