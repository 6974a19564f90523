"""Step: the ``GET /v1/models`` list of this workload, prepared once per bundle.

The list is "the routes this workload may use": the routes of every use case of the policy
that governs this pod, with their model aliases (resolved by the governance step's
:meth:`prepare`, which runs before this one), or every route of the bundle when no policy
governs the pod. The bodies are rendered here, once per bundle, so the handler only picks
one. This step has no per-request hooks.
"""

from __future__ import annotations

from aigw_sidecar.governance import BundleView
from aigw_sidecar.pipeline import Step
from aigw_sidecar.runtime import RuntimeConfig, render_models

__all__ = ["MODELS_STEP", "ModelsList"]

MODELS_STEP = "models"


class ModelsList(Step):
    """Prepares ``config.prepared["models"]``: (OpenAI body, Anthropic body)."""

    name = MODELS_STEP

    def prepare(self, config: RuntimeConfig) -> tuple[bytes, bytes]:
        view = config.prepared.get("govern")
        policy = view.index.policy if isinstance(view, BundleView) else None
        if policy is None:
            return config.models_openai, config.models_anthropic
        allowed = {route for use_case in policy.use_cases for route in use_case.routes}
        names = [name for name in config.routes if name in allowed]
        names += [alias for alias, route in config.aliases.items() if route in allowed]
        return render_models(config.bundle, names)
