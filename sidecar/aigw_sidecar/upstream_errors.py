"""Provider error responses, mapped into the sidecar's error tree.

A provider's status decides the error class; its message is kept (it is often the useful
part: "max_tokens is too large") but scrubbed first (:mod:`.scrub`: every backend's
credential in any rendering, anything key-like, URLs), and cut to a few hundred characters.
Provider headers are never copied, except a 429's ``Retry-After`` (seconds, or
``retry-after-ms``) which is passed on.

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
"""

from __future__ import annotations

from collections.abc import Mapping

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

__all__ = ["map_upstream_error", "retry_after_seconds"]


def retry_after_seconds(headers: Mapping[str, str]) -> int | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (HTTP dates are ignored)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(1, -(-int(float(millis)) // 1000))
        except ValueError:
            pass
    seconds = headers.get("retry-after")
    if seconds and seconds.strip().isdigit():
        return max(1, int(seconds.strip()))
    return None


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
        return UpstreamRateLimited(said, retry_after=retry_after_seconds(headers) or 1)
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
        return UpstreamUnavailable(said, retry_after=retry_after_seconds(headers))
    if 400 <= status < 500:
        return InvalidRequest(said, code="upstream_rejected_request")
    return UpstreamError(said)
