"""Shared building blocks of every model: camelCase wire names, strictness, money.

Models are frozen (a compiled bundle is shared by every request in flight and must never be
mutated) and forbid unknown fields (a typo in a policy is an error, not a silently ignored
setting). Field descriptions are the attribute docstrings: they become the CRD's OpenAPI
descriptions, which is what ``kubectl explain`` prints.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

__all__ = ["DNS_LABEL", "NAME_PATTERN", "USD", "Model", "Name", "duplicates"]

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""A Kubernetes DNS-1123 label: what names of routes, use cases and backends must look like."""
DNS_LABEL = re.compile(NAME_PATTERN)
_DECIMAL = re.compile(r"^[0-9]{1,9}(\.[0-9]{1,9})?$")


def _camel(name: str) -> str:
    camel = to_camel(name)
    # Kubernetes spells initialisms in capitals (baseURL, maxCostUSD, costUSD).
    for suffix in ("Url", "Usd"):
        if camel.endswith(suffix):
            camel = camel[: -len(suffix)] + suffix.upper()
    return camel


class Model(BaseModel):
    """Base of every contract model."""

    model_config = ConfigDict(
        alias_generator=_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
        validate_default=False,
    )


def _parse_usd(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if not isinstance(value, str):
        raise ValueError(
            'must be a decimal string such as "0.15" (quote it in YAML: floats lose cents)'
        )
    if not _DECIMAL.match(value):
        raise ValueError(f'must be a non-negative decimal string such as "2.50", not {value!r}')
    try:
        return Decimal(value)
    except InvalidOperation as exc:  # pragma: no cover - the pattern already rules this out
        raise ValueError(f"not a decimal: {value!r}") from exc


USD = Annotated[
    Decimal,
    BeforeValidator(_parse_usd),
    PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="always"),
    WithJsonSchema({"type": "string", "pattern": _DECIMAL.pattern, "maxLength": 19}),
]
"""An amount of US dollars, written as a decimal string (never a float)."""

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=63)]
"""A DNS-1123 label: lower-case letters, digits and '-', at most 63 characters."""


def duplicates(names: Iterable[str]) -> list[str]:
    """Names that occur more than once, sorted (for "names must be unique" errors)."""
    names = list(names)
    if len(set(names)) == len(names):  # the usual case, without building a Counter
        return []
    return sorted(name for name, count in Counter(names).items() if count > 1)
