"""The intake service as one object: queue, results, runtime and worker, opened and closed
together. The web app (app.py) is a thin layer over it."""

from __future__ import annotations

import logging
from typing import Any

from casebook.executor.alerts import parse_alerts
from casebook.executor.intake.config import IntakeConfig
from casebook.executor.intake.metrics import IntakeMetrics
from casebook.executor.intake.queue import AlertQueue, QueueFull, Receipt
from casebook.executor.intake.worker import InvestigationWorker, fail_abandoned
from casebook.executor.planner import Limits
from casebook.executor.results import ResultsStore

log = logging.getLogger("casebook.intake")


class IntakeService:
    """Everything `casebook serve` runs, ready to start."""

    def __init__(
        self,
        config: IntakeConfig,
        queue: AlertQueue,
        results: ResultsStore,
        metrics: IntakeMetrics,
        worker: InvestigationWorker,
        runtime,
        notes: list[str] | None = None,
        deliveries=None,
    ):
        self.config = config
        self.queue = queue
        self.results = results
        self.metrics = metrics
        self.worker = worker
        self.runtime = runtime
        self.notes = notes or []
        self.deliveries = deliveries

    @classmethod
    def open(cls, config: IntakeConfig) -> IntakeService:
        """Check the telemetry and packs, open the queue and results, recover after a crash."""
        from casebook.executor.pipeline import build_registry, make_runtime
        from casebook.executor.telemetry_store import TelemetryStore

        TelemetryStore.open(config.telemetry)  # fail now, not on the first alert
        registry = build_registry(config.packs)
        # The results database takes a lock only one process gets: holding it first means a
        # second service on the same files stops here, before touching the other's queue rows.
        results = ResultsStore(config.db)
        try:
            queue = AlertQueue(config.queue_path, capacity=config.queue_capacity)
        except BaseException:
            results.close()
            raise
        notes = []
        requeued, given_up = queue.recover()
        if requeued:
            notes.append(
                f"{requeued} alert(s) were being investigated when the service stopped; "
                "they are investigated again under the same ids"
            )
        if given_up:
            notes.append(
                f"{given_up} alert(s) stopped the service repeatedly and were marked failed"
            )
        fail_abandoned(results, queue)
        metrics = IntakeMetrics(queue)
        runtime = make_runtime(config.local, config.ray_address)
        # Ray takes seconds to start: pay it once, now, not in the first alert's latency. It
        # must start on the main thread, where its signal handling and clean shutdown work;
        # the runtime then keeps its workers between investigations.
        log.info("starting the %s runtime", runtime.name)
        try:
            runtime.warm()
        except BaseException:
            results.close()
            queue.close()
            raise
        try:
            deliveries = _deliveries(config, results, registry)
        except BaseException:
            results.close()
            queue.close()
            raise
        worker = InvestigationWorker(
            queue,
            results,
            telemetry=config.telemetry,
            registry=registry,
            runtime=runtime,
            metrics=metrics,
            packs=config.packs,
            limits=Limits(deadline_s=config.deadline_s),
            cooldown_s=config.cooldown_s,
            retention_s=config.retention_days * 86400,
            sources=config.sources,
            deliveries=deliveries,
        )
        return cls(config, queue, results, metrics, worker, runtime, notes, deliveries)

    def start(self) -> None:
        """Start investigating what is queued, including what a crash left behind."""
        for note in self.notes:
            log.warning(note)
        self.worker.start()
        if self.deliveries is not None:
            self.deliveries.start()

    def close(self, timeout: float = 10.0) -> None:
        """Let the current investigation finish (up to `timeout` s), then release everything."""
        if not self.worker.stop(timeout):
            # Still investigating: its queue row stays `running` and is redone on the next
            # start, so nothing is lost by leaving now. Closing the files under it would not help.
            log.warning(
                "stopped while investigating %s; it is redone on the next start",
                self.worker.current.alert.name if self.worker.current else "an alert",
            )
            return
        if self.deliveries is not None:
            self.deliveries.stop()
            self.deliveries.outbox.close()
        self.runtime.shutdown()
        self.results.close()
        self.queue.close()

    def context(self, record):
        """Links, seen before and deliveries of an investigation, for its page."""
        if self.deliveries is None:
            return None
        return self.deliveries.context(record)

    def describe(self, record) -> dict[str, Any]:
        """The investigation's JSON (DESIGN.md contract) with its links, earlier occurrences
        and delivery log."""
        data = record.contract_json()
        context = self.context(record)
        if context is not None:
            data["links"] = [link.as_json() for link in context.links]
            data["seen_before"] = context.seen_before or []
            data["deliveries"] = context.deliveries
        return data

    def accept(self, body: Any, source: str, *, manual: bool = False) -> list[Receipt]:
        """Split a webhook body (or a casebook alert) into alerts and queue the new ones.

        Raises AlertFormatError for a body no format accepts and QueueFull when there is no room.
        """
        alerts = parse_alerts(body, origin=f"the {source} body")
        try:
            receipts = self.queue.accept(
                alerts, source, manual=manual, cooldown_s=self.config.cooldown_s
            )
        except QueueFull:
            # The refusal itself is counted once, with the answer, in casebook_requests_rejected.
            self.metrics.received.labels(source, "rejected_queue_full").inc(len(alerts))
            raise
        for receipt in receipts:
            outcome = "duplicate" if receipt.duplicate else receipt.action
            self.metrics.received.labels(source, outcome).inc()
        if any(not r.duplicate for r in receipts):
            self.worker.wake()
        return receipts


def _deliveries(config: IntakeConfig, results: ResultsStore, registry):
    """The outbox next to the results database and what sends from it."""
    from casebook.executor.config.schema import CasebookFile
    from casebook.executor.delivery import Backoff, Dispatcher, Outbox, outbox_path_for

    settings = config.settings or CasebookFile()
    retry = settings.delivery
    outbox = Outbox(
        outbox_path_for(config.db),
        Backoff(base_s=retry.backoff_s, cap_s=retry.max_backoff_s, attempts=retry.max_attempts),
    )
    from casebook.executor.postprocessing import find_postprocessors

    return Dispatcher(settings, outbox, results, public_url=config.base_url, registry=registry,
                      postprocessors=find_postprocessors(registry.packs))
