"""The service's own metrics, in Prometheus exposition format, so it is scraped like the rest.

Queue figures are read from the queue file at scrape time, so they are right after a restart;
counters and histograms count what this process did since it started, as Prometheus expects.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from casebook.executor.intake.queue import AlertQueue

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)


class QueueCollector(Collector):
    """Queue depth, rows per state and the age of the oldest waiting alert."""

    def __init__(self, queue: AlertQueue):
        self.queue = queue

    def collect(self) -> Iterator[Metric]:
        counts = self.queue.counts()
        yield GaugeMetricFamily(
            "casebook_queue_depth",
            "Alerts accepted and not yet finished (queued or running).",
            value=counts["queued"] + counts["running"],
        )
        yield GaugeMetricFamily(
            "casebook_queue_capacity",
            "Alerts the queue holds before webhooks get 503.",
            value=self.queue.capacity,
        )
        by_state = GaugeMetricFamily(
            "casebook_queue_alerts", "Alerts in the queue file, by state.", labels=["state"]
        )
        for state, count in sorted(counts.items()):
            by_state.add_metric([state], count)
        yield by_state
        yield GaugeMetricFamily(
            "casebook_queue_oldest_wait_seconds",
            "How long the oldest queued alert has waited.",
            value=self.queue.oldest_wait_s(),
        )


class IntakeMetrics:
    """Every metric of one service, in a registry of its own."""

    def __init__(self, queue: AlertQueue):
        self.registry = CollectorRegistry(auto_describe=True)
        self.received = Counter(
            "casebook_alerts_received",
            "Alerts received by webhook or API, by what became of them.",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "casebook_requests_rejected",
            "Requests refused, by reason (unauthorized, too_large, invalid, queue_full, ...).",
            ["reason"],
            registry=self.registry,
        )
        self.investigations = Counter(
            "casebook_investigations",
            "Investigations finished, by status.",
            ["status"],
            registry=self.registry,
        )
        self.recorded = Counter(
            "casebook_alerts_recorded",
            "Alerts recorded against an earlier investigation instead of investigated, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "casebook_alert_to_report_seconds",
            "From accepting an alert to its stored report.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.duration = Histogram(
            "casebook_investigation_seconds",
            "Time spent investigating one alert.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(QueueCollector(queue))

    def exposition(self) -> bytes:
        """The text scraped at /metrics."""
        return generate_latest(self.registry)
