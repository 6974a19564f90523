"""A governance observer that keeps what it was told, for tests of the governor's counting."""

from __future__ import annotations

__all__ = ["Recorder"]


class Recorder:
    """The governor's observer: what it counted, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def state_unavailable(self, operation: str, outcome: str) -> None:
        self.events.append((operation, outcome))

    def limit_decision(self, counter: str, verdict: str) -> None:
        self.events.append((counter, verdict))

    def lease_event(self, outcome: str) -> None:
        self.events.append(("lease", outcome))
