"""Every field of both resources' specs, by the path users write, read from the models.

The models are the one source of truth for what a resource may say; this module lists their
fields so that other tables (which field is enforced, and by what: ``field_status``) and the
generated policy reference (``reference``) can be checked against them and cannot drift.

A field's **path** is its camelCase wire name below ``spec``, with ``[]`` for the items of a
list of objects: ``spec.useCases[].cache.exact.enabled``. Only *leaves* are listed: scalars,
lists of scalars and maps of scalars (``spec.selector.matchLabels``). An object is not a field
of its own; its fields are. A concrete setting in a resource has indices instead of ``[]``
(``spec.useCases[1].cache.exact.enabled``), as in every error message.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Union, get_args, get_origin

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from ._base import Model
from .crdgen import structural_schema
from .policy import AIPolicySpec
from .route import ModelRouteSpec

__all__ = [
    "KINDS",
    "NO_DEFAULT",
    "FieldSpec",
    "Step",
    "generic_path",
    "spec_fields",
    "to_json",
]

KINDS: dict[str, type[Model]] = {"AIPolicy": AIPolicySpec, "ModelRoute": ModelRouteSpec}
"""The spec model of each resource kind."""


class _NoDefault(enum.Enum):
    NO_DEFAULT = "required"


NO_DEFAULT = _NoDefault.NO_DEFAULT
"""The default of a required field."""


@dataclass(frozen=True, slots=True)
class Step:
    """One attribute on the way from a spec to a field."""

    attr: str
    """The python attribute name."""
    wire: str
    """The camelCase name a resource uses."""
    is_list: bool = False
    """Whether the attribute holds a list of objects (``[]`` in the path)."""


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One leaf field of a resource's spec."""

    kind: str
    """AIPolicy or ModelRoute."""
    path: str
    """``spec.useCases[].cache.exact.enabled``."""
    steps: tuple[Step, ...]
    """How to reach the field from the spec, one step per object below ``spec``; the last
    step is the field itself."""
    owner: type[Model]
    """The model class that declares the field."""
    description: str
    """The model's attribute docstring (what ``kubectl explain`` prints)."""
    default: Any
    """The default as JSON (``NO_DEFAULT`` for a required field)."""
    schema: dict[str, Any]
    """The field's node of the CRD's structural schema: type, enum, bounds."""

    @property
    def required(self) -> bool:
        return self.default is NO_DEFAULT

    @property
    def name(self) -> str:
        """The camelCase wire name of the field itself."""
        return self.path.rsplit(".", 1)[-1]


_PLAIN = frozenset({bool, int, float, str, type(None)})


def to_json(value: Any) -> Any:  # noqa: PLR0911 - one return per kind of value
    """A model attribute's value as the JSON a resource would hold."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Model):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    return value


def _model_of(annotation: Any) -> tuple[type[Model] | None, bool]:
    """(the Model a field holds, whether it holds a list of them), or (None, False)."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        return _model_of(options[0]) if len(options) == 1 else (None, False)
    if origin is list:
        (item,) = get_args(annotation)
        model, _ = _model_of(item)
        return (model, True) if model is not None else (None, False)
    if isinstance(annotation, type) and issubclass(annotation, Model):
        return annotation, False
    return None, False


def _default(info: FieldInfo) -> Any:
    if info.default_factory is not None:
        return to_json(info.default_factory())  # type: ignore[call-arg]
    if info.default is PydanticUndefined:
        return NO_DEFAULT
    return to_json(info.default)


def _walk(
    kind: str,
    model: type[Model],
    schema: dict[str, Any],
    prefix: str,
    steps: tuple[Step, ...],
) -> Iterator[FieldSpec]:
    properties = schema.get("properties", {})
    for name, info in model.model_fields.items():
        wire = info.alias or name
        node = properties[wire]
        nested, is_list = _model_of(info.annotation)
        if nested is not None:
            yield from _walk(
                kind,
                nested,
                node["items"] if is_list else node,
                f"{prefix}.{wire}{'[]' if is_list else ''}",
                (*steps, Step(name, wire, is_list)),
            )
            continue
        yield FieldSpec(
            kind=kind,
            path=f"{prefix}.{wire}",
            steps=(*steps, Step(name, wire)),
            owner=model,
            description=(info.description or "").strip(),
            default=_default(info),
            schema=node,
        )


def spec_fields(kind: str) -> list[FieldSpec]:
    """Every leaf field of ``kind``'s spec, in model order."""
    model = KINDS[kind]
    return list(_walk(kind, model, structural_schema(model), "spec", ()))


def generic_path(path: str) -> str:
    """``spec.useCases[1].cache`` -> ``spec.useCases[].cache``."""
    out, depth = [], 0
    for char in path:
        if char == "[":
            depth += 1
            out.append("[]")
        elif char == "]":
            depth -= 1
        elif depth == 0:
            out.append(char)
    return "".join(out)
