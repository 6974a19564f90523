"""Provider error responses, mapped into the sidecar's error tree.

A provider's status decides the error class; its message is kept (it is often the useful
part: "max_tokens is too large") but scrubbed first (:mod:`.scrub`: every backend's
credential in any rendering, anything key-like, URLs), and cut to a few hundred characters.
Provider headers are never copied, except the back-off hint of a 429 or 503 (below), passed
on as ``Retry-After``.

=================  =====================================================================
provider status    sidecar error
=================  =====================================================================
400, 409, 422      InvalidRequest 400 (``upstream_rejected_request``)
413                BodyTooLarge 413
401, 403           UpstreamError 502 (``upstream_credential_rejected``: the sidecar's key,
                   not the caller's, was refused; the caller cannot fix it)
404                UpstreamError 502 (``upstream_not_found``: a route misconfiguration)
408, 504           UpstreamTimeout 504
429                UpstreamRateLimited 429 + Retry-After
502, 503, 529      UpstreamUnavailable 503
other 5xx          UpstreamError 502
=================  =====================================================================

How long the provider asked us to stay away (``UpstreamFailure.wait_s``, to the
millisecond; the retry and breaker middlewares never call that backend sooner): the largest
of ``retry-after-ms``, ``Retry-After`` (delta-seconds or an HTTP date) and, on a 429,
OpenAI's ``x-ratelimit-reset-requests`` / ``x-ratelimit-reset-tokens`` (durations such as
``1s``, ``6m0s``, ``20ms``) of the limit whose ``x-ratelimit-remaining-*`` is 0 (both when
neither says). Hints are capped at an hour: a provider cannot park a backend for longer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import orjson

from .errors import (
    BodyTooLarge,
    InvalidRequest,
    SidecarError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from .scrub import Scrubber

__all__ = ["map_upstream_error", "wait_hint_seconds"]

_MAX_WAIT_S = 3600.0
_DURATION = re.compile(
    r"(?:([0-9]{1,6})h)?(?:([0-9]{1,6})m(?!s))?(?:([0-9]{1,9}(?:\.[0-9]{1,9})?)s)?"
    r"(?:([0-9]{1,9}(?:\.[0-9]{1,9})?)ms)?",
    re.ASCII,
)


def _number(text: str | None) -> float | None:
    if not text:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _retry_after(text: str | None) -> float | None:
    """``Retry-After``: delta-seconds or an HTTP date."""
    if not text:
        return None
    text = text.strip()
    if text.isascii() and text.isdigit():
        return float(text[:12])
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _duration(text: str | None) -> float | None:
    """OpenAI's reset durations: ``1s``, ``6m0s``, ``20ms``, ``1h2m3.5s``."""
    if not text or len(text) > 40:
        return None
    found = _DURATION.fullmatch(text.strip())
    if found is None or not any(found.groups()):
        return None
    hours, minutes, seconds, millis = (float(g) if g else 0.0 for g in found.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def wait_hint_seconds(status: int, headers: Mapping[str, str]) -> float | None:
    """How long the provider asked not to be called again, in seconds (None: no hint)."""
    hints: list[float] = []
    millis = _number(headers.get("retry-after-ms"))
    if millis is not None:
        hints.append(millis / 1000)
    seconds = _retry_after(headers.get("retry-after"))
    if seconds is not None:
        hints.append(seconds)
    if status == 429:
        exhausted = [
            kind
            for kind in ("requests", "tokens")
            if (headers.get(f"x-ratelimit-remaining-{kind}") or "").strip() == "0"
        ] or ["requests", "tokens"]
        for kind in exhausted:
            reset = _duration(headers.get(f"x-ratelimit-reset-{kind}"))
            if reset is not None:
                hints.append(reset)
    if not hints:
        return None
    return min(max(hints), _MAX_WAIT_S)


def _provider_message(raw: bytes) -> str:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return ""


def map_upstream_error(  # noqa: PLR0911 - a table in code
    status: int, raw: bytes, headers: Mapping[str, str], *, backend: str, scrubber: Scrubber
) -> SidecarError:
    """The sidecar error for a provider's non-2xx answer, its message scrubbed."""
    detail = scrubber.scrub(_provider_message(raw))
    said = f"backend {backend} answered {status}" + (f": {detail}" if detail else "")
    if status == 429:
        wait = wait_hint_seconds(status, headers)
        seconds = 1 if wait is None else max(1, math.ceil(wait))
        return UpstreamRateLimited(said, retry_after=seconds, wait_s=wait)
    if status in (401, 403):
        return UpstreamError(
            f"backend {backend} refused the gateway's credential ({status})",
            code="upstream_credential_rejected",
        )
    if status == 404:
        return UpstreamError(said, code="upstream_not_found")
    if status == 413:
        return BodyTooLarge(said, code="upstream_body_too_large")
    if status in (408, 504):
        return UpstreamTimeout(said)
    if status in (502, 503, 529):
        wait = wait_hint_seconds(status, headers)
        after = None if wait is None else max(1, math.ceil(wait))
        return UpstreamUnavailable(said, retry_after=after, wait_s=wait)
    if 400 <= status < 500:
        return InvalidRequest(said, code="upstream_rejected_request")
    return UpstreamError(said)
