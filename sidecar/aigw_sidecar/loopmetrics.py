"""Prometheus counters, gauges and histograms for the event loop: no lock, no per-call checks.

``prometheus_client`` guards every value with a lock and re-validates on every update: about
a microsecond per ``inc``, two to three per ``labels(...)`` lookup, and one request touched
some thirty of them (issue 20's profiles). The request path runs on one thread, the event
loop's, and so do scrapes (``/metrics`` is served by the same loop): a value here is a plain
float, a child is found by one dict lookup of its label values, and a histogram observation
is one ``bisect`` and two additions.

Exposition is ``prometheus_client``'s own: each family registers in the sidecar's
:class:`~prometheus_client.CollectorRegistry` and yields its
:class:`~prometheus_client.metrics_core.Metric` at scrape time, so ``/metrics`` reads as it
did with ``prometheus_client``'s classes (the same names, ``_total``/``_created`` and
``_bucket``/``_count``/``_sum`` series, ``le`` labels). The classes take the same arguments
and offer the same updates (``labels``, ``inc``, ``dec``, ``set``, ``set_function``,
``observe``), so a module switches by its import line.

**Only from the event-loop thread.** A metric updated from another thread (the span
exporter's, for instance) keeps ``prometheus_client``'s locked classes.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Self, cast

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

__all__ = ["Counter", "Gauge", "Histogram"]

_go_float = cast(Callable[[float], str], floatToGoString)
"""How Prometheus spells a bucket bound (``+Inf``, ``0.005``, ``1e+06``)."""
_DEFAULT_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip


class _Family:
    """What the three kinds share: the name, the labels and the children by label values."""

    __slots__ = ("_children", "_created", "_doc", "_labelnames", "_name", "_series")
    _type = "untyped"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._name = name
        self._doc = documentation
        self._labelnames = tuple(labelnames)
        self._created = time.time()
        self._children: dict[tuple[object, ...], Self] = {}
        """Children by the label values as given (and as strings), for one lookup."""
        self._series: dict[tuple[str, ...], Self] = {}
        """Children by their label values as strings: what a scrape exposes."""
        if registry is not None:
            registry.register(self)

    def labels(self, *values: object) -> Self:
        """The child of these label values (made on first use, then one dict lookup)."""
        child = self._children.get(values)
        if child is None:
            child = self._child_of(values)
        return child

    def _child_of(self, values: tuple[object, ...]) -> Self:
        if len(values) != len(self._labelnames) or not values:
            raise ValueError(f"{self._name}: expected labels {self._labelnames}, got {values}")
        key = tuple(str(v) for v in values)
        child = self._series.get(key)
        if child is None:
            child = self._series[key] = self._new_child()
        self._children[values] = child
        return child

    def _new_child(self) -> Self:
        raise NotImplementedError

    def _samples(self, name: str, labels: dict[str, str], metric: Metric) -> None:
        raise NotImplementedError

    def describe(self) -> list[Metric]:
        return [Metric(self._name, self._doc, self._type)]

    def collect(self) -> list[Metric]:
        metric = Metric(self._name, self._doc, self._type)
        if self._labelnames:
            names = self._labelnames
            for key, child in list(self._series.items()):
                child._samples(self._name, dict(zip(names, key, strict=True)), metric)
        else:
            self._samples(self._name, {}, metric)
        return [metric]


class Counter(_Family):
    """A monotonic counter (exposed as ``<name>_total`` and ``<name>_created``)."""

    __slots__ = ("_value",)
    _type = "counter"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._value = 0.0
        super().__init__(name.removesuffix("_total"), documentation, labelnames, registry)

    def _new_child(self) -> Self:
        child = type(self).__new__(type(self))
        child._value, child._created = 0.0, time.time()
        return child

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("counters can only be incremented by non-negative amounts")
        self._value += amount

    def _samples(self, name: str, labels: dict[str, str], metric: Metric) -> None:
        metric.add_sample(name + "_total", labels, self._value)
        metric.add_sample(name + "_created", labels, self._created)


class Gauge(_Family):
    """A value that goes up and down, or is read from a function at scrape time."""

    __slots__ = ("_function", "_value")
    _type = "gauge"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._value = 0.0
        self._function: Callable[[], float] | None = None
        super().__init__(name, documentation, labelnames, registry)

    def _new_child(self) -> Self:
        child = type(self).__new__(type(self))
        child._value, child._function = 0.0, None
        return child

    def inc(self, amount: float = 1) -> None:
        self._value += amount

    def dec(self, amount: float = 1) -> None:
        self._value -= amount

    def set(self, value: float) -> None:
        self._value = float(value)

    def set_function(self, function: Callable[[], float]) -> None:
        """Read the value from ``function`` at each scrape."""
        self._function = function

    def _samples(self, name: str, labels: dict[str, str], metric: Metric) -> None:
        function = self._function
        metric.add_sample(name, labels, float(function()) if function else self._value)


class Histogram(_Family):
    """Counts of observations by upper bound (``le``), their count and sum."""

    __slots__ = ("_bounds", "_counts", "_les", "_sum")
    _type = "histogram"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        registry: CollectorRegistry | None = None,
        buckets: Iterable[float] = _DEFAULT_BUCKETS,
    ) -> None:
        bounds = [float(b) for b in buckets]
        if bounds != sorted(bounds):
            raise ValueError("histogram buckets must be in increasing order")
        if not bounds or bounds[-1] != float("inf"):
            bounds.append(float("inf"))
        self._bounds = tuple(bounds)
        self._les = tuple(_go_float(b) for b in bounds)
        self._counts = [0] * len(bounds)
        self._sum = 0.0
        super().__init__(name, documentation, labelnames, registry)

    def _new_child(self) -> Self:
        child = type(self).__new__(type(self))
        child._bounds, child._les = self._bounds, self._les
        child._counts, child._sum = [0] * len(self._bounds), 0.0
        child._created = time.time()
        return child

    def observe(self, amount: float) -> None:
        """Count ``amount`` in the first bucket whose bound it does not exceed."""
        self._counts[bisect_left(self._bounds, amount)] += 1
        self._sum += amount

    def _samples(self, name: str, labels: dict[str, str], metric: Metric) -> None:
        total = 0
        for le, count in zip(self._les, list(self._counts), strict=True):
            total += count
            metric.add_sample(name + "_bucket", {**labels, "le": le}, total)
        metric.add_sample(name + "_count", labels, total)
        metric.add_sample(name + "_sum", labels, self._sum)
        metric.add_sample(name + "_created", labels, self._created)
