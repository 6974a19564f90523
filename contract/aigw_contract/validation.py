"""Turning pydantic validation errors into :class:`Problem` lists with field paths."""

from __future__ import annotations

from pydantic import ValidationError

from .errors import Problem

__all__ = ["field_path", "problems_from_validation_error"]


def field_path(loc: tuple[int | str, ...]) -> str:
    """``("spec", "useCases", 0, "name")`` -> ``spec.useCases[0].name``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


def _message(error_type: str, message: str) -> str:
    if error_type == "extra_forbidden":
        return "unknown field"
    if error_type == "missing":
        return "required field is missing"
    # pydantic prefixes messages from our validators with "Value error, ".
    return message.removeprefix("Value error, ")


def problems_from_validation_error(
    error: ValidationError,
    *,
    source: str = "",
    document: int | None = None,
    resource: str = "",
    prefix: tuple[int | str, ...] = (),
) -> list[Problem]:
    """One Problem per pydantic error, with the field path in wire (camelCase) names."""
    return [
        Problem(
            _message(e["type"], e["msg"]),
            source=source,
            document=document,
            resource=resource,
            path=field_path(prefix + tuple(e["loc"])),
        )
        for e in error.errors(include_url=False)
    ]
