"""Step: the prompt and answer content a use case lets its traces carry (docs/telemetry.md).

Only with tracing on, and only for a use case with ``telemetry.captureContent`` and a
sampled request: everything else costs one attribute lookup. The step sits just inside
``Phase.INSPECT`` (like the audit answer step), so it sees what redaction left on both
sides: in ``on_request`` the body after the prompt's masking or hashing, in its stream
transform and ``on_response`` the answer after the answer's redaction and before the
prompt's placeholders are restored for the caller (a restore would put the caller's values
back). It builds the bounded ``gen_ai.input.messages`` / ``gen_ai.output.messages`` values
(:mod:`aigw_sidecar.telemetry.content`) into ``ctx.state[CONTENT]``; the trace step puts
them on the inference spans when the request ends.

An answer from a step (a cache hit, an idempotent replay) made no inference span, so its
content is on no span.
"""

from __future__ import annotations

from dataclasses import dataclass

from aigw_sidecar.context import Json, RequestContext
from aigw_sidecar.keys import IDENTITY, TRACE
from aigw_sidecar.pipeline import Phase, Step
from aigw_sidecar.state import Key
from aigw_sidecar.streaming import StreamTransform
from aigw_sidecar.telemetry.content import Bounded, StreamedAnswer, input_messages, output_messages

__all__ = ["CONTENT", "Content", "TraceContent"]


@dataclass(slots=True)
class Content:
    """One request's content for its spans (None: nothing to record on that side)."""

    input: Bounded | None
    output: Bounded | None = None
    streamed: StreamedAnswer | None = None

    def answer(self) -> Bounded | None:
        if self.streamed is not None:
            return self.streamed.messages()
        return self.output


CONTENT: Key[Content] = Key("trace.content")


class _Gather(StreamTransform):
    """Gathers the streamed answer as the caller gets it here; passes every chunk on."""

    __slots__ = ("_answer",)

    def __init__(self, answer: StreamedAnswer) -> None:
        self._answer = answer

    async def feed(self, batch: list[Json]) -> list[Json]:
        for chunk in batch:
            self._answer.add(chunk)
        return batch


def _capturing(ctx: RequestContext) -> bool:
    identity = ctx.state.get(IDENTITY)
    if identity is None or not identity.use_case.telemetry.capture_content:
        return False
    trace = ctx.state.get(TRACE)
    return trace is not None and trace.sampled and ctx.operation == "chat"


class TraceContent(Step):
    """Keeps the redacted prompt and answer of a use case that opted in, for its spans."""

    name = "trace.content"
    phase = Phase.INSPECT + 20

    async def on_request(self, ctx: RequestContext) -> None:
        if _capturing(ctx):
            ctx.state[CONTENT] = Content(input_messages(ctx.body))

    def stream_transform(self, ctx: RequestContext) -> StreamTransform | None:
        content = ctx.state.get(CONTENT)
        if content is None:
            return None
        content.streamed = StreamedAnswer()
        return _Gather(content.streamed)

    async def on_response(self, ctx: RequestContext) -> None:
        content = ctx.state.get(CONTENT)
        response = ctx.response
        if content is None or ctx.stream or not isinstance(response, dict):
            return
        choices = response.get("choices")
        if isinstance(choices, list):
            content.output = output_messages(choices)
