"""What inspection found and did in one request, for metrics and the audit record.

``ctx.state[INSPECTION]`` (:data:`aigw_sidecar.keys.INSPECTION`) holds one
:class:`InspectionReport`: a list of :class:`InspectionEvent` with counts. An event names
the direction (``request``: the prompt; ``response``: the answer), the kind (``redaction``,
``injection``, ``tool_call``, ``error``), the category (``EMAIL``, ``instruction_override``,
``tool_not_allowed``, ``detector_error``), the detector or rule, the action taken and where
it was found (``user``, ``system``, ``assistant``, ``tool``, ``tool_arguments``,
``retrieved``, ``content``). Never a matched value, never the text: an audit record can
carry the report as is.

Actions: ``masked``, ``hashed``, ``blocked`` (enforce), ``warned`` (warn mode, or an
injection check in ``warn``), ``observed`` (observe mode), ``restored`` (placeholders put
back in the answer), ``failed_closed`` / ``failed_open`` (a detector raised).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Direction", "InspectionEvent", "InspectionReport", "Kind"]

Direction = Literal["request", "response"]
Kind = Literal["redaction", "injection", "tool_call", "error"]


@dataclass(slots=True)
class InspectionEvent:
    """One kind of finding and what was done about it, with how often it happened."""

    direction: Direction
    kind: Kind
    category: str
    detector: str
    action: str
    source: str
    count: int = 1

    def as_dict(self) -> dict[str, str | int]:
        return {
            "direction": self.direction,
            "kind": self.kind,
            "category": self.category,
            "detector": self.detector,
            "action": self.action,
            "source": self.source,
            "count": self.count,
        }


@dataclass(slots=True)
class InspectionReport:
    """Every inspection event of one request (see the module docstring)."""

    events: list[InspectionEvent] = field(default_factory=list)

    def add(  # noqa: PLR0917 - the fields of an event
        self,
        direction: Direction,
        kind: Kind,
        category: str,
        detector: str,
        action: str,
        source: str,
        count: int = 1,
    ) -> InspectionEvent:
        for event in self.events:
            if (
                event.direction == direction
                and event.kind == kind
                and event.category == category
                and event.detector == detector
                and event.action == action
                and event.source == source
            ):
                event.count += count
                return event
        event = InspectionEvent(direction, kind, category, detector, action, source, count)
        self.events.append(event)
        return event

    def count(self, **match: str) -> int:
        """How many findings have these field values (e.g. ``category="EMAIL"``)."""
        return sum(
            e.count for e in self.events if all(getattr(e, k) == v for k, v in match.items())
        )

    def categories(self, direction: Direction, kind: Kind) -> list[str]:
        """The categories of one direction and kind, in order of first appearance."""
        seen: dict[str, None] = {}
        for event in self.events:
            if event.direction == direction and event.kind == kind:
                seen[event.category] = None
        return list(seen)

    def as_list(self) -> list[dict[str, str | int]]:
        return [e.as_dict() for e in self.events]
