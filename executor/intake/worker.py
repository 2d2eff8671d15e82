"""The investigation loops: each thread takes queued alerts in arrival order (the oldest of an
alert group nobody is investigating first) and investigates them with its own long-lived
runtime, so Ray's workers stay warm between alerts. `casebook serve` runs several at once."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from casebook.executor.intake.dedup import Action
from casebook.executor.intake.metrics import IntakeMetrics
from casebook.executor.intake.queue import MAX_ATTEMPTS, WAITING, AlertQueue, QueuedAlert
from casebook.executor.investigation import window_for
from casebook.executor.pipeline import investigate
from casebook.executor.planner import Limits
from casebook.executor.record import InvestigationRecord
from casebook.executor.results import ResultsStore
from casebook.sdk.models import TimeWindow
from casebook.sdk.registry import Registry

log = logging.getLogger("casebook.intake")

IDLE_WAIT_S = 0.5
PRUNE_EVERY_S = 3600.0


class BusyGroups:
    """Alert groups (alert names) under investigation now, shared by the workers of a service."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names: dict[str, int] = {}

    def names(self) -> list[str]:
        with self._lock:
            return [name for name, count in self._names.items() if count]

    def add(self, name: str) -> None:
        with self._lock:
            self._names[name] = self._names.get(name, 0) + 1

    def remove(self, name: str) -> None:
        with self._lock:
            self._names[name] = max(0, self._names.get(name, 0) - 1)


class InvestigationWorker:
    """Investigates what the queue holds, one alert at a time, until stopped."""

    def __init__(
        self,
        queue: AlertQueue,
        results: ResultsStore,
        *,
        telemetry: Path,
        registry: Registry,
        runtime,
        metrics: IntakeMetrics,
        packs: Sequence[str] = (),
        limits: Limits | None = None,
        cooldown_s: float = 0.0,
        retention_s: float | None = None,
        sources: Sequence = (),
        deliveries=None,
        busy: BusyGroups | None = None,
        name: str = "casebook-intake-worker",
    ):
        self.queue = queue
        self.results = results
        self.telemetry = telemetry
        self.registry = registry
        self.runtime = runtime
        self.metrics = metrics
        self.packs = list(packs)
        self.limits = limits or Limits()
        self.cooldown_s = cooldown_s
        self.retention_s = retention_s
        self.sources = list(sources)
        self.deliveries = deliveries
        self.busy = busy or BusyGroups()
        self.name = name
        self.current: QueuedAlert | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pruned_at = 0.0

    # lifecycle

    def start(self) -> None:
        """Run the loop in a background thread."""
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        self._wake.set()

    def stop_soon(self) -> None:
        """Ask the loop to end after its current alert, without waiting."""
        self._stopping.set()
        self._wake.set()

    def stop(self, timeout: float) -> bool:
        """Finish the current alert (waiting at most `timeout` s); True if the thread ended.

        An alert still running when the process exits stays `running` in the queue and is
        investigated again, under the same id, when the service starts next.
        """
        self._stopping.set()
        self._wake.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._prune_now_and_then()
                if self.run_once():
                    continue
            except Exception:  # keep serving: the row was marked failed, the error logged
                log.exception("the intake worker hit an unexpected error")
            self._wake.wait(IDLE_WAIT_S)
            self._wake.clear()

    def _prune_now_and_then(self) -> None:
        if self.retention_s is None or time.monotonic() - self._pruned_at < PRUNE_EVERY_S:
            return
        self._pruned_at = time.monotonic()
        forgotten = self.queue.prune(self.retention_s)
        if forgotten:
            log.info("forgot %d finished queue rows older than the retention", forgotten)

    # work

    def run_once(self) -> bool:
        """Handle the oldest queued alert; False when the queue was empty."""
        item = self.queue.claim(self.busy.names())
        if item is None:
            return False
        self.current = item
        self.busy.add(item.alert.name)
        try:
            if item.action is Action.INVESTIGATE:
                self._investigate(item)
            else:
                self._record(item)
        except Exception as exc:
            self.queue.finish(item.id, "failed", failed=True, error=_describe(exc))
            self.metrics.investigations.labels("failed").inc()
            raise
        finally:
            self.busy.remove(item.alert.name)
            self.current = None
        return True

    def _investigate(self, item: QueuedAlert) -> None:
        assert item.investigation_id is not None
        started = time.monotonic()
        try:
            self.results.begin(
                InvestigationRecord(
                    id=item.investigation_id,
                    alert=item.alert,
                    window=_window(item),
                    runtime=self.runtime.name,
                    packs=self.packs,
                )
            )
            record = investigate(
                item.alert,
                telemetry=self.telemetry,
                registry=self.registry,
                runtime=self.runtime,
                results=self.results,
                packs=self.packs,
                limits=self.limits,
                investigation_id=item.investigation_id,
                sources=self.sources,
            )
        except Exception as exc:  # a failed investigation is stored and shown, not retried
            log.warning(
                "investigation %s of %s failed: %s",
                item.investigation_id,
                item.alert.name,
                _describe(exc),
            )
            self.results.save(
                InvestigationRecord(
                    id=item.investigation_id,
                    alert=item.alert,
                    window=_window(item),
                    runtime=self.runtime.name,
                    packs=self.packs,
                    status="failed",
                    finished_at=datetime.now(UTC),
                    notes=[f"The investigation failed: {_describe(exc)}"],
                )
            )
            self.queue.finish(item.id, "failed", failed=True, error=_describe(exc))
            self.metrics.investigations.labels("failed").inc()
            return
        self._deliver(record)
        if record.status == "failed":  # stored and shown as failed; the queue row says why
            reason = next((n for n in record.notes if n.startswith("The investigation failed")),
                          "The investigation failed")
            log.warning("investigation %s of %s: %s", record.id, item.alert.name, reason)
            self.queue.finish(item.id, "failed", failed=True, error=reason)
        else:
            self.queue.finish(item.id, record.status)
        self.metrics.investigations.labels(record.status).inc()
        self.metrics.duration.observe(time.monotonic() - started)
        self.metrics.latency.observe(max(0.0, time.time() - item.received_at))
        log.info(
            "investigated %s (%s): %s, %d findings",
            item.alert.name,
            item.investigation_id,
            record.status,
            len(record.findings),
        )

    def _deliver(self, record: InvestigationRecord) -> None:
        """Post-process and queue the deliveries before the alert counts as done: a crash in
        between redoes the investigation, and the outbox keeps one message per sink."""
        if self.deliveries is None:
            return
        try:
            self.deliveries.investigation_finished(record)
        except Exception:  # the investigation stands; its deliveries are what is missing
            log.exception("could not queue the deliveries of %s", record.id)

    def _record(self, item: QueuedAlert) -> None:
        record = self.results.get(item.related) if item.related else None
        if record is None:
            outcome = "unmatched"
        else:
            note = (
                resolution_note(item)
                if item.action is Action.RESOLVE
                else repeat_note(item, record, self.cooldown_s)
            )
            if note not in record.notes:  # a re-run after a crash must not add it twice
                record.notes.append(note)
                self.results.save(record)
            outcome = "resolved" if item.action is Action.RESOLVE else "cooldown"
        self.queue.finish(item.id, outcome)
        self.metrics.recorded.labels(outcome).inc()


def resolution_note(item: QueuedAlert) -> str:
    """The line added to an investigation when its alert resolves."""
    alert = item.alert
    ended = alert.ends_at or datetime.fromtimestamp(item.received_at, UTC)
    return (
        f"Resolved at {ended:%Y-%m-%d %H:%M:%S} UTC, {span(ended - alert.starts_at)} after "
        f"it began (reported by {item.source})."
    )


def repeat_note(item: QueuedAlert, record: InvestigationRecord, cooldown_s: float) -> str:
    """The line added to an investigation when its alert fires again within the cooldown."""
    again = item.alert.starts_at
    return (
        f"Fired again at {again:%Y-%m-%d %H:%M:%S} UTC, "
        f"{span(abs(again - record.alert.starts_at))} apart from this one; not investigated "
        f"again within the {span(timedelta(seconds=cooldown_s))} cooldown."
    )


def span(delta: timedelta) -> str:
    """A duration the way people say it: 45 s, 12 min, 3 h 5 min, 2 d 4 h."""
    seconds = int(abs(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours == 0:
        return f"{minutes} min"
    if days == 0:
        rest = minutes % 60
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    rest = hours % 24
    return f"{days} d {rest} h" if rest else f"{days} d"


def fail_abandoned(results: ResultsStore, queue: AlertQueue) -> int:
    """Mark `failed` the stored investigations no process will finish; how many there were.

    Called when the service starts, holding the results database's only lock: a `running`
    investigation whose alert is not waiting in the queue again was given up on (its process
    died repeatedly while investigating it) or belonged to a process that is gone.
    """
    failed = 0
    for investigation_id in results.unfinished():
        state = queue.state_of(investigation_id)
        if state in WAITING:
            continue  # investigated again under the same id
        reason = (
            f"the service stopped {MAX_ATTEMPTS} times while investigating this alert (an "
            "analyzer or the machine ended the process); it is not tried again"
            if state == "failed"
            else "the process running it stopped before it finished"
        )
        results.mark_failed(investigation_id, reason)
        failed += 1
    return failed


def _window(item: QueuedAlert) -> TimeWindow:
    try:
        return window_for(item.alert)
    except ValueError:  # a malformed lookback annotation; the failure note says so
        return TimeWindow.around(item.alert.starts_at, timedelta(hours=1), timedelta(minutes=15))


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return text if text else type(exc).__name__
