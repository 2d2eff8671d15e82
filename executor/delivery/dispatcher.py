"""Deliveries as one object for `casebook serve`: it puts messages in the outbox (investigations
as they finish, post-processor actions, the scheduled report) and a background thread sends
what is due. Sending never happens on the investigation thread, so a slow or failing sink
delays nothing but its own messages."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from casebook.executor.config.schema import CasebookFile, Sink
from casebook.executor.delivery.messages import Message, investigation_message, shaped
from casebook.executor.delivery.outbox import Outbox
from casebook.executor.delivery.routing import sinks_for
from casebook.executor.delivery.schedule import (
    coverage_key,
    coverage_message,
    latest_moment,
    period_ending,
)
from casebook.executor.delivery.transport import DeliveryFailed, send
from casebook.executor.record import InvestigationRecord
from casebook.executor.reports.context import ReportContext, context_for

log = logging.getLogger("casebook.delivery")

IDLE_WAIT_S = 1.0
PRUNE_EVERY_S = 3600.0


class Dispatcher:
    """Routes, stores and sends messages to the configured sinks."""

    def __init__(
        self,
        config: CasebookFile,
        outbox: Outbox,
        results,
        *,
        public_url: str = "",
        registry=None,
        postprocessors: Sequence = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.config = config
        self.outbox = outbox
        self.results = results
        self.public_url = public_url.rstrip("/")
        self.registry = registry
        self.postprocessors = list(postprocessors)
        self.clock = clock
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pruned_at = 0.0

    # what a report shows around an investigation

    def context(self, record: InvestigationRecord) -> ReportContext:
        return context_for(
            record, results=self.results, templates=self.config.links, outbox=self.outbox,
            days=self.config.retention.seen_before_days,
        )

    def report_url(self, investigation_id: str) -> str:
        return f"{self.public_url}/investigations/{investigation_id}"

    # into the outbox

    def investigation_finished(self, record: InvestigationRecord) -> None:
        """Everything that follows a ranked investigation: post-processors, then deliveries."""
        if self.postprocessors:
            self.run_postprocessors(record)
        self.enqueue_investigation(record)

    def run_postprocessors(self, record: InvestigationRecord) -> None:
        """Run the post-processors; keep their annotations, queue their messages."""
        from casebook.executor.postprocessing import postprocess

        notes, messages = postprocess(self.postprocessors, record, self.report_url(record.id))
        for sink_name, message in messages:
            sink = self.config.sink(sink_name)
            if sink is None:
                known = ", ".join(s.name for s in self.config.sinks) or "none are configured"
                notes.append(f"Post-processor {message.payload['postprocessor']} asked for "
                             f"the sink {sink_name!r}, which does not exist (sinks: {known}).")
                continue
            self.enqueue(message, [sink])
        new = [n for n in notes if n not in record.notes]  # a redone run adds nothing twice
        if new:
            record.notes.extend(new)
            if self.results is not None:
                self.results.save(record)

    def enqueue_investigation(self, record: InvestigationRecord) -> list[str]:
        """Put the investigation's message in the outbox for every routed sink; their names."""
        sinks = sinks_for(self.config, record)
        if not sinks:
            return []
        from casebook.executor.reports.markdown import render_markdown

        context = self.context(record)
        earlier = [{**e, "report_url": f"{self.public_url}{e['report_url']}"}
                   for e in context.seen_before or []]
        context = ReportContext(links=context.links, seen_before=earlier,
                                seen_before_days=context.seen_before_days)
        message = investigation_message(
            record, report_url=self.report_url(record.id), seen_before=earlier,
            links=context.links, markdown=render_markdown(record, context),
        )
        self.enqueue(message, sinks)
        return [s.name for s in sinks]

    def enqueue(self, message: Message, sinks: Sequence[Sink]) -> int:
        """Commit the message for each sink (once per idempotency key); how many were new."""
        added = 0
        for sink in sinks:
            body, content_type, name = shaped(message, sink)
            added += self.outbox.put(
                message.idempotency_key(sink.name), sink=sink.name, kind=message.kind, body=body,
                content_type=content_type, investigation_id=message.investigation_id, name=name,
            )
        if added:
            self._wake.set()
        return added

    def schedule_coverage(self, now: datetime | None = None) -> int:
        """Put this period's coverage report in the outbox unless it is there already."""
        schedule = self.config.coverage
        if schedule is None:
            return 0
        moment = latest_moment(schedule, now or self.clock())
        missing = [self.config.sink(n) for n in schedule.sinks
                   if not self.outbox.has(f"{coverage_key(moment)}:{n}")]
        sinks = [s for s in missing if s is not None]
        if not sinks:
            return 0
        from casebook.executor.coverage.markdown import render_markdown
        from casebook.executor.coverage.report import build_report

        period = period_ending(schedule, moment)
        with self.results.reading() as con:
            report = build_report(con, period, registry=self.registry,
                                  database=str(self.results.path))
        message = coverage_message(report, moment, public_url=self.public_url,
                                   markdown=render_markdown(report))
        added = self.enqueue(message, sinks)
        log.info("the coverage report for %s is queued for %s", period.label,
                 ", ".join(s.name for s in sinks))
        return added

    # out of the outbox

    def deliver_due(self, now: float | None = None) -> int:
        """Send every message that is due; how many were delivered."""
        delivered = 0
        for delivery in self.outbox.due(now):
            if self._stopping.is_set():
                break
            sink = self.config.sink(delivery.sink)
            if sink is None:
                self.outbox.failed(delivery.id, f"no sink named {delivery.sink!r} is configured "
                                   "any more", permanent=True)
                continue
            try:
                detail = send(sink, delivery, self.config.delivery.timeout_s)
            except DeliveryFailed as failure:
                state = self.outbox.failed(delivery.id, str(failure), permanent=failure.permanent)
                log.warning("delivery %s to %s failed (%s): %s", delivery.key, sink.name,
                            "given up" if state == "failed" else "will retry", failure)
                continue
            self.outbox.delivered(delivery.id, detail)
            delivered += 1
            log.info("delivered %s to %s", delivery.key, sink.name)
        return delivered

    # the thread

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="casebook-delivery", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> bool:
        self._stopping.set()
        self._wake.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _prune_now_and_then(self) -> None:
        if time.monotonic() - self._pruned_at < PRUNE_EVERY_S and self._pruned_at:
            return
        self._pruned_at = time.monotonic()
        forgotten = self.outbox.prune(self.config.retention.deliveries_days * 86400)
        if forgotten:
            log.info("forgot %d finished deliveries older than the retention", forgotten)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._prune_now_and_then()
                self.schedule_coverage()
                self.deliver_due()
            except Exception:  # keep delivering: one broken message must not stop the rest
                log.exception("the delivery thread hit an unexpected error")
            wait = self.outbox.next_due_in()
            self._wake.wait(IDLE_WAIT_S if wait is None else min(IDLE_WAIT_S, wait))
            self._wake.clear()


