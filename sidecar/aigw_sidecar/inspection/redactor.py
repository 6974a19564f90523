"""What redaction does to a match: a typed placeholder, a keyed hash, or a refusal.

One :class:`Replacer` per request (``ctx.state``), shared by the prompt and the answer so a
value keeps its placeholder across both:

- ``mask``: ``[EMAIL_1]``, ``[EMAIL_2]``, ... numbered per category in order of appearance,
  the same value always getting the same placeholder within the request. The originals
  stay in the replacer (this request's memory only) so an answer that repeats a
  placeholder can get the caller's own value back (``restoreInAnswer``).
- ``hash``: ``[EMAIL_3f9a1c2b7d4e5f60]``, the first 16 hex digits of
  HMAC-SHA256(tenant key, category + value). The tenant key is HMAC-SHA256(sidecar key,
  tenant), so equal values match within a tenant (joins across requests and pods sharing
  the key still work), differ across tenants, and cannot be reversed without the key.
- ``block``: nothing is replaced; the step refuses with ``content_blocked`` naming the
  categories found, never the values.

:class:`RedactionPlan` is what a use case's ``redaction`` settings compile to, once per
bundle: its detectors (profile + custom patterns) and mode.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aigw_contract.policy import RedactionMode

from .detectors import Detector, DetectorTable, Finding, Hold, scan, select

__all__ = ["PLACEHOLDER", "RedactionPlan", "Replacer", "apply", "redact"]

PLACEHOLDER = re.compile(r"\[[A-Z][A-Z0-9_]{0,40}_(?:\d{1,6}|[0-9a-f]{16})\]")
"""What a placeholder of either mode looks like."""


@dataclass(frozen=True, slots=True)
class RedactionPlan:
    """A use case's redaction, compiled: detectors, mode, and the answer switch."""

    detectors: tuple[Detector, ...]
    mode: RedactionMode
    restore: bool = False
    holds: tuple[Hold, ...] = field(init=False)
    table: DetectorTable = field(init=False, repr=False, compare=False)
    """The detectors compiled for :func:`~.detectors.scan` (pass this on the hot path)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "holds", tuple(dict.fromkeys(d.hold for d in self.detectors)))
        object.__setattr__(self, "table", DetectorTable(self.detectors))

    @property
    def active(self) -> bool:
        return bool(self.detectors)

    @property
    def window(self) -> int:
        """The longest fixed hold-back of any detector (characters): the bound of what a
        stream holds back beyond the token in progress."""
        return max((h.max_length for h in self.holds if not h.token), default=0)


class Replacer:
    """One request's placeholders (mask) or keyed hashes (hash)."""

    __slots__ = ("_counters", "_key", "_mode", "_originals", "_placeholders")

    def __init__(self, mode: RedactionMode, tenant_key: bytes) -> None:
        self._mode = mode
        self._key = tenant_key
        self._counters: dict[str, int] = {}
        self._placeholders: dict[tuple[str, str], str] = {}
        self._originals: dict[str, str] = {}

    @staticmethod
    def tenant_key(sidecar_key: bytes, tenant: str) -> bytes:
        """The hash key of one tenant."""
        return hmac.new(sidecar_key, b"aigw-redaction\0" + tenant.encode(), hashlib.sha256).digest()

    def replacement(self, category: str, value: str) -> str:
        """The placeholder of ``value`` (found as ``category``) in a prompt: restorable."""
        return self._replace(category, value, restorable=True)

    def answer_replacement(self, category: str, value: str) -> str:
        """The placeholder of ``value`` found in an answer: never restored (only what the
        caller sent can come back to the caller)."""
        return self._replace(category, value, restorable=False)

    def _replace(self, category: str, value: str, *, restorable: bool) -> str:
        key = (category, value)
        known = self._placeholders.get(key)
        if known is not None:
            return known
        if self._mode is RedactionMode.HASH:
            digest = hmac.new(
                self._key, category.encode() + b"\0" + value.encode(), hashlib.sha256
            ).hexdigest()
            placeholder = f"[{category}_{digest[:16]}]"
        else:
            number = self._counters.get(category, 0) + 1
            self._counters[category] = number
            placeholder = f"[{category}_{number}]"
            if restorable:
                self._originals[placeholder] = value
        self._placeholders[key] = placeholder
        return placeholder

    def restore(self, text: str) -> str:
        """``text`` with this request's mask placeholders turned back into their values."""
        if not self._originals or "[" not in text:
            return text
        originals = self._originals
        return PLACEHOLDER.sub(lambda m: originals.get(m.group(0), m.group(0)), text)

    @property
    def restorable(self) -> bool:
        return bool(self._originals)


def apply(
    text: str, findings: Sequence[Finding], replace: Callable[[str, str], str], offset: int = 0
) -> str:
    """``text`` (which starts at ``offset`` of the scanned text) with each finding replaced."""
    if not findings:
        return text
    out: list[str] = []
    position = 0
    for finding in findings:
        start = max(finding.start - offset, 0)
        end = finding.end - offset
        out.append(text[position:start])
        out.append(replace(finding.category, text[start:end]))
        position = end
    out.append(text[position:])
    return "".join(out)


def redact(
    text: str, detectors: Sequence[Detector] | DetectorTable, replacer: Replacer
) -> tuple[str, list[Finding]]:
    """``text`` with every finding replaced, and the findings."""
    findings = select(scan(detectors, text))
    if not findings:
        return text, findings
    return apply(text, findings, replacer.replacement), findings
