"""What Anthropic callers send that OpenAI chat has no field for, carried through anyway.

A request to ``/v1/messages`` served by an Anthropic backend goes Anthropic -> canonical
(OpenAI chat) -> Anthropic. Without care that round trip drops prompt-caching marks and
Anthropic-only parameters (a known complaint about other gateways). So:

- ``cache_control`` stays on the canonical content parts (text, image), on system parts (the
  system message then keeps a list of parts) and on tools, and is restored on the way out;
- Anthropic-only parameters (``thinking``, ``top_k``, ``service_tier``) ride in the canonical
  body under :data:`EXTRAS_KEY` and are merged back by the Anthropic adapter;
- an OpenAI-style backend never sees either: :func:`strip_for_openai` drops the key and,
  when the request carried cache marks, removes them from copies of the parts.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ANTHROPIC_ONLY_PARAMS", "EXTRAS_KEY", "anthropic_extras", "strip_for_openai"]

EXTRAS_KEY = "x_aigw_anthropic"
"""Canonical-body key of Anthropic-only data; never sent to an OpenAI-style backend."""
ANTHROPIC_ONLY_PARAMS = ("thinking", "top_k", "service_tier")

Json = dict[str, Any]


def anthropic_extras(body: Json, *, cache_marks: bool) -> Json | None:
    """The :data:`EXTRAS_KEY` value for an Anthropic request, or None if there is nothing."""
    params = {key: body[key] for key in ANTHROPIC_ONLY_PARAMS if body.get(key) is not None}
    if not params and not cache_marks:
        return None
    return {"params": params, "cache_control": cache_marks}


def _strip_parts(content: Any) -> Any:
    if not isinstance(content, list):
        return content
    return [
        {k: v for k, v in part.items() if k != "cache_control"} if isinstance(part, dict) else part
        for part in content
    ]


def strip_for_openai(out: Json) -> None:
    """Remove Anthropic-only data from a (shallow) copy of a canonical body, in place."""
    extras = out.pop(EXTRAS_KEY, None)
    if not extras or not extras.get("cache_control"):
        return
    out["messages"] = [
        {**m, "content": _strip_parts(m["content"])} if isinstance(m.get("content"), list) else m
        for m in out["messages"]
    ]
    if out.get("tools"):
        out["tools"] = [{k: v for k, v in t.items() if k != "cache_control"} for t in out["tools"]]
