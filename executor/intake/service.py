"""The intake service as one object: queue, results, runtime and worker, opened and closed
together. The web app (app.py) is a thin layer over it."""

from __future__ import annotations

import logging
from typing import Any

from casebook.executor.alerts import parse_alerts
from casebook.executor.intake.config import IntakeConfig
from casebook.executor.intake.metrics import IntakeMetrics
from casebook.executor.intake.queue import AlertQueue, QueueFull, Receipt
from casebook.executor.intake.worker import BusyGroups, InvestigationWorker, fail_abandoned
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
    """Investigations in flight at once: as configured, else one per CPU (at most eight) on
    Ray, and one in-process (`--local` analyzers share one machine and its child processes)."""
    if config.concurrency:
        return config.concurrency
    if config.local:
        return 1
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
        deliveries=None,
    ):
        self.config = config
        self.queue = queue
        self.results = results
        self.metrics = metrics
        self.workers = workers
        self.runtimes = runtimes
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
        # Ray takes seconds to start: pay it once, now, not in the first alert's latency. It
        # must start on the main thread, where its signal handling and clean shutdown work;
        # each runtime then keeps its workers between investigations.
        runtimes: list = []
        try:
            if config.local or not config.ray_address:
                # This machine: the slots are known before anything starts.
                slots = concurrency_for(config, None)
                cpus = cluster_cpus(None)
                per_runtime = max(1, cpus // slots)
                # Each worker's DuckDB gets its share of the CPUs, not every one of them: the
                # slots run at once, and threads beyond a worker's share cost more CPU per
                # investigation than they save it in time.
                threads = max(1, cpus // (slots * per_runtime))
                for _ in range(slots):
                    runtime = make_runtime(config.local, None,
                                           workers=None if config.local else per_runtime,
                                           duckdb_threads=threads)
                    log.info("starting the %s runtime", runtime.name)
                    runtime.warm()
                    runtimes.append(runtime)
            else:
                # A cluster: connect once to learn its CPUs, then give each slot its share.
                first = make_runtime(False, config.ray_address)
                log.info("joining the Ray cluster at %s", config.ray_address)
                first.warm()
                runtimes.append(first)
                slots = concurrency_for(config, first)
                if slots > 1:
                    # The first slot keeps the connection (it ends Ray's at the close) and
                    # gives back the workers it started for all the CPUs.
                    per_runtime = max(1, cluster_cpus(first) // slots)
                    first.pool.shutdown_workers()
                    first.pool.workers = per_runtime
                    first.warm()
                    for _ in range(slots - 1):
                        runtime = make_runtime(False, config.ray_address, workers=per_runtime)
                        runtime.warm()
                        runtimes.append(runtime)
        except BaseException:
            for runtime in reversed(runtimes):
                runtime.shutdown()
            results.close()
            queue.close()
            raise
        try:
            deliveries = _deliveries(config, results, registry)
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
                sources=config.sources,
                deliveries=deliveries,
            )
            for index, runtime in enumerate(runtimes)
        ]
        log.info("investigating up to %d alert(s) at once", len(workers))
        return cls(config, queue, results, metrics, workers, runtimes, notes, deliveries)

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
        if self.deliveries is not None:
            self.deliveries.start()

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
        if self.deliveries is not None:
            self.deliveries.stop()
            self.deliveries.outbox.close()
        # The runtime that started Ray stops it, so it goes last.
        for runtime in reversed(self.runtimes):
            runtime.shutdown()
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
            for worker in self.workers:
                worker.wake()
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
