"""Which settings of a resource are not enforced yet: the warnings every surface shows.

A policy that silently does less than it says is the worst defect a governance product can
have, so until a field is enforced (``field_status``), every place that accepts a resource
says so: ``aigw validate`` prints a warning, the operator sets a ``Warning`` condition and
emits an Event, the sidecar lists it under ``warnings`` in ``/aigw/status``. They all call
:func:`unenforced` on the same models (a spec, or a policy or route of a bundle: their
attribute names are the same), so they agree.

The rule, for a field that is not enforced yet, and a resource's value ``v`` of it:

- ``v`` is one of the field's **no-op values** (``enabled: false``, ``profile: off``, ``[]``),
  or the field is **inert** because of a sibling (``ttlSeconds`` of a disabled cache, the
  backoff of ``attempts: 1``): nothing to say, it would do nothing even once enforced;
- ``v`` differs from the field's default: a **warning**, naming the resource and the concrete
  field path (``spec.useCases[1].cache.exact.enabled``);
- ``v`` is the default, and the default would do something (retries: 2 attempts, redaction
  ``secrets``/``mask``, prompt injection ``warn``, the circuit breaker's thresholds, audit
  retention): an **inactive default**. Every resource carries these (the CRD's defaults put
  them into every stored object, so an explicit value equal to the default cannot be told
  apart from an omitted one), and a warning on every resource would bury the real ones. They
  are not hidden either: each surface states them once, in a form that is not a warning
  (``aigw validate``: one ``note:`` line; the operator: the message of the ``Warning``
  condition while it is ``False``; the sidecar: ``inactiveDefaults`` in ``/aigw/status``),
  and the policy reference marks each such default.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._base import Model
from .errors import Problem
from .field_status import FIELD_STATUS, FieldStatus, NotEnforced
from .fields import FieldSpec, Step, spec_fields, to_json

__all__ = ["REFERENCE", "Unenforced", "inactive_defaults_text", "pending_fields", "unenforced"]

REFERENCE = "docs/policy-reference.md"
"""Where a warning sends the reader."""


@dataclass(frozen=True, slots=True)
class _Pending:
    field: FieldSpec
    status: NotEnforced
    sibling: str | None
    """Python attribute of the ``inert_when`` sibling."""
    inactive_default: str
    """``path=default``, as listed among the inactive defaults."""


@dataclass(frozen=True, slots=True)
class Unenforced:
    """What one resource asks for that is not enforced yet."""

    settings: tuple[Problem, ...] = ()
    """One warning per setting that would do something: concrete path, value, resource."""
    defaults: tuple[str, ...] = ()
    """Generic paths at a default that would do something, e.g. ``spec.retry.attempts=2``."""
    short: tuple[str, ...] = ()
    """The settings as ``path=value``, for a one-line summary (a status condition)."""


def _attr_of(owner: type[Model], wire: str) -> str:
    for name, info in owner.model_fields.items():
        if (info.alias or name) == wire:
            return name
    raise KeyError(f"{owner.__name__} has no field {wire!r}")


@functools.cache
def _groups(kind: str) -> tuple[tuple[tuple[Step, ...], tuple[_Pending, ...]], ...]:
    """The pending fields grouped by the steps to the object declaring them: one walk of a
    resource per group, not per field (bundles of 1,000 policies are checked at load)."""
    return _grouped(pending_fields(kind))


def _grouped(
    pending: tuple[_Pending, ...],
) -> tuple[tuple[tuple[Step, ...], tuple[_Pending, ...]], ...]:
    groups: dict[tuple[Step, ...], list[_Pending]] = {}
    for one in pending:
        groups.setdefault(one.field.steps[:-1], []).append(one)
    return tuple((steps, tuple(members)) for steps, members in groups.items())


@functools.cache
def pending_fields(kind: str) -> tuple[_Pending, ...]:
    """The fields of ``kind`` that are not enforced yet, with their status."""
    return _pending_of(kind, FIELD_STATUS[kind])


def _pending_of(kind: str, table: Mapping[str, FieldStatus]) -> tuple[_Pending, ...]:
    pending: list[_Pending] = []
    for spec in spec_fields(kind):
        status = table.get(spec.path)
        if isinstance(status, NotEnforced):
            sibling = _attr_of(spec.owner, status.inert_when[0]) if status.inert_when else None
            shown = f"{spec.path}={_shown(spec.default)}"
            pending.append(_Pending(spec, status, sibling, shown))
    return tuple(pending)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _owners(obj: Any, steps: tuple[Step, ...]) -> list[tuple[Any, tuple[int, ...]]]:
    """(the object at the end of ``steps``, the list indices on the way), for every place."""
    nodes: list[tuple[Any, tuple[int, ...]]] = [(obj, ())]
    for step in steps:
        following: list[tuple[Any, tuple[int, ...]]] = []
        for node, indices in nodes:
            value = getattr(node, step.attr, None)
            if value is None:
                continue  # an optional object left out: none of its fields is set
            if step.is_list:
                following += [(v, (*indices, i)) for i, v in enumerate(value)]
            else:
                following.append((value, indices))
        nodes = following
    return nodes


def _concrete(pending: _Pending, indices: tuple[int, ...]) -> str:
    """``spec.useCases[].cache.exact.enabled`` with the indices filled in."""
    parts = pending.field.path.split("[]")
    return "".join(f"{part}[{i}]" for part, i in zip(parts, indices, strict=False)) + parts[-1]


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def unenforced(
    kind: str,
    spec: Model,
    *,
    resource: str = "",
    source: str = "",
    document: int | None = None,
    statuses: Mapping[str, FieldStatus] | None = None,
) -> Unenforced:
    """Settings of one resource that are not enforced yet (see the module docstring).

    ``spec`` is the resource's spec, or its form in a bundle (``BundlePolicy``,
    ``BundleRoute``); ``resource``, ``source`` and ``document`` go into each warning.
    ``statuses`` replaces ``FIELD_STATUS[kind]`` (tests of the mechanism: every field of
    this release is enforced, so the real table has nothing to warn about).
    """
    settings: list[tuple[str, str]] = []
    defaults: dict[str, None] = {}
    groups = _groups(kind) if statuses is None else _grouped(_pending_of(kind, statuses))
    for steps, members in groups:
        for owner, indices in _owners(spec, steps):
            for pending in members:
                _check(pending, owner, indices, settings, defaults)
    problems = tuple(
        Problem(
            f"{shown} is not enforced yet: accepted, but it has no effect (see {REFERENCE})",
            source=source,
            document=document,
            resource=resource,
            path=path,
        )
        for path, shown in settings
    )
    return Unenforced(problems, tuple(defaults), tuple(f"{p}={v}" for p, v in settings))


def _check(
    pending: _Pending,
    owner: Any,
    indices: tuple[int, ...],
    settings: list[tuple[str, str]],
    defaults: dict[str, None],
) -> None:
    """File the value of one field in one object under ``settings`` (a warning: its path and
    value) or ``defaults``, or nowhere (a no-op, an inert field)."""
    status = pending.status
    if (
        status.inert_when is not None
        and pending.sibling is not None
        and _same(to_json(getattr(owner, pending.sibling)), status.inert_when[1])
    ):
        return
    value = to_json(getattr(owner, pending.field.steps[-1].attr))
    if any(_same(value, noop) for noop in status.noop):
        return
    if _same(value, pending.field.default):
        defaults[pending.inactive_default] = None
        return
    settings.append((_concrete(pending, indices), _shown(value)))


def inactive_defaults_text(defaults: list[str] | tuple[str, ...]) -> str:
    """One sentence naming the defaults in effect that are not enforced yet ('' if none)."""
    if not defaults:
        return ""
    return (
        "defaults not enforced yet (carried by every resource, no effect): "
        f"{', '.join(sorted(set(defaults)))}; see {REFERENCE}"
    )
