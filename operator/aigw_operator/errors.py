"""The operator's error tree, in one place.

::

    OperatorError                 anything the operator refuses or cannot do
    ├── ConfigError               bad settings or an unusable kubeconfig (exit at startup)
    ├── CertificateError          webhook TLS material cannot be generated or loaded
    ├── ApiError                  the Kubernetes API answered with an error status
    │   ├── NotFound              404
    │   └── Conflict              409 (already exists, or a stale resourceVersion)
    └── AdmissionError            an AdmissionReview request that cannot be understood

Contract problems (invalid resources, bundles too large) are not errors here: they are
``aigw_contract.ContractError`` and end up in status conditions and Events, never in a crash.
"""

from __future__ import annotations

__all__ = [
    "AdmissionError",
    "ApiError",
    "CertificateError",
    "ConfigError",
    "Conflict",
    "NotFound",
    "OperatorError",
]


class OperatorError(Exception):
    """Base of every error the operator package raises."""


class ConfigError(OperatorError):
    """Settings or credentials the operator cannot start with."""


class CertificateError(OperatorError):
    """Webhook TLS material that cannot be generated or loaded."""


class ApiError(OperatorError):
    """The Kubernetes API answered with an error status."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        super().__init__(f"{status} {reason}: {message}")


class NotFound(ApiError):
    """The object does not exist (404)."""


class Conflict(ApiError):
    """The object already exists, or it changed since it was read (409)."""


class AdmissionError(OperatorError):
    """An AdmissionReview request the webhook cannot understand."""
