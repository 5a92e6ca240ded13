"""Prometheus metrics of one API process, in a registry the app owns (no global state)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "loopserve_http_requests_total",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "loopserve_http_request_seconds",
            "HTTP request latency by route",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
        )
        self.served = ServedCollector()
        self.registry.register(self.served)
        self.log_backlog = Gauge(
            "loopserve_prediction_log_backlog",
            "Predictions waiting to be logged",
            registry=self.registry,
        )
        self.live = LiveCollector()
        self.registry.register(self.live)


class ServedCollector(Collector):
    """`loopserve_served_version{model}`, read from the replica's champions at scrape time
    (`source`, set by the app's lifespan to api.champions.ModelCache.versions), so a deleted
    model's series goes with it."""

    def __init__(self) -> None:
        self.source: Callable[[], Mapping[str, int]] | None = None

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        source = self.source
        for model, version in sorted((source() if source else {}).items()):
            family.add_metric([model], version)
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "loopserve_served_version", "Champion version this replica serves", labels=["model"]
        )


class Health(Protocol):
    """One model's live state (api.live.ModelHealth)."""

    model: str
    metric: str
    value: float | None
    drift: dict[str, bool]


class LiveCollector(Collector):
    """Per-model series read from the database at scrape time: the champion's live metric and
    whether a change was detected on it. Until `source` is set (the app's lifespan sets it to
    api.live.Monitor.health), and whenever it fails, these series are left out of the scrape;
    the rest of /metrics is unaffected."""

    def __init__(self) -> None:
        self.source: Callable[[], Sequence[Health]] | None = None

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        source = self.source
        if source is None:
            return
        try:
            found = source()
        except Exception as exc:  # a scrape must survive a database that is down
            log.warning("live metrics left out of this scrape: %s: %s", type(exc).__name__, exc)
            return
        metric, drift = self._families()
        for h in found:
            if h.value is not None:
                metric.add_metric([h.model, h.metric], h.value)
            for kind, detected in sorted(h.drift.items()):
                drift.add_metric([h.model, kind], 1.0 if detected else 0.0)
        yield metric
        yield drift

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "loopserve_live_metric",
                "The champion's metric (the spec's) over its newest 500 labelled predictions",
                labels=["model", "metric"],
            ),
            GaugeMetricFamily(
                "loopserve_drift_detected",
                "1 if a change of this kind (concept, data) was detected on the champion",
                labels=["model", "kind"],
            ),
        )
