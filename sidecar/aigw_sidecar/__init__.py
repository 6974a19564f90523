"""aigw's data plane: an aiohttp proxy injected beside each workload.

The app talks to ``http://127.0.0.1:<port>`` with its usual OpenAI or Anthropic SDK; the
sidecar resolves the request's route from the mounted policy bundle, runs the governance
pipeline (:mod:`.pipeline`), calls a provider through an adapter (:mod:`.adapters`) and
answers in the caller's format. See ``docs/sidecar.md`` for the step interface, the error
mapping and hot reload.
"""

from .app import create_apps
from .context import RequestContext
from .errors import SidecarError
from .pipeline import Pipeline, Step
from .server import SidecarServer, run
from .settings import SidecarSettings

__all__ = [
    "Pipeline",
    "RequestContext",
    "SidecarError",
    "SidecarServer",
    "SidecarSettings",
    "Step",
    "create_apps",
    "run",
]
