"""Where the text is in a canonical (OpenAI-shaped) request and answer.

Ingress inspection must see every text the model will see, whichever caller API it came
from (the front ends turn Anthropic ``system`` blocks into a system message,
``tool_result`` blocks into ``role: tool`` messages and ``tool_use`` into ``tool_calls``):
system and developer messages, user turns, assistant history (its text and the arguments
of its tool calls, new and legacy ``function_call``), and tool results. Content is a string
or a list of parts; every part's ``text`` is seen, and so is the text of the Anthropic-native
parts the canonical form carries (``document`` text sources, ``search_result`` blocks).
Signed ``thinking_blocks`` are left as they are (a changed one is refused by the provider).
Tool-call arguments are JSON: their string values are rewritten one by one (so a
placeholder never breaks the JSON), and raw text is rewritten when they do not parse.

A ``Rewrite`` gets ``(text, source)`` and returns the new text, or None to keep it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Rewrite", "answer_tool_names", "rewrite_answer", "rewrite_request"]

Json = dict[str, Any]
Rewrite = Callable[[str, str], "str | None"]

_SOURCES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
    "function": "tool",
}


def _content(holder: Json, key: str, source: str, rewrite: Rewrite) -> None:
    value = holder.get(key)
    if isinstance(value, str):
        if value and (new := rewrite(value, source)) is not None:
            holder[key] = new
        return
    if isinstance(value, list | tuple):  # a tuple too: the answer walk reads the original
        for part in value:
            if isinstance(part, dict):
                _part(part, source, rewrite)


def _part(part: Json, source: str, rewrite: Rewrite) -> None:
    """One content part: its ``text``, and the text inside Anthropic-native parts the
    canonical form carries verbatim (a ``document`` with a text or content source, a
    ``search_result``'s text blocks)."""
    text = part.get("text")
    if isinstance(text, str) and text and (new := rewrite(text, source)) is not None:
        part["text"] = new
    kind = part.get("type")
    if kind == "document":
        origin = part.get("source")
        if isinstance(origin, dict):
            data = origin.get("data")
            if origin.get("type") == "text" and isinstance(data, str) and data:
                if (new := rewrite(data, source)) is not None:
                    origin["data"] = new
            elif origin.get("type") == "content":
                _content(origin, "content", source, rewrite)
    elif kind in ("search_result", "tool_result"):
        _content(part, "content", source, rewrite)


def _strings(value: Any, rewrite: Rewrite, source: str) -> tuple[Any, bool]:
    """``value`` (parsed JSON) with its strings rewritten, and whether any changed."""
    stack: list[Any] = [value]
    changed = False
    if isinstance(value, str):
        new = rewrite(value, source)
        return (new, True) if new is not None else (value, False)
    while stack:
        node = stack.pop()
        items: Iterator[tuple[Any, Any]]
        if isinstance(node, dict):
            items = iter(list(node.items()))
        elif isinstance(node, list):
            items = iter(list(enumerate(node)))
        else:
            continue
        for key, child in items:
            if isinstance(child, str):
                if child and (new := rewrite(child, source)) is not None:
                    node[key] = new
                    changed = True
            elif isinstance(child, dict | list):
                stack.append(child)
    return value, changed


def _arguments(function: Any, source: str, rewrite: Rewrite) -> None:
    if not isinstance(function, dict):
        return
    arguments = function.get("arguments")
    if not isinstance(arguments, str) or not arguments:
        return
    try:
        parsed = json.loads(arguments)
    except ValueError:
        if (new := rewrite(arguments, source)) is not None:
            function["arguments"] = new
        return
    value, changed = _strings(parsed, rewrite, source)
    if changed:
        function["arguments"] = json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _calls(message: Json, rewrite: Rewrite) -> None:
    for call in message.get("tool_calls") or ():
        if isinstance(call, dict):
            _arguments(call.get("function"), "tool_arguments", rewrite)
    _arguments(message.get("function_call"), "tool_arguments", rewrite)


def rewrite_request(body: Json, rewrite: Rewrite) -> None:
    """Every model-visible text of a canonical chat request through ``rewrite``, in place."""
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        source = _SOURCES.get(str(message.get("role")), "user")
        _content(message, "content", source, rewrite)
        if source == "assistant":
            _calls(message, rewrite)


def _message(message: Json, rewrite: Rewrite) -> None:
    _content(message, "content", "content", rewrite)
    _calls(message, rewrite)


class _Noted:
    """A rewrite whose results are noted in order, then replayed on a copy."""

    __slots__ = ("_replay", "_rewrite", "results")

    def __init__(self, rewrite: Rewrite) -> None:
        self._rewrite = rewrite
        self.results: list[str | None] = []
        self._replay: Iterator[str | None] = iter(())

    def note(self, text: str, source: str) -> None:
        self.results.append(self._rewrite(text, source))

    def again(self, text: str, source: str) -> str | None:
        for result in self._replay:  # the next noted result (the copy is walked in order)
            return result
        return self._rewrite(text, source)  # not reached: the copy holds the same texts

    @property
    def changed(self) -> bool:
        return any(r is not None for r in self.results)

    def replay(self, message: Json) -> Json:
        self._replay = iter(self.results)
        copy: Json = json.loads(json.dumps(message))
        _message(copy, self.again)
        return copy


def rewrite_answer(response: Json, rewrite: Rewrite) -> Json:
    """A chat completion with its texts through ``rewrite``: the same object when nothing
    changed, else a copy (the original is left alone: a cache may hold it).

    Each message is walked once with ``rewrite`` (its results noted, the message left as it
    is); only a message with a change is copied and walked again, replaying the noted
    results in order (the walk's order does not depend on them, and it reads a tuple as it
    reads the list the copy makes of it), so ``rewrite`` runs once per text and an
    unchanged answer is neither copied nor serialised."""
    choices = response.get("choices")
    if not isinstance(choices, list):
        return response
    out_choices = []
    changed = False
    for choice in choices:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            out_choices.append(choice)
            continue
        noted = _Noted(rewrite)
        _message(message, noted.note)
        if not noted.changed:
            out_choices.append(choice)
            continue
        out_choices.append({**choice, "message": noted.replay(message)})
        changed = True
    return {**response, "choices": out_choices} if changed else response


def answer_tool_names(response: Json) -> list[str]:
    """The tools a complete answer calls (``tool_calls`` and legacy ``function_call``)."""
    names: list[str] = []
    for choice in response.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                names.append(str(function.get("name", "")))
        legacy = message.get("function_call")
        if isinstance(legacy, dict):
            names.append(str(legacy.get("name", "")))
    return names
