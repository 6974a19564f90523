"""Hand-written checks of request bodies: clear 400s, no pydantic on the hot path.

Each ``check_*`` takes the parsed JSON and raises :class:`~aigw_sidecar.errors.InvalidRequest`
naming the offending field (``code`` says which kind of problem) or returns the body
unchanged. Only what the gateway relies on, or what would otherwise surface as a confusing
provider error, is checked; unknown fields pass through to OpenAI-style backends. Every
check tests a value's type before it compares, hashes or indexes it: a caller may put any
JSON value anywhere.

Nesting depth. A body nested deeper than :data:`MAX_JSON_DEPTH` (64 containers, the body
object itself counting as one) is refused at parse time with a 400 ``json_too_deep``. It is
the one depth limit of the sidecar, and everything after parsing relies on it: the token
counter, the translations and the upstream serialization (orjson refuses to write beyond 254
levels, Python's recursion limit is 1,000) all walk bodies of at most this depth plus the
few levels a translation adds. Real requests stay far below it: a strict JSON schema in
``response_format`` or a tool's ``parameters`` may nest 5 levels of objects, about 15
containers deep.
"""

from __future__ import annotations

from typing import Any

import orjson

from .errors import InvalidRequest

__all__ = [
    "MAX_CHOICES",
    "MAX_JSON_DEPTH",
    "MAX_OUTPUT_TOKENS",
    "check_chat",
    "check_embeddings",
    "check_messages",
    "json_depth_exceeds",
    "parse_json_object",
]

MAX_JSON_DEPTH = 64
"""Deepest nesting of objects and arrays a request body may have (the body itself is 1)."""
MAX_OUTPUT_TOKENS = 2**31 - 1
"""Largest ``max_tokens``/``max_completion_tokens`` (providers take a 32-bit integer); with
:data:`MAX_CHOICES` it bounds every worst case governance reserves for."""
MAX_CHOICES = 128
"""Largest ``n`` (OpenAI's own maximum)."""
_MAX_MODEL = 256
_MAX_MESSAGES = 10_000
_CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_TOOL_CHOICES = frozenset({"none", "auto", "required"})

Json = dict[str, Any]
_KIND_TEXT = {
    "bool": "a boolean",
    "int": "a positive integer",
    "number": "a number",
    "str": "a string",
    "object": "an object",
    "list": "a list",
}


def _bad(message: str, code: str = "invalid_field") -> InvalidRequest:
    return InvalidRequest(message, code=code)


def parse_json_object(raw: bytes) -> Json:
    """The request body as a JSON object."""
    if not raw:
        raise _bad("the request body is empty; a JSON object is expected", "invalid_json")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "utf-8" in str(exc).lower():
            raise _bad("the request body is not valid UTF-8", "invalid_encoding") from None
        raise _bad(f"the request body is not valid JSON: {exc.msg}", "invalid_json") from None
    if not isinstance(value, dict):
        raise _bad("the request body must be a JSON object", "invalid_json")
    # Depth can only exceed the limit if the body has more brackets than the limit: most
    # bodies are settled by two byte counts, and only larger ones are walked.
    if raw.count(b"{") + raw.count(b"[") > MAX_JSON_DEPTH and json_depth_exceeds(
        value, MAX_JSON_DEPTH
    ):
        raise _bad(
            f"the request body nests objects and arrays more than {MAX_JSON_DEPTH} levels deep",
            "json_too_deep",
        )
    return value


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` nests dicts and lists more than ``limit`` levels (iteratively)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if type(node) is dict else node
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, depth + 1))
    return False


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _model(body: Json) -> None:
    model = body.get("model")
    if model is None:
        raise _bad("'model' is required: the name of a route", "missing_field")
    if not isinstance(model, str) or not model or len(model) > _MAX_MODEL:
        raise _bad("'model' must be a non-empty string")


def _optional(body: Json, key: str, kind: str) -> None:
    value = body.get(key)
    if value is None:
        return
    ok = {
        "bool": isinstance(value, bool),
        "int": _is_int(value) and value >= 1,
        "number": _is_number(value),
        "str": isinstance(value, str),
        "object": isinstance(value, dict),
        "list": isinstance(value, list),
    }[kind]
    if not ok:
        raise _bad(f"'{key}' must be {_KIND_TEXT[kind]}")


def _range(body: Json, key: str, low: float, high: float) -> None:
    value = body.get(key)
    if value is not None and not (low <= value <= high):
        raise _bad(f"'{key}' must be between {low:g} and {high:g}")


def _at_most(body: Json, key: str, high: int) -> None:
    """An integer field (its type checked already) is at most ``high``."""
    value = body.get(key)
    if value is not None and value > high:
        raise _bad(f"'{key}' must be an integer from 1 to {high}")


def _content_parts(content: Any, where: str) -> None:
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _bad(f"{where}.content must be a string or a list of parts")
    for index, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise _bad(f"{where}.content[{index}] must be an object with a 'type'")
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise _bad(f"{where}.content[{index}].text must be a string")


def _tools(body: Json) -> None:
    choice = body.get("tool_choice")
    if choice is not None and not (
        (isinstance(choice, str) and choice in _TOOL_CHOICES) or isinstance(choice, dict)
    ):
        raise _bad("'tool_choice' must be none, auto, required or an object")
    tools = body.get("tools")
    if tools is None:
        return
    if not isinstance(tools, list):
        raise _bad("'tools' must be a list")
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _bad(f"tools[{index}] must be {{'type': 'function', 'function': {{'name'}}}}")
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise _bad(f"tools[{index}].function.parameters must be an object")


def _messages(body: Json) -> None:
    messages = body.get("messages")
    if messages is None:
        raise _bad("'messages' is required", "missing_field")
    if not isinstance(messages, list) or not messages:
        raise _bad("'messages' must be a non-empty list")
    if len(messages) > _MAX_MESSAGES:
        raise _bad(f"'messages' has more than {_MAX_MESSAGES} entries")
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise _bad(f"{where} must be an object")
        role = message.get("role")
        if not isinstance(role, str) or role not in _CHAT_ROLES:
            raise _bad(f"{where}.role must be one of {', '.join(sorted(_CHAT_ROLES))}")
        _content_parts(message.get("content"), where)
        calls = message.get("tool_calls")
        if calls is not None and not (
            isinstance(calls, list)
            and all(isinstance(c, dict) and isinstance(c.get("function"), dict) for c in calls)
        ):
            raise _bad(f"{where}.tool_calls must be a list of function calls")
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise _bad(f"{where}.tool_call_id is required for role 'tool'")


def check_chat(body: Json) -> Json:
    """An OpenAI chat completions request."""
    _model(body)
    _messages(body)
    for key, kind in (
        ("stream", "bool"),
        ("stream_options", "object"),
        ("max_tokens", "int"),
        ("max_completion_tokens", "int"),
        ("n", "int"),
        ("temperature", "number"),
        ("top_p", "number"),
        ("presence_penalty", "number"),
        ("frequency_penalty", "number"),
        ("user", "str"),
        ("metadata", "object"),
        ("response_format", "object"),
        ("parallel_tool_calls", "bool"),
    ):
        _optional(body, key, kind)
    _range(body, "temperature", 0, 2)
    _range(body, "top_p", 0, 1)
    _at_most(body, "max_tokens", MAX_OUTPUT_TOKENS)
    _at_most(body, "max_completion_tokens", MAX_OUTPUT_TOKENS)
    _at_most(body, "n", MAX_CHOICES)
    stop = body.get("stop")
    if stop is not None and not (
        isinstance(stop, str)
        or (isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= 4)
    ):
        raise _bad("'stop' must be a string or a list of up to 4 strings")
    _tools(body)
    return body


def check_embeddings(body: Json) -> Json:
    """An OpenAI embeddings request."""
    _model(body)
    value = body.get("input")
    if value is None:
        raise _bad("'input' is required", "missing_field")
    if isinstance(value, str):
        pass
    elif isinstance(value, list) and value:
        if not (
            all(isinstance(x, str) for x in value)
            or all(_is_int(x) for x in value)
            or all(isinstance(x, list) and all(_is_int(t) for t in x) for x in value)
        ):
            raise _bad("'input' must be a string, a list of strings, or token lists")
    else:
        raise _bad("'input' must be a non-empty string or list")
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ("float", "base64"):
        raise _bad("'encoding_format' must be float or base64")
    _optional(body, "dimensions", "int")
    _optional(body, "user", "str")
    return body


def _anthropic_content(content: Any, where: str) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _bad(f"{where}.content must be a string or a list of blocks")
    for index, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise _bad(f"{where}.content[{index}] must be an object with a 'type'")
        if block["type"] == "text" and not isinstance(block.get("text"), str):
            raise _bad(f"{where}.content[{index}].text must be a string")
        if block["type"] == "tool_use" and not isinstance(block.get("name"), str):
            raise _bad(f"{where}.content[{index}].name must be a string")


def check_messages(body: Json) -> Json:  # noqa: PLR0912
    """An Anthropic Messages API request."""
    _model(body)
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise _bad("'max_tokens' is required", "missing_field")
    if not _is_int(max_tokens) or not 1 <= max_tokens <= MAX_OUTPUT_TOKENS:
        raise _bad(f"'max_tokens' must be an integer from 1 to {MAX_OUTPUT_TOKENS}")
    messages = body.get("messages")
    if messages is None:
        raise _bad("'messages' is required", "missing_field")
    if not isinstance(messages, list) or not messages or len(messages) > _MAX_MESSAGES:
        raise _bad("'messages' must be a non-empty list")
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise _bad(f"{where} must be an object with role user or assistant")
        _anthropic_content(message.get("content"), where)
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        _anthropic_content(system, "system")
    for key, kind in (
        ("stream", "bool"),
        ("temperature", "number"),
        ("top_p", "number"),
        ("top_k", "int"),
        ("metadata", "object"),
        ("tool_choice", "object"),
    ):
        _optional(body, key, kind)
    _range(body, "temperature", 0, 1)
    stops = body.get("stop_sequences")
    if stops is not None and not (
        isinstance(stops, list) and all(isinstance(s, str) for s in stops)
    ):
        raise _bad("'stop_sequences' must be a list of strings")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _bad("'tools' must be a list")
        for index, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                raise _bad(f"tools[{index}] must be an object with a 'name'")
            schema = tool.get("input_schema")
            if schema is not None and not isinstance(schema, dict):
                raise _bad(f"tools[{index}].input_schema must be an object")
    return body
