"""The aigw operator: kopf handlers that compile AIPolicy/ModelRoute into namespace bundles,
and the admission webhook that injects the sidecar.

Pure parts (what to inject, which ConfigMaps to write, which status to set, when to compile)
are separate from the parts that talk to the apiserver, so they are tested without a
cluster. See ``errors`` for the error tree and ``docs/operator.md`` for the contract with
pods and the sidecar.
"""

from .errors import (
    AdmissionError,
    ApiError,
    CertificateError,
    ConfigError,
    Conflict,
    NotFound,
    OperatorError,
)
from .settings import (
    BundleSettings,
    KubeSettings,
    OperatorSettings,
    PeeringSettings,
    Resources,
    SidecarSettings,
    WebhookSettings,
)

__all__ = [
    "AdmissionError",
    "ApiError",
    "BundleSettings",
    "CertificateError",
    "ConfigError",
    "Conflict",
    "KubeSettings",
    "NotFound",
    "OperatorError",
    "OperatorSettings",
    "PeeringSettings",
    "Resources",
    "SidecarSettings",
    "WebhookSettings",
]
