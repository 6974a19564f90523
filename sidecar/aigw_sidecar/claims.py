"""Caller claims in, typed and bounded :class:`~aigw_sidecar.governance.claims.Claims` out.

The one place the governance headers and the body's ``metadata`` claims are read. Every
caller value is checked before anything compares, converts or counts with it, and refused
with a typed 400 (``invalid_request``) when it is not exactly what the table says:

==============================  ===========================================================
header                          accepted value
==============================  ===========================================================
``X-AIGW-Tenant``               DNS-1123 label (a-z, 0-9, ``-``), at most 63 characters
``X-AIGW-Use-Case``             DNS-1123 label
``X-AIGW-User``                 printable ASCII without commas, at most 256 characters
``X-AIGW-Channel``              token (``A-Za-z0-9._:-``), at most 63 characters
``X-AIGW-Data-Classification``  ``public``, ``internal``, ``confidential`` or ``restricted``
``X-AIGW-Max-Cost-USD``         decimal USD, ASCII digits: up to 9 before and 9 after the
                                point (no sign, exponent, ``NaN`` or ``Infinity``)
``X-AIGW-Max-Latency-Ms``       ASCII digits, 1 to 3,600,000 (the contract's bound)
``X-AIGW-Quality-Tier``         token, at most 63 characters
``X-AIGW-Region``               token, at most 63 characters
``Idempotency-Key``             the IETF draft's sf-string (``"..."``: printable ASCII, no
                                ``"`` or backslash) or the same characters bare; 1 to 255
==============================  ===========================================================

Repetition: any ``X-AIGW-*`` header (and ``Idempotency-Key``) sent more than once is a 400
``duplicate_header``, never
"the first one wins" (which let ``X-AIGW-Data-Classification: public`` hide a following
``restricted``). Nothing here has a well-defined "strictest" reading for every header, so
one rule serves all. A comma is refused in every value for the same reason: a proxy may join
repeated lines into one comma-separated line.

Body claims: ``metadata.tenant`` and ``metadata.use_case`` must be strings of the same form;
stated both in a header and in the body they must agree (400 ``conflicting_claims``).
Error messages name the header or field, never echo the caller's bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from multidict import MultiMapping

from aigw_contract import DataClassification

from .errors import InvalidRequest
from .governance.claims import MAX_LATENCY_MS, Claims
from .governance.money import NANO

__all__ = ["GOVERNANCE_HEADERS", "IDEMPOTENCY_KEY", "QUALITY_TIER", "REGION", "parse_claims"]

_NAME = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?", re.ASCII)
_TOKEN = re.compile(r"[A-Za-z0-9._:-]{1,63}", re.ASCII)
_USER = re.compile(r"[\x20-\x2b\x2d-\x7e]{1,256}", re.ASCII)
_USD = re.compile(r"([0-9]{1,9})(?:\.([0-9]{1,9}))?", re.ASCII)
_MILLIS = re.compile(r"[0-9]{1,7}", re.ASCII)
_IDEMPOTENCY = re.compile(
    r'"([\x20\x21\x23-\x5b\x5d-\x7e]{1,255})"|([\x21\x23-\x2b\x2d-\x5b\x5d-\x7e]{1,255})', re.ASCII
)
_CLASSES = {c.value: c for c in DataClassification}

TENANT = "X-AIGW-Tenant"
USE_CASE = "X-AIGW-Use-Case"
USER = "X-AIGW-User"
CHANNEL = "X-AIGW-Channel"
CLASSIFICATION = "X-AIGW-Data-Classification"
MAX_COST = "X-AIGW-Max-Cost-USD"
MAX_LATENCY = "X-AIGW-Max-Latency-Ms"
QUALITY_TIER = "X-AIGW-Quality-Tier"
REGION = "X-AIGW-Region"
IDEMPOTENCY_KEY = "Idempotency-Key"
GOVERNANCE_HEADERS = (
    TENANT,
    USE_CASE,
    USER,
    CHANNEL,
    CLASSIFICATION,
    MAX_COST,
    MAX_LATENCY,
    QUALITY_TIER,
    REGION,
)
"""The request headers governance reads, each parsed here."""

_NO_CLAIMS = Claims()


def _lower_get(found: dict[str, str]) -> Callable[[str], str | None]:
    def get(name: str) -> str | None:
        return found.get(name.lower())

    return get


_NAME_RULE = "a name: lowercase letters, digits and '-', at most 63 characters"
_TOKEN_RULE = "letters, digits and '._:-', at most 63 characters"  # noqa: S105 - not a secret


def _invalid(what: str, rule: str) -> InvalidRequest:
    return InvalidRequest(f"{what} must be {rule}", code="invalid_header")


def _match(pattern: re.Pattern[str], value: str | None, what: str, rule: str) -> str | None:
    if value is None:
        return None
    if pattern.fullmatch(value) is None:
        raise _invalid(what, rule)
    return value


def _usd(value: str | None) -> int | None:
    if value is None:
        return None
    found = _USD.fullmatch(value)
    if found is None:
        raise _invalid(
            MAX_COST,
            "a decimal number of US dollars such as 0.05 (ASCII digits, at most 9 before"
            " and 9 after the point)",
        )
    whole, fraction = found.group(1), found.group(2) or ""
    return int(whole) * NANO + int(fraction.ljust(9, "0"))


def _millis(value: str | None) -> int | None:
    if value is None:
        return None
    if _MILLIS.fullmatch(value) is None or not 1 <= int(value) <= MAX_LATENCY_MS:
        raise _invalid(MAX_LATENCY, f"an integer from 1 to {MAX_LATENCY_MS} (ASCII digits)")
    return int(value)


def _classification(value: str | None) -> DataClassification | None:
    if value is None:
        return None
    level = _CLASSES.get(value)
    if level is None:
        raise _invalid(CLASSIFICATION, "one of " + ", ".join(_CLASSES))
    return level


def _idempotency_key(headers: MultiMapping[str]) -> str | None:
    values = headers.getall(IDEMPOTENCY_KEY, ())
    if not values:
        return None
    if len(values) > 1:
        raise InvalidRequest(
            f"header {IDEMPOTENCY_KEY} was sent more than once; send it once",
            code="duplicate_header",
        )
    found = _IDEMPOTENCY.fullmatch(values[0])
    if found is None:
        raise _invalid(
            IDEMPOTENCY_KEY,
            'a quoted string ("...") or a token of 1 to 255 printable ASCII characters'
            " (no quote, backslash or comma)",
        )
    return found.group(1) or found.group(2)


def _governance_headers(headers: MultiMapping[str]) -> dict[str, str]:
    """The ``X-AIGW-*`` headers by lower-case name, in one pass; a repeated one is a 400."""
    found: dict[str, str] = {}
    for name, value in headers.items():
        if len(name) > 7 and name[6] == "-" and name[:7].lower() == "x-aigw-":
            key = name.lower()
            if key in found:
                raise InvalidRequest(
                    f"header {name} was sent more than once; send it once",
                    code="duplicate_header",
                )
            found[key] = value
    return found


def _body_claim(meta: Mapping[str, Any], key: str, header: str, stated: str | None) -> str | None:
    value = meta.get(key)
    if value is None:
        return stated
    if not isinstance(value, str) or _NAME.fullmatch(value) is None:
        raise InvalidRequest(f"metadata.{key} must be {_NAME_RULE}", code="invalid_field")
    if stated is not None and stated != value:
        raise InvalidRequest(
            f"{header} and metadata.{key} claim different values; state one",
            code="conflicting_claims",
        )
    return value


def parse_claims(headers: MultiMapping[str], body: Mapping[str, Any]) -> Claims:
    """The request's claims; :class:`InvalidRequest` for anything malformed or repeated."""
    found = _governance_headers(headers)
    meta = body.get("metadata")
    key = _idempotency_key(headers)
    if not found and not isinstance(meta, Mapping) and key is None:
        return _NO_CLAIMS
    get = _lower_get(found)
    tenant = _match(_NAME, get(TENANT), TENANT, _NAME_RULE)
    use_case = _match(_NAME, get(USE_CASE), USE_CASE, _NAME_RULE)
    if isinstance(meta, Mapping):
        tenant = _body_claim(meta, "tenant", TENANT, tenant)
        use_case = _body_claim(meta, "use_case", USE_CASE, use_case)
    return Claims(
        tenant=tenant,
        use_case=use_case,
        user=_match(_USER, get(USER), USER, "printable ASCII without commas, at most 256"),
        channel=_match(_TOKEN, get(CHANNEL), CHANNEL, _TOKEN_RULE),
        data_classification=_classification(get(CLASSIFICATION)),
        max_cost_nusd=_usd(get(MAX_COST)),
        max_latency_ms=_millis(get(MAX_LATENCY)),
        quality_tier=_match(_TOKEN, get(QUALITY_TIER), QUALITY_TIER, _TOKEN_RULE),
        region=_match(_TOKEN, get(REGION), REGION, _TOKEN_RULE),
        idempotency_key=key,
    )
