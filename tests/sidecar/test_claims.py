"""Governance headers become typed, bounded claims, or a typed 400: never the first copy of
a repeated header, never a number past its bound, never a 500 (issue 11, item 7 and the
header crashes). Through a running sidecar: tests/sidecar/test_edge_regressions.py."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import CIMultiDict

from aigw_contract import DataClassification
from aigw_sidecar.claims import parse_claims
from aigw_sidecar.errors import InvalidRequest
from aigw_sidecar.governance import MAX_COST_NUSD, MAX_LATENCY_MS, Claims


def claims(*pairs: tuple[str, str], body: dict[str, Any] | None = None) -> Claims:
    return parse_claims(CIMultiDict(pairs), body or {})


def refused(*pairs: tuple[str, str], body: dict[str, Any] | None = None) -> str:
    with pytest.raises(InvalidRequest) as info:
        claims(*pairs, body=body)
    assert info.value.status == 400
    return info.value.code


def test_well_formed_claims_are_typed() -> None:
    parsed = claims(
        ("X-AIGW-Tenant", "acme"),
        ("X-AIGW-Use-Case", "support-reply"),
        ("X-AIGW-User", "user 42@example.com"),
        ("X-AIGW-Channel", "web"),
        ("X-AIGW-Data-Classification", "restricted"),
        ("X-AIGW-Max-Cost-USD", "0.05"),
        ("X-AIGW-Max-Latency-Ms", "1500"),
        ("X-AIGW-Quality-Tier", "high"),
        ("X-AIGW-Region", "eu-west-1"),
    )
    assert parsed == Claims(
        tenant="acme",
        use_case="support-reply",
        user="user 42@example.com",
        channel="web",
        data_classification=DataClassification.RESTRICTED,
        max_cost_nusd=50_000_000,
        max_latency_ms=1500,
        quality_tier="high",
        region="eu-west-1",
    )
    assert claims() == Claims()


@pytest.mark.parametrize(
    ("value", "nusd"),
    [
        ("0", 0),
        ("1", 10**9),
        ("0.000000001", 1),
        ("999999999.999999999", MAX_COST_NUSD),
        ("12.5", 12_500_000_000),
    ],
)
def test_cost_header_at_its_bounds(value: str, nusd: int) -> None:
    assert claims(("X-AIGW-Max-Cost-USD", value)).max_cost_nusd == nusd


@pytest.mark.parametrize(
    "value",
    [
        "1e999999",  # decimal.Overflow on main
        "1E3",
        "NaN",
        "Infinity",
        "-1",
        "+1",
        "0x10",
        "1000000000",  # ten digits before the point
        "0.0000000001",  # ten decimals
        "1.",
        ".5",
        "1,5",
        "²",
        "\u0661",  # ARABIC-INDIC DIGIT ONE: isdigit() is true
        "1 000",
        "",
        "9" * 5000,
    ],
)
def test_cost_header_past_its_bounds_is_400(value: str) -> None:
    assert refused(("X-AIGW-Max-Cost-USD", value)) == "invalid_header"


@pytest.mark.parametrize(("value", "ms"), [("1", 1), ("3600000", MAX_LATENCY_MS), ("0500", 500)])
def test_latency_header_at_its_bounds(value: str, ms: int) -> None:
    assert claims(("X-AIGW-Max-Latency-Ms", value)).max_latency_ms == ms


@pytest.mark.parametrize(
    "value",
    [
        "²",  # isdigit() is true, int() fails: a 500 on main
        "\u0661\u0662\u0663",  # Arabic-Indic digits: int() accepts them, the header must not
        "9" * 5000,  # past Python's 4,300-digit int() limit: a 500 on main
        "100000000000000000000",  # poisoned Redis leases on main (item 2)
        "3600001",
        "0",
        "-5",
        "1.5",
        "1e3",
        "",
    ],
)
def test_latency_header_past_its_bounds_is_400(value: str) -> None:
    assert refused(("X-AIGW-Max-Latency-Ms", value)) == "invalid_header"


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-AIGW-Tenant", "Acme"),
        ("X-AIGW-Tenant", "acme, evil-corp"),
        ("X-AIGW-Tenant", "a" * 64),
        ("X-AIGW-Tenant", "-acme"),
        ("X-AIGW-Use-Case", "admin panel"),
        ("X-AIGW-User", "u" * 257),
        ("X-AIGW-User", "alice, bob"),
        ("X-AIGW-User", "tab\there"),
        ("X-AIGW-User", "caf\u00e9"),
        ("X-AIGW-Channel", "a/b"),
        ("X-AIGW-Data-Classification", "secret"),
        ("X-AIGW-Data-Classification", "PUBLIC"),
        ("X-AIGW-Data-Classification", "public, restricted"),
        ("X-AIGW-Quality-Tier", "x" * 64),
        ("X-AIGW-Region", "eu west"),
    ],
)
def test_malformed_names_are_400(header: str, value: str) -> None:
    assert refused((header, value)) == "invalid_header"


@pytest.mark.parametrize(
    "pairs",
    [
        (("X-AIGW-Data-Classification", "public"), ("X-AIGW-Data-Classification", "restricted")),
        (("X-AIGW-Max-Cost-USD", "1"), ("X-AIGW-Max-Cost-USD", "0.0000000001")),
        (("X-AIGW-Tenant", "acme"), ("x-aigw-tenant", "evil-corp")),
        (("X-AIGW-Tenant", "acme"), ("X-AIGW-Tenant", "acme")),  # even the same value
        (("X-AIGW-Max-Latency-Ms", "100"), ("X-AIGW-Max-Latency-Ms", "50")),
        (("X-AIGW-Something-New", "a"), ("X-AIGW-Something-New", "b")),
    ],
)
def test_a_repeated_governance_header_is_400(pairs: tuple[tuple[str, str], ...]) -> None:
    assert refused(*pairs) == "duplicate_header"


def test_body_claims_must_agree_with_headers() -> None:
    meta = {"metadata": {"tenant": "acme", "use_case": "reply"}}
    assert claims(body=meta) == Claims(tenant="acme", use_case="reply")
    assert claims(("X-AIGW-Tenant", "acme"), body=meta).tenant == "acme"
    assert refused(("X-AIGW-Tenant", "evil-corp"), body=meta) == "conflicting_claims"
    assert refused(body={"metadata": {"tenant": {"a": 1}}}) == "invalid_field"
    assert refused(body={"metadata": {"use_case": "Not A Name"}}) == "invalid_field"
    assert claims(body={"metadata": "not an object"}) == Claims()
