"""A pipeline step that records every hook the pipeline calls on it, and the journal it writes."""

from __future__ import annotations

from dataclasses import dataclass, field

from aigw_sidecar.context import RequestContext
from aigw_sidecar.pipeline import Step
from aigw_sidecar.streaming import StreamTransform

__all__ = ["Journal", "Probe"]


@dataclass
class Journal:
    """What the test steps and middlewares saw."""

    hooks: list[tuple[str, str]] = field(default_factory=list)
    """(step name, hook), in call order."""
    answered_by: list[str | None] = field(default_factory=list)
    """``ctx.answered_by`` at each ``on_response``."""
    attempts: list[tuple[int, str]] = field(default_factory=list)
    """(attempt number, backend) of each attempt a test middleware saw."""
    records: list[list[tuple[str, str]]] = field(default_factory=list)
    """The (backend, outcome) of every attempt, at each ``on_finish``."""

    def of(self, step: str) -> list[str]:
        return [hook for name, hook in self.hooks if name == step]


class Probe(Step):
    """Records every hook the pipeline calls on it."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def on_request(self, ctx: RequestContext) -> None:
        self.journal.hooks.append((self.name, "on_request"))

    def stream_transform(self, ctx: RequestContext) -> StreamTransform | None:
        self.journal.hooks.append((self.name, "stream_transform"))
        return None

    async def on_response(self, ctx: RequestContext) -> None:
        self.journal.hooks.append((self.name, "on_response"))
        self.journal.answered_by.append(ctx.answered_by)

    async def on_finish(self, ctx: RequestContext) -> None:
        self.journal.hooks.append((self.name, "on_finish"))
        self.journal.records.append([(r.backend, r.outcome) for r in ctx.attempts])
