"""What the governor hands around: its settings, a bundle's view, an admission, a grant.

Split from :mod:`.governor` so the engine's flow reads on its own; these are plain data with
the little arithmetic that belongs to them (remaining budget of a grant).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aigw_contract import Bundle, DataClassification, EnforcementMode

from .constraints import Constraints
from .decisions import Decision, Verdict
from .identity import Identity, PodIdentity, PolicyIndex
from .leases import Share
from .money import Prices, route_worst_prices
from .plan import PlanCache, Role, Unit
from .store import Counter, Store
from .usage import Usage

__all__ = ["Admission", "BundleView", "GovernanceSettings", "Grant", "Usage"]


@dataclass(frozen=True, slots=True)
class GovernanceSettings:
    """Tunables of the engine (policy comes from the bundle, not from here)."""

    default_max_output_tokens: int = 4096
    """Output bound assumed when neither the request nor the policy sets one."""
    default_data_classification: str = "internal"
    """Classification of a request without ``X-AIGW-Data-Classification``."""
    lease_seconds: float = 30.0
    """How long a reservation (and its concurrency lease) is held without renewal. The
    governor renews it every third of that while the call runs and ends it when the call
    ends; a sidecar that dies stops renewing, so its leases end within this time."""
    pending_settlements: int = 10_000
    """Settlements kept for replay while the store is unreachable; older ones are dropped."""


class BundleView:
    """What one bundle means for this pod, computed once per bundle."""

    __slots__ = ("backend_prices", "bundle", "index", "plans", "route_prices")

    def __init__(self, bundle: Bundle, pod: PodIdentity) -> None:
        self.bundle = bundle
        self.index = PolicyIndex(bundle, pod)
        self.plans = PlanCache()
        self.route_prices = {r.name: route_worst_prices(r.backends) for r in bundle.routes}
        self.backend_prices = {
            (r.name, b.name): Prices.of(b.pricing) for r in bundle.routes for b in r.backends
        }


@dataclass(slots=True)
class Admission:
    """A request that passed identify, authorize and constrain."""

    request_id: str
    """The request's id, for logs (correlation only: never a key)."""
    reservation_id: str
    """The sidecar-generated id its reservation, lease and settlement are keyed by."""
    identity: Identity
    route: str
    constraints: Constraints
    prices: Prices
    """Worst-case prices of the route, used when the serving backend is not known."""
    decisions: list[Decision] = field(default_factory=list)
    classification: DataClassification = DataClassification.INTERNAL
    """The request's data classification (claimed, else the sidecar's default)."""

    @property
    def mode(self) -> EnforcementMode:
        return self.identity.policy.mode

    @property
    def warnings(self) -> list[str]:
        """Messages for ``X-AIGW-Warning`` (warn mode only)."""
        return [d.message for d in self.decisions if d.verdict is Verdict.WARNED]


@dataclass(slots=True)
class Grant:
    """A reservation held for the duration of a call."""

    admission: Admission
    store: Store | None
    counters: list[Counter]
    roles: list[Role]
    levels: tuple[float, ...]
    degraded_to: str | None = None
    """The fallback route a spent budget sent this request to."""
    settled: bool = False
    held_until: float = 0.0
    """When the store lets the reservation go unless it is renewed (the governor's clock)."""
    share: Share | None = None
    """Hot-tenant mode: what the call took from a leased block (its leased counters);
    ``counters`` then holds only what is still reserved per call (concurrency)."""

    def budget_remaining(self) -> tuple[int | None, int | None]:
        """Smallest remaining (tokens, nano-USD) over this request's budgets."""
        tokens: int | None = None
        money: int | None = None
        rows = list(zip(self.counters, self.roles, self.levels, strict=True))
        if self.share is not None:
            share = self.share
            rows += zip(share.counters, share.roles, share.levels, strict=True)
        for counter, role, level in rows:
            if role.budget is None:
                continue
            left = max(0, counter.limit - int(level))
            if role.unit is Unit.TOKENS:
                tokens = left if tokens is None else min(tokens, left)
            else:
                money = left if money is None else min(money, left)
        return tokens, money
