"""The sidecar's error tree: every failure a caller can see, and how it is rendered.

::

    SidecarError                      type / status / code, rendered by middleware.serve
    ├── InvalidRequest                invalid_request       400  bad JSON, wrong types, bad headers
    │   ├── BodyTooLarge              invalid_request       413
    │   ├── BodyTimeout               invalid_request       408  the body did not arrive in time
    │   ├── BodyUnreadable            invalid_request       400  encoding/framing does not match
    │   ├── RouteNotFound             invalid_request       404  ``model`` names no route
    │   ├── EndpointNotFound          invalid_request       404  no such path
    │   ├── MethodNotAllowed          invalid_request       405
    │   ├── ExpectationFailed         invalid_request       417  not ``Expect: 100-continue``
    │   ├── IdempotencyConflict       invalid_request       409  the key's request is in flight
    │   ├── IdempotencyMismatch       invalid_request       422  the key came with another body
    │   └── UnsupportedOperation      invalid_request       400  e.g. embeddings on Anthropic
    ├── AuthenticationFailed          authentication        401
    ├── PermissionDenied              permission_denied     403
    ├── RateLimited                   rate_limited          429  + Retry-After
    ├── BudgetExceeded                budget_exceeded       429  + Retry-After
    ├── CostLimitExceeded             cost_limit_exceeded   400
    ├── ContentBlocked                content_blocked       400
    └── UpstreamFailure               (a provider, or the way to it, failed)
        ├── UpstreamRateLimited       rate_limited          429  provider 429 (also a RateLimited)
        ├── UpstreamTimeout           timeout               504
        ├── UpstreamUnavailable       upstream_unavailable  503  connect errors, 502/503/529
        │   └── NotReady              upstream_unavailable  503  no valid bundle loaded yet
        └── UpstreamError             upstream_error        502  provider 5xx, bad answers,
                                                                 the provider refusing our key

The ``type`` strings are the fixed set of DESIGN.md. ``UpstreamFailure.error_class`` is the
contract's :class:`~aigw_contract.ErrorClass`, so a retry policy's ``retryOn`` applies directly.

Rendering: OpenAI-shaped ``{"error": {"type", "code", "message", "request_id"}}`` on the
OpenAI endpoints; Anthropic-shaped ``{"type": "error", "error": {"type", "message"}}`` on
``/v1/messages`` (the Anthropic SDK raises its exception class from the status code; the
Anthropic ``error.type`` is chosen to match it, and aigw's own type rides in ``aigw_type``).
Messages never contain credentials, upstream URLs or tracebacks.
"""

from __future__ import annotations

from typing import ClassVar

import orjson

from aigw_contract import ErrorClass

__all__ = [
    "AuthenticationFailed",
    "BodyTimeout",
    "BodyTooLarge",
    "BodyUnreadable",
    "BudgetExceeded",
    "ContentBlocked",
    "CostLimitExceeded",
    "EndpointNotFound",
    "ExpectationFailed",
    "IdempotencyConflict",
    "IdempotencyMismatch",
    "InvalidRequest",
    "MethodNotAllowed",
    "NotReady",
    "PermissionDenied",
    "RateLimited",
    "RouteNotFound",
    "SidecarError",
    "UnsupportedOperation",
    "UpstreamError",
    "UpstreamFailure",
    "UpstreamRateLimited",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "anthropic_error_body",
    "openai_error_body",
]

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    408: "timeout_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
}


class SidecarError(Exception):
    """Base of every error a caller sees. Subclasses fix ``type`` and ``status``."""

    type: ClassVar[str] = "upstream_error"
    status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal_error"
    close_connection: ClassVar[bool] = False
    """Close the caller's connection after the answer (its request stream is unusable)."""

    def __init__(
        self, message: str, *, code: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.retry_after = retry_after
        """Seconds a client should wait; rendered as ``Retry-After`` on 429 and 503."""


class InvalidRequest(SidecarError):
    """The request itself is wrong; retrying it unchanged cannot succeed."""

    type = "invalid_request"
    status = 400
    default_code = "invalid_request"


class BodyTooLarge(InvalidRequest):
    status = 413
    default_code = "body_too_large"


class BodyTimeout(InvalidRequest):
    status = 408
    default_code = "body_timeout"


class BodyUnreadable(InvalidRequest):
    """The body's Content-Encoding or chunked framing does not match its bytes: the
    connection's byte stream is unusable, so it is closed after the answer."""

    default_code = "invalid_body"
    close_connection = True


class RouteNotFound(InvalidRequest):
    status = 404
    default_code = "model_not_found"


class EndpointNotFound(InvalidRequest):
    status = 404
    default_code = "unknown_endpoint"


class MethodNotAllowed(InvalidRequest):
    status = 405
    default_code = "method_not_allowed"


class ExpectationFailed(InvalidRequest):
    status = 417
    default_code = "expectation_failed"


class IdempotencyConflict(InvalidRequest):
    status = 409
    default_code = "idempotency_key_in_use"


class IdempotencyMismatch(InvalidRequest):
    status = 422
    default_code = "idempotency_key_reused"


class UnsupportedOperation(InvalidRequest):
    default_code = "unsupported_operation"


class AuthenticationFailed(SidecarError):
    type = "authentication"
    status = 401
    default_code = "authentication_failed"


class PermissionDenied(SidecarError):
    type = "permission_denied"
    status = 403
    default_code = "permission_denied"


class RateLimited(SidecarError):
    type = "rate_limited"
    status = 429
    default_code = "rate_limited"


class BudgetExceeded(SidecarError):
    type = "budget_exceeded"
    status = 429
    default_code = "budget_exceeded"


class CostLimitExceeded(SidecarError):
    type = "cost_limit_exceeded"
    status = 400
    default_code = "cost_limit_exceeded"


class ContentBlocked(SidecarError):
    type = "content_blocked"
    status = 400
    default_code = "content_blocked"


class UpstreamFailure(SidecarError):
    """A provider (or the path to it) failed; ``error_class`` drives retries."""

    error_class: ClassVar[ErrorClass] = ErrorClass.UPSTREAM_ERROR

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retry_after: int | None = None,
        wait_s: float | None = None,
    ) -> None:
        super().__init__(message, code=code, retry_after=retry_after)
        self.wait_s = wait_s
        """How long the provider asked us not to call this backend again (``Retry-After``,
        ``retry-after-ms``, ``x-ratelimit-reset-*``), to the millisecond; None: it said
        nothing. ``retry_after`` is the same rounded up to whole seconds for the caller."""


class UpstreamTimeout(UpstreamFailure):
    type = "timeout"
    status = 504
    default_code = "upstream_timeout"
    error_class = ErrorClass.TIMEOUT


class UpstreamUnavailable(UpstreamFailure):
    type = "upstream_unavailable"
    status = 503
    default_code = "upstream_unavailable"
    error_class = ErrorClass.UPSTREAM_UNAVAILABLE


class NotReady(UpstreamUnavailable):
    default_code = "no_bundle_loaded"


class UpstreamError(UpstreamFailure):
    type = "upstream_error"
    status = 502
    default_code = "upstream_error"


class UpstreamRateLimited(RateLimited, UpstreamFailure):
    """The provider said 429: retryable, and rendered as ``rate_limited``."""

    error_class = ErrorClass.RATE_LIMITED
    default_code = "upstream_rate_limited"


def openai_error_body(error: SidecarError, request_id: str) -> bytes:
    """The OpenAI-shaped JSON body of ``error``."""
    return orjson.dumps(
        {
            "error": {
                "type": error.type,
                "code": error.code,
                "message": error.message,
                "param": None,
                "request_id": request_id,
            }
        }
    )


def anthropic_error_body(error: SidecarError, request_id: str) -> bytes:
    """The Anthropic-shaped JSON body of ``error`` (for ``/v1/messages``)."""
    return orjson.dumps(
        {
            "type": "error",
            "error": {
                "type": _ANTHROPIC_TYPES.get(error.status, "api_error"),
                "message": error.message,
                "aigw_type": error.type,
                "code": error.code,
            },
            "request_id": request_id,
        }
    )
