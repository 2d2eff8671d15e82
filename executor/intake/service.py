"""The intake service as one object: queue, results, runtime and worker, opened and closed
together. The web app (app.py) is a thin layer over it."""

from __future__ import annotations

import logging
from typing import Any

from casebook.executor.alerts import parse_alerts
from casebook.executor.intake.config import IntakeConfig
from casebook.executor.intake.metrics import IntakeMetrics
from casebook.executor.intake.queue import AlertQueue, QueueFull, Receipt
from casebook.executor.intake.worker import BusyGroups, InvestigationWorker
from casebook.executor.planner import Limits
from casebook.executor.results import ResultsStore

log = logging.getLogger("casebook.intake")
MAX_DEFAULT_CONCURRENCY = 8


def cluster_cpus(runtime) -> int:
    """CPUs the runtime can use: the Ray cluster's, or this machine's."""
    import os

    if getattr(runtime, "name", "") == "ray":
        import ray

        if ray.is_initialized():
            return max(1, int(ray.cluster_resources().get("CPU", os.cpu_count() or 1)))
    return max(1, os.cpu_count() or 1)


def concurrency_for(config: IntakeConfig, runtime) -> int:
    """Investigations in flight at once: as configured, else one per CPU (at most eight)."""
    if config.concurrency:
        return config.concurrency
    return max(1, min(MAX_DEFAULT_CONCURRENCY, cluster_cpus(runtime)))


class IntakeService:
    """Everything `casebook serve` runs, ready to start."""

    def __init__(
        self,
        config: IntakeConfig,
        queue: AlertQueue,
        results: ResultsStore,
        metrics: IntakeMetrics,
        workers: list[InvestigationWorker],
        runtimes: list,
        notes: list[str] | None = None,
    ):
        self.config = config
        self.queue = queue
        self.results = results
        self.metrics = metrics
        self.workers = workers
        self.runtimes = runtimes
        self.notes = notes or []

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
        metrics = IntakeMetrics(queue)
        # Ray takes seconds to start: pay it once, now, not in the first alert's latency. It
        # must start on the main thread, where its signal handling and clean shutdown work;
        # each runtime then keeps its workers between investigations.
        runtimes: list = []
        try:
            first = make_runtime(config.local, config.ray_address)
            log.info("starting the %s runtime", first.name)
            first.warm()
            runtimes.append(first)
            slots = concurrency_for(config, first)
            per_runtime = max(1, cluster_cpus(first) // slots)
            if slots > 1 and not config.local:
                # Each concurrent investigation gets its own share of the cluster's workers.
                first.shutdown()
                runtimes = []
                for _ in range(slots):
                    runtime = make_runtime(False, config.ray_address, workers=per_runtime)
                    runtime.warm()
                    runtimes.append(runtime)
            else:
                runtimes += [make_runtime(True) for _ in range(slots - 1)]
        except BaseException:
            for runtime in reversed(runtimes):
                runtime.shutdown()
            results.close()
            queue.close()
            raise
        busy = BusyGroups()
        workers = [
            InvestigationWorker(
                queue,
                results,
                telemetry=config.telemetry,
                registry=registry,
                runtime=runtime,
                metrics=metrics,
                packs=config.packs,
                limits=Limits(deadline_s=config.deadline_s),
                cooldown_s=config.cooldown_s,
                # One of them prunes the queue; the others would only repeat it.
                retention_s=config.retention_days * 86400 if index == 0 else None,
                busy=busy,
                name=f"casebook-intake-worker-{index}",
            )
            for index, runtime in enumerate(runtimes)
        ]
        log.info("investigating up to %d alert(s) at once", len(workers))
        return cls(config, queue, results, metrics, workers, runtimes, notes)

    @property
    def worker(self) -> InvestigationWorker:
        """The first investigation loop (there is at least one)."""
        return self.workers[0]

    @property
    def alive(self) -> bool:
        """Every investigation loop is running."""
        return all(w.alive for w in self.workers)

    def start(self) -> None:
        """Start investigating what is queued, including what a crash left behind."""
        for note in self.notes:
            log.warning(note)
        for worker in self.workers:
            worker.start()

    def close(self, timeout: float = 10.0) -> None:
        """Let the current investigations finish (up to `timeout` s), then release everything."""
        for worker in self.workers:
            worker.stop_soon()
        stopped = [worker.stop(timeout) for worker in self.workers]
        if not all(stopped):
            # Still investigating: their queue rows stay `running` and are redone on the next
            # start, so nothing is lost by leaving now. Closing the files under them would not help.
            busy = [w.current.alert.name for w in self.workers if w.current is not None]
            log.warning("stopped while investigating %s; redone on the next start",
                        ", ".join(busy) or "an alert")
            return
        # The runtime that started Ray stops it, so it goes last.
        for runtime in reversed(self.runtimes):
            runtime.shutdown()
        self.results.close()
        self.queue.close()

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
            self.metrics.rejected.labels("queue_full").inc()
            self.metrics.received.labels(source, "rejected_queue_full").inc(len(alerts))
            raise
        for receipt in receipts:
            outcome = "duplicate" if receipt.duplicate else receipt.action
            self.metrics.received.labels(source, outcome).inc()
        if any(not r.duplicate for r in receipts):
            for worker in self.workers:
                worker.wake()
        return receipts
