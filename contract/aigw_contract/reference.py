"""The policy reference (``docs/policy-reference.md``), generated from the models and the
field-status table, so what the documentation claims is what the code and tests hold.

For every field of both resources: its path, type and bounds, default, description (the
model's attribute docstring, as ``kubectl explain`` prints it), and either the module that
enforces it and the test that proves it, or "not enforced yet" with the values that do not
warn. ``aigw docs policy-reference -o docs/policy-reference.md`` writes it; a test fails when
the committed file differs.
"""

from __future__ import annotations

import json
from typing import Any

from ._base import NAME_PATTERN
from .enforcement import REFERENCE
from .field_status import FIELD_STATUS, Enforced, FieldStatus
from .fields import KINDS, FieldSpec, spec_fields

__all__ = ["COMMAND", "render_policy_reference"]

COMMAND = f"aigw docs policy-reference -o {REFERENCE}"
"""The command that writes the reference."""

_INTRO = f"""\
# Policy reference

<!-- Generated from the models and contract/aigw_contract/field_status.py by
`{COMMAND}`. Do not edit by hand. -->

Every field of the two resources, by the path you write in YAML (`[]`: each item of a list).
A field is either **enforced** (the module that gives it its effect, and the test that proves
it), or **not enforced yet**: the schema accepts it, and it has no effect.

Until a field is enforced, aigw says so wherever a resource is accepted: `aigw validate`
prints a `warning:` per setting, the operator sets the resource's `Warning` condition to
`True` and emits a `Warning` Event, and the sidecar lists it under `bundle.warnings` in
`/aigw/status`. A setting is warned about when its value is not a **no-op** (a value that
does nothing even once enforced, such as `enabled: false`), the field is not **inert** (made
meaningless by a sibling, such as the TTL of a disabled cache), and the value differs from
the default. A default that would do something (*inactive default* below) is carried by every
resource, so it is reported once instead of warned about on each: a `note:` line of
`aigw validate`, the message of the `Warning` condition while it is `False`, and
`bundle.inactiveDefaults` in `/aigw/status`.

To make a field enforced, change its line in `contract/aigw_contract/field_status.py` to
`Enforced("<module>", "tests/<file>.py::<test>")` and run `{COMMAND}`; tests fail when a
model field has no line, when a line names no field, test or module, and when this file is
stale. See [contract.md](contract.md).
"""


def _code(value: Any) -> str:
    return f"`{json.dumps(value)}`"


def _cell(text: str) -> str:
    """One table cell: one line, pipes escaped (once: every cell passes here once)."""
    return " ".join(text.split()).replace("|", "\\|")


def _scalar(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return "one of " + ", ".join(_code(v) for v in schema["enum"])
    kind = str(schema.get("type", "any"))
    parts: list[str] = []
    if schema.get("pattern") == NAME_PATTERN:
        kind = "name (DNS-1123 label)"
    elif kind == "string" and "pattern" in schema and "maxLength" in schema:
        if schema["maxLength"] == 19 and "[0-9]" in schema["pattern"]:
            kind = 'decimal string (e.g. `"0.15"`)'
        else:
            parts.append(f"pattern `{schema['pattern']}`")
    elif "pattern" in schema:
        parts.append(f"pattern `{schema['pattern']}`")
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None or high is not None:
        parts.append(f"{'' if low is None else low}..{'' if high is None else high}")
    if schema.get("minLength") == 1:
        parts.append("non-empty")
    elif schema.get("minLength"):
        parts.append(f"at least {schema['minLength']} characters")
    if "maxLength" in schema and not kind.startswith(("name", "decimal")):
        parts.append(f"at most {schema['maxLength']} characters")
    return ", ".join([kind, *parts])


def _type(spec: FieldSpec) -> str:
    schema = spec.schema
    if schema.get("type") == "array":
        text = f"list of {_scalar(schema.get('items', {}))}"
        if schema.get("minItems"):
            text += f"; at least {schema['minItems']}"
        if "maxItems" in schema:
            text += f"; at most {schema['maxItems']} items"
    elif schema.get("type") == "object":
        values = schema.get("additionalProperties", {})
        text = f"map of string to {_scalar(values) if values else 'any'}"
        if "maxProperties" in schema:
            text += f"; at most {schema['maxProperties']} entries"
    else:
        text = _scalar(schema)
    return _cell(text)


def _default(spec: FieldSpec) -> str:
    if spec.required:
        return "required"
    return "unset" if spec.default is None else _cell(_code(spec.default))


def _status(spec: FieldSpec, status: FieldStatus) -> tuple[str, str]:
    if isinstance(status, Enforced):
        return f"`{status.by}`", f"`{status.test}`"
    text = "**not enforced yet**" + (f": {status.note}" if status.note else "")
    quiet: list[str] = []
    if status.noop:
        quiet.append("no-op: " + ", ".join(_code(v) for v in status.noop))
    if status.inert_when:
        sibling, value = status.inert_when
        quiet.append(f"inert while `{sibling}` is {_code(value)}")
    inert_default = spec.default is None or any(
        type(spec.default) is type(v) and spec.default == v for v in status.noop
    )
    if not spec.required and not inert_default:
        quiet.append(f"inactive default {_code(spec.default)}")
    return _cell(text), _cell("; ".join(quiet)) or "—"


def _table(kind: str) -> list[str]:
    table = FIELD_STATUS[kind]
    fields = spec_fields(kind)
    enforced = sum(isinstance(table[f.path], Enforced) for f in fields)
    lines = [
        f"## {kind}",
        "",
        _cell((KINDS[kind].__doc__ or "").strip())
        + f" {len(fields)} fields: {enforced} enforced,"
        + f" {len(fields) - enforced} not enforced yet.",
        "",
        "| Field | Type and bounds | Default | Description | Enforced by | Proof / quiet when |",
        "|---|---|---|---|---|---|",
    ]
    for spec in fields:
        by, proof = _status(spec, table[spec.path])
        lines.append(
            f"| `{spec.path}` | {_type(spec)} | {_default(spec)} | "
            f"{_cell(spec.description)} | {by} | {proof} |"
        )
    return lines


def render_policy_reference() -> str:
    """The Markdown of ``docs/policy-reference.md``."""
    lines = [_INTRO]
    for kind in KINDS:
        lines += _table(kind)
        lines.append("")
    return "\n".join(lines)
