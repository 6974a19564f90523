"""Converting between the two shapes of an answer: a complete response and a chunk stream.

A cached stream may answer a request that does not stream (:func:`response_of` assembles
the chunks the way the OpenAI SDK does: text, reasoning text and refusals concatenated,
tool calls joined by index, logprobs lists extended, the usage chunk's usage), and a cached
complete answer may answer a stream (:func:`chunks_of`: per choice one chunk with the whole
message, one with its finish reason, then the usage chunk; each chunk in a batch of its
own). Both work on the canonical (OpenAI) shapes. Anything they do not know how to carry
over exactly (a delta or message field outside the known set) makes them return None: the
request is then a miss, never an answer with a part silently missing.

Also used to replay a recorded stream as it was (:func:`replay`): the same batches, so the
caller's encoder writes the same events at the same boundaries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

__all__ = ["chunks_of", "replay", "response_of"]

Json = dict[str, Any]
_TEXT = ("content", "reasoning_content", "refusal")
_DELTA_KEYS = frozenset({"role", *_TEXT, "tool_calls", "function_call"})
_MESSAGE_KEYS = frozenset({"role", *_TEXT, "tool_calls", "function_call", "annotations", "audio"})
_TOP = ("id", "created", "model", "system_fingerprint", "service_tier")


async def replay(batches: list[list[Json]]) -> AsyncIterator[list[Json]]:
    """The recorded batches again, in order."""
    for batch in batches:
        yield batch


def _join_call(calls: dict[int, Json], part: Json) -> bool:
    index = part.get("index", 0)
    if not isinstance(index, int):
        return False
    call = calls.setdefault(index, {"id": None, "type": "function", "function": {}})
    if part.get("id"):
        call["id"] = part["id"]
    if part.get("type"):
        call["type"] = part["type"]
    function = part.get("function")
    if isinstance(function, dict):
        target = call["function"]
        for name in ("name", "arguments"):
            piece = function.get(name)
            if isinstance(piece, str):
                target[name] = target.get(name, "") + piece
    return True


def response_of(batches: list[list[Json]]) -> Json | None:  # noqa: PLR0912 - one walk
    """The complete answer a recorded stream amounts to (None: not exactly expressible)."""
    top: Json = {}
    choices: dict[int, Json] = {}
    calls: dict[int, dict[int, Json]] = {}
    usage: Any = None
    for batch in batches:
        for chunk in batch:
            for name in _TOP:
                if name in chunk and name not in top:
                    top[name] = chunk[name]
            if chunk.get("usage") is not None:
                usage = chunk["usage"]
            for choice in chunk.get("choices") or ():
                index = choice.get("index", 0)
                delta = choice.get("delta") or {}
                if not isinstance(index, int) or not isinstance(delta, dict):
                    return None
                if not _DELTA_KEYS.issuperset(k for k, v in delta.items() if v is not None):
                    return None
                state = choices.setdefault(
                    index, {"message": {"role": "assistant"}, "finish_reason": None}
                )
                message = state["message"]
                for name in _TEXT:
                    piece = delta.get(name)
                    if isinstance(piece, str):
                        message[name] = message.get(name, "") + piece
                for part in delta.get("tool_calls") or ():
                    if not isinstance(part, dict) or not _join_call(
                        calls.setdefault(index, {}), part
                    ):
                        return None
                legacy = delta.get("function_call")
                if isinstance(legacy, dict):
                    target = message.setdefault("function_call", {})
                    for name in ("name", "arguments"):
                        if isinstance(legacy.get(name), str):
                            target[name] = target.get(name, "") + legacy[name]
                logprobs = choice.get("logprobs")
                if isinstance(logprobs, dict):
                    joined = state.setdefault("logprobs", {})
                    for name, items in logprobs.items():
                        if isinstance(items, list):
                            joined.setdefault(name, []).extend(items)
                if choice.get("finish_reason"):
                    state["finish_reason"] = choice["finish_reason"]
    if not choices:
        return None
    out_choices = []
    for index in sorted(choices):
        state = choices[index]
        message = state["message"]
        message.setdefault("content", None)
        if index in calls:
            message["tool_calls"] = [calls[index][i] for i in sorted(calls[index])]
        out_choices.append(
            {
                "index": index,
                "message": message,
                "logprobs": state.get("logprobs"),
                "finish_reason": state["finish_reason"],
            }
        )
    response: Json = {"object": "chat.completion", **top, "choices": out_choices}
    if usage is not None:
        response["usage"] = usage
    return response


def chunks_of(response: Json) -> list[list[Json]] | None:
    """A stream carrying exactly ``response`` (None: not exactly expressible)."""
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices:
        return None
    base: Json = {"object": "chat.completion.chunk"}
    base.update({name: response[name] for name in _TOP if name in response})
    batches: list[list[Json]] = []
    finals: list[list[Json]] = []
    for choice in choices:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            return None
        present = {k: v for k, v in message.items() if v is not None and v != []}
        if not _MESSAGE_KEYS.issuperset(present) or "audio" in present:
            return None
        delta: Json = {"role": message.get("role") or "assistant"}
        delta["content"] = message.get("content")
        for name in ("reasoning_content", "refusal", "function_call"):
            if name in present:
                delta[name] = present[name]
        if "tool_calls" in present:
            calls = present["tool_calls"]
            if not isinstance(calls, list):
                return None
            delta["tool_calls"] = [
                {**call, "index": i} for i, call in enumerate(calls) if isinstance(call, dict)
            ]
        index = choice.get("index", 0)
        first: Json = {"index": index, "delta": delta, "finish_reason": None}
        if choice.get("logprobs") is not None:
            first["logprobs"] = choice["logprobs"]
        batches.append([{**base, "choices": [first]}])
        last = {"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")}
        finals.append([{**base, "choices": [last]}])
    batches.extend(finals)
    if response.get("usage") is not None:
        batches.append([{**base, "choices": [], "usage": response["usage"]}])
    return batches
