"""aigw's data plane: an aiohttp proxy injected beside each workload.

The app talks to ``http://127.0.0.1:<port>`` with its usual OpenAI or Anthropic SDK; the
sidecar resolves the request's route from the mounted policy bundle, runs the pipeline
(:mod:`.pipeline`), calls a provider through the attempt chain (:mod:`.attempts`) and an
adapter (:mod:`.adapters`), and answers in the caller's format (:mod:`.frontends`).

This module is the plug-in surface: a step, an attempt middleware or a stream transform is
written against the names exported here. See ``docs/sidecar.md``.
"""

from .app import StepsFactory, create_apps
from .attempts import (
    Attempt,
    AttemptChain,
    AttemptMiddleware,
    BackendStates,
    CallNext,
    RetryFallback,
    Stage,
    Upstream,
)
from .context import Api, AttemptRecord, Decision, Json, Operation, RequestContext
from .errors import (
    AuthenticationFailed,
    BodyTooLarge,
    BudgetExceeded,
    ContentBlocked,
    CostLimitExceeded,
    InvalidRequest,
    PermissionDenied,
    RateLimited,
    RouteNotFound,
    SidecarError,
    UnsupportedOperation,
    UpstreamError,
    UpstreamFailure,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from .governance import Usage
from .keys import ADMISSION, GOVERNANCE_VIEW, GRANT, IDENTITY, MODELS
from .pipeline import Phase, Pipeline, Step
from .runtime import AttemptPlan, RuntimeBackend, RuntimeConfig, RuntimeRoute
from .server import SidecarServer, run
from .settings import SidecarSettings
from .state import Key, State
from .steps import Plugin, Services, default_steps, route_to
from .streaming import StreamTransform, chunk_text, is_final, with_text

__all__ = [
    "ADMISSION",
    "GOVERNANCE_VIEW",
    "GRANT",
    "IDENTITY",
    "MODELS",
    "Api",
    "Attempt",
    "AttemptChain",
    "AttemptMiddleware",
    "AttemptPlan",
    "AttemptRecord",
    "AuthenticationFailed",
    "BackendStates",
    "BodyTooLarge",
    "BudgetExceeded",
    "CallNext",
    "ContentBlocked",
    "CostLimitExceeded",
    "Decision",
    "InvalidRequest",
    "Json",
    "Key",
    "Operation",
    "PermissionDenied",
    "Phase",
    "Pipeline",
    "Plugin",
    "RateLimited",
    "RequestContext",
    "RetryFallback",
    "RouteNotFound",
    "RuntimeBackend",
    "RuntimeConfig",
    "RuntimeRoute",
    "Services",
    "SidecarError",
    "SidecarServer",
    "SidecarSettings",
    "Stage",
    "State",
    "Step",
    "StepsFactory",
    "StreamTransform",
    "UnsupportedOperation",
    "Upstream",
    "UpstreamError",
    "UpstreamFailure",
    "UpstreamRateLimited",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "Usage",
    "chunk_text",
    "create_apps",
    "default_steps",
    "is_final",
    "route_to",
    "run",
    "with_text",
]
