"""Authorization: may this use case call this route, declare these tools, send this data?

Three allowlists of the use case: ``routes`` (the body's ``model`` names a ModelRoute),
``tools`` (function names declared in the request's ``tools``/``functions``; ``None`` allows
any, ``[]`` none) and ``dataClassifications`` (header ``X-AIGW-Data-Classification``,
parsed by the sidecar's edge into a :class:`~aigw_contract.DataClassification`; a request
without it is treated as the sidecar's ``default_data_classification``, ``internal`` unless
configured). Failures are decisions; the enforcement mode decides whether they block.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aigw_contract import DataClassification, EnforcementMode, UseCase

from .decisions import Decision, Denied, DenyKind

__all__ = ["authorize", "declared_tools"]


def declared_tools(body: Mapping[str, Any]) -> list[str]:
    """Function names a request declares (OpenAI ``tools``/``functions``, Anthropic ``tools``)."""
    names: list[str] = []
    for entry in body.get("tools") or ():
        if isinstance(entry, Mapping):
            function = entry.get("function")
            name = function.get("name") if isinstance(function, Mapping) else entry.get("name")
            if isinstance(name, str):
                names.append(name)
    for entry in body.get("functions") or ():
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            names.append(entry["name"])
    return names


def authorize(
    use_case: UseCase,
    mode: EnforcementMode,
    *,
    route: str,
    tools: list[str],
    classification: DataClassification,
) -> tuple[Decision, ...]:
    """Check the three allowlists; raise :class:`Denied` under enforce, else record."""
    failures: list[tuple[str, str]] = []
    if route not in use_case.routes:
        failures.append(
            ("route_not_allowed", f"route {route!r} is not allowed for use case {use_case.name!r}")
        )
    if use_case.tools is not None:
        allowed = set(use_case.tools)
        refused = sorted({t for t in tools if t not in allowed})
        if refused:
            failures.append(("tool_not_allowed", f"tools not allowed: {', '.join(refused)}"))
    level = classification
    if level not in use_case.data_classifications:
        failures.append(
            (
                "data_classification_not_allowed",
                f"data classification {level.value!r} is not allowed for use case "
                f"{use_case.name!r}",
            )
        )
    if failures and mode is EnforcementMode.ENFORCE:
        code, message = failures[0]
        raise Denied(DenyKind.PERMISSION_DENIED, message, code=code, step="authorize")
    return tuple(Decision.for_mode(mode, "authorize", code, msg) for code, msg in failures)
