"""The Ray runtime: long-lived workers, invocations shipped by name in batches, failures contained.

One worker actor per CPU holds its DuckDB connection and the imported packs, and stays up
between investigations (`start`/`stop` are per investigation, `shutdown` ends it all). A
fan-out's grouped query (`telemetry.shared`) runs once per investigation in the `SharedScans`
actor (`runtime.scans`) and reaches the workers through the object store. Batches go to the
worker that already ran the same analyzer, which holds that result already. Results come back
batch by batch and the plan schedules follow-ups at once.

Failures: a slow query is interrupted inside the worker (`run_invocation`'s watchdog). Python
that never returns is seen from here: the worker answers `progress()` from a second thread, and
an invocation past its timeout plus `grace_s` gets its worker killed and replaced. A worker that
dies costs its batch, which runs again one invocation at a time on the other workers; an
invocation that kills a worker a second time that way is `crashed`.

    runtime = RayRuntime()                # a local Ray; RayRuntime(address="ray://...") joins one
    record = run_investigation(alert, registry=..., source=..., runtime=runtime, store_path=...)
    runtime.shutdown()
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import re
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle

from casebook.executor.errors import UserError
from casebook.executor.planner import Task
from casebook.executor.runtime.batches import PIPELINE, Batch, Slot, TaskQueues
from casebook.executor.runtime.contract import RunContext
from casebook.executor.runtime.memory_guard import read_note
from casebook.executor.runtime.pool import WorkerPool
from casebook.executor.runtime.window_cache import PreparedWindow, WindowPreparation
from casebook.executor.shipped import ResultColumns
from casebook.sdk.invocation import Outcome, Status
from casebook.sdk.registry import Registry
from casebook.sdk.telemetry import TelemetrySource

GRACE_S = 0.5
PROBE_AFTER_S = 0.2  # a batch running longer than this is asked what it is doing
CUT_AFTER_S = 1.0  # an invocation running longer than this sends its batch-mates elsewhere
# Largest batch of invocations sent to a worker at once. Batches are sized to share the queue
# between the workers (batches.TaskQueues.take) and this only caps them: at 10,000 and 100,000
# trivial invocations 1,024 took 7% less time than 256 (fewer Ray calls, pickles and result
# columns), with the same time for the benchmark's real analyzers.
MAX_BATCH = 1024
PREPARE_AFTER_INVOCATIONS = 64  # invocations that sent their own queries ...
PREPARE_AFTER_S = 2.0  # ... and spent this long doing it, with as many still to run
PREPARE_MODES = ("auto", "always", "never")

BatchHook = Callable[[Batch, float, str], None]


class RayRuntime:
    """Runs tasks on Ray worker actors; the default runtime of every command."""

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        *,
        max_batch: int = MAX_BATCH,
        grace_s: float = GRACE_S,
        prepare_window: str = "auto",
        window_dir: str | Path | None = None,
        duckdb_threads: int | None = None,
        memory_mb: int | None = None,
    ) -> None:
        if prepare_window not in PREPARE_MODES:
            raise ValueError(
                f"prepare_window={prepare_window!r}: expected one of {', '.join(PREPARE_MODES)}"
            )
        self.max_batch = max_batch
        self.grace_s = grace_s
        self.window_dir = window_dir or os.environ.get("CASEBOOK_WINDOW_DIR")
        # A prepared window must be on storage every node reads; locally a temp dir is.
        cluster_without_dir = address and not self.window_dir and prepare_window == "auto"
        self.prepare_window = "never" if cluster_without_dir else prepare_window
        self.prepare_after = (PREPARE_AFTER_INVOCATIONS, PREPARE_AFTER_S)
        self.on_batch: BatchHook | None = None  # observability: (batch, seconds, status)
        self.pool = WorkerPool(address, workers, duckdb_threads, memory_mb)
        self._registries: list[tuple[Registry, int, str, Any]] = []
        self._ids = itertools.count()
        self._reset()

    def _reset(self) -> None:
        self._context: RunContext | None = None
        self._scans: Any = None
        self._boxed: list[Any] = []
        self._version = 0
        self._queues = TaskQueues()
        self._batches: dict[Any, Batch] = {}
        self._probes: dict[Any, Slot] = {}
        self._query_invocations = 0
        self._query_ms = 0.0
        self._preparation: WindowPreparation | None = None
        self._prepared_seen = False
        for slot in self.pool.slots:
            slot.batches.clear()
            slot.analyzers.clear()
            slot.probe, slot.slow = None, False

    @property
    def replaced(self) -> int:
        """Workers replaced so far (killed for a hang, or lost)."""
        return self.pool.replaced

    def warm(self) -> None:
        """Connect to Ray and start the workers now, so the first investigation does not wait."""
        self.pool.warm()

    def worker_pids(self) -> list[int]:
        return self.pool.pids()

    def shutdown(self) -> None:
        """Stop the workers, and Ray itself when this runtime started it."""
        self._registries = []
        self.pool.shutdown()

    # -- one investigation --------------------------------------------------------------------

    def start(self, context: RunContext) -> None:
        if context.store_path is None:
            raise UserError(
                "the Ray runtime reads telemetry from a store on disk, and this investigation "
                "has none: pass store_path= to run_investigation (casebook investigate does), "
                "or use the in-process runtime (--local)"
            )
        self.pool.warm()
        self._reset()
        self._context = context
        self._scans = self.pool.scans_alive()
        self._registry_box = self._registry_ref(context.registry)
        self._publish(prepared=None)
        if self.prepare_window == "always":
            self._preparation = WindowPreparation(
                self._writing_source(), context.window, self._window_parent()
            )
            self._preparation.wait()
            self._advance_preparation()

    def submit(self, tasks: list[Task]) -> None:
        self._queues.add(tasks)

    def pending(self) -> int:
        return len(self._queues) + sum(len(b.tasks) for b in self._batches.values())

    def stop(self) -> None:
        """End the investigation: abandon unfinished batches; the workers stay up."""
        if self._context is not None:
            for slot in self.pool.slots:
                if any(batch.tasks for batch in slot.batches):
                    self._replace(slot)  # busy with work nobody waits for any more
                else:
                    slot.actor.release.remote(self._context.investigation_id)
            if self._scans is not None:
                self._scans.release.remote(self._context.investigation_id)
        if self._preparation is not None:
            self._preparation.remove()
        self._reset()

    @property
    def prepared(self) -> PreparedWindow | None:
        """The prepared window of the running investigation, if any."""
        return self._preparation.result if self._preparation else None

    def _registry_ref(self, registry: Registry) -> tuple[str, Any]:
        """The registry in the object store, put there once (again if analyzers were added)."""
        for known, size, token, ref in self._registries:
            if known is registry and size == len(registry):
                return token, ref
        token, ref = uuid.uuid4().hex, self.pool.ray.put(registry)
        self._registries = [*self._registries[-3:], (registry, len(registry), token, ref)]
        return token, ref

    def _publish(self, prepared: PreparedWindow | None) -> None:
        """Put what workers need to open the investigation in the object store."""
        from casebook.executor.runtime.worker import WorkerContext

        assert self._context is not None
        context, (token, registry_ref) = self._context, self._registry_box
        shipped = WorkerContext(
            context.investigation_id,
            self._version,
            context.alert,
            context.window,
            _absolute(str(context.store_path)),
            token,
            tuple(sys.path),
            prepared,
            self._scans,
        )
        self._boxed = [
            context.investigation_id,
            self._version,
            self.pool.ray.put(shipped),
            registry_ref,
        ]

    def _writing_source(self) -> TelemetrySource:
        """A source of the executor's own that may write the prepared window's files.

        The investigation's source is sealed once analyzers (fan-out sources) query it.
        """
        from casebook.executor.telemetry_store import TelemetryStore

        assert self._context is not None and self._context.store_path is not None
        return TelemetryStore.open(self._context.store_path).source()

    def _window_parent(self) -> Path | None:
        return Path(self.window_dir) if self.window_dir else None

    def _advance_preparation(self) -> None:
        """Prepare the window once invocations spend real time on their own queries."""
        if self._context is None:
            return
        if (
            self._preparation is None
            and self.prepare_window == "auto"
            and self._query_invocations >= self.prepare_after[0]
            and self._query_ms >= self.prepare_after[1] * 1000
            and len(self._queues) >= self.prepare_after[0]
        ):
            self._preparation = WindowPreparation(
                self._writing_source(), self._context.window, self._window_parent()
            )
        if self._preparation is None or self._prepared_seen or not self._preparation.finished:
            return
        self._prepared_seen = True
        if self._preparation.result is not None:
            self._version += 1
            self._publish(prepared=self._preparation.result)

    # -- the loop -----------------------------------------------------------------------------

    def poll(self, timeout: float) -> list[Outcome]:
        ray = self.pool.ray
        end = time.monotonic() + timeout
        outcomes: list[Outcome] = []
        while True:
            self._advance_preparation()
            self._dispatch()
            self._send_probes()
            waiting = [*self._batches, *self._probes]
            if not waiting:
                return outcomes
            wait_s = 0.0 if outcomes else max(0.0, min(end - time.monotonic(), PROBE_AFTER_S))
            ready, _ = ray.wait(waiting, num_returns=1, timeout=wait_s)
            if ready:
                ready, _ = ray.wait(waiting, num_returns=len(waiting), timeout=0)
            # Batches first, oldest first: a probe answer about a batch that has just finished
            # must not condemn it.
            for ref in sorted(ready, key=self._arrival_order):
                if ref in self._batches:
                    self._collect(self._batches[ref], outcomes)
                elif ref in self._probes:
                    self._answer(self._probes.pop(ref), ref, outcomes)
            self._check_unanswered(outcomes)
            if outcomes or time.monotonic() >= end:
                self._dispatch()
                return outcomes

    def _arrival_order(self, ref: Any) -> float:
        batch = self._batches.get(ref)
        return math.inf if batch is None else batch.id

    def _dispatch(self) -> None:
        if self._context is None:
            return
        slots = self.pool.slots
        for slot in sorted(slots, key=lambda s: len(s.batches)):
            while not slot.slow and len(slot.batches) < PIPELINE and self._queues:
                tasks, alone = self._queues.take(slot, len(slots), self.max_batch)
                self._send(slot, tasks, alone)

    def _send(self, slot: Slot, tasks: list[Task], alone: bool) -> None:
        # One pickle of the whole batch: Ray would otherwise walk the list element by element
        # (msgpack), a few microseconds per invocation in the driver. cloudpickle, as Ray's
        # own, for findings of classes defined where workers cannot import them (a test).
        wire = cloudpickle.dumps(
            [(t.key, t.analyzer, t.params, t.upstream, t.timeout_s) for t in tasks], protocol=5
        )
        batch_id = next(self._ids)
        ref = slot.actor.run_batch.remote(batch_id, self._boxed, wire)
        if not slot.batches:
            slot.head_since = time.monotonic()
        batch = Batch(batch_id, tasks, slot, ref, alone)
        slot.batches.append(batch)
        self._batches[ref] = batch

    def _collect(self, batch: Batch, outcomes: list[Outcome]) -> None:
        ray = self.pool.ray
        try:
            results = ray.get(batch.ref)
        except ray.exceptions.RayActorError as exc:
            self._worker_died(batch.slot, exc, outcomes)
            return
        except ray.exceptions.RayError as exc:
            failed = ResultColumns.failed(
                len(batch.tasks), Status.ERROR, f"the worker failed to run its batch: {exc}",
                time.time(),
            )
            self._finish(batch, "error")
            self._deliver(batch, failed, outcomes)
            return
        self._finish(batch, "ok")
        self._deliver(batch, results, outcomes)

    def _deliver(self, batch: Batch, results: ResultColumns, outcomes: list[Outcome]) -> None:
        if len(results) < len(batch.tasks):
            # The worker ended the batch early behind a long invocation, and its answer saying
            # so is not in yet: the rest runs elsewhere.
            self._queues.put_back(batch.tasks[len(results) :], batch.alone)
            batch.tasks = batch.tasks[: len(results)]
        for outcome in results.outcomes(batch.tasks):
            if outcome.queries:
                self._query_invocations += 1
                self._query_ms += outcome.duration_ms
            outcomes.append(outcome)

    def _finish(self, batch: Batch, status: str) -> None:
        slot = batch.slot
        # Not always the head: batches may come back out of order (on a cluster, or once the
        # worker skipped some), and one left behind would hold its place in the pipeline.
        for place, queued in enumerate(slot.batches):
            if queued is batch:
                del slot.batches[place]
                break
        self._batches.pop(batch.ref, None)
        slot.head_since, slot.slow = time.monotonic(), False
        self._report(batch, status)

    def _report(self, batch: Batch, status: str) -> None:
        if self.on_batch is not None:
            self.on_batch(batch, time.monotonic() - batch.sent, status)

    # -- failures -----------------------------------------------------------------------------

    def _send_probes(self) -> None:
        now = time.monotonic()
        for slot in self.pool.slots:
            if (
                slot.batches
                and slot.probe is None
                and now - max(slot.head_since, slot.answered) >= PROBE_AFTER_S
                and self._is_up(slot)
            ):
                slot.probe_behind = [b.id for b in list(slot.batches)[1:]]
                slot.probe = slot.actor.progress.remote(CUT_AFTER_S, slot.probe_behind)
                slot.probe_sent = now
                self._probes[slot.probe] = slot

    def _is_up(self, slot: Slot) -> bool:
        """Whether the slot's worker has started (a fresh one takes a second or more)."""
        if slot.pid is None:
            ray = self.pool.ray
            if not ray.wait([slot.ready], timeout=0)[0]:
                return False
            try:
                slot.pid = ray.get(slot.ready)
            except ray.exceptions.RayError:
                return False  # its batch reports the failure
            slot.head_since = time.monotonic()  # nothing of the batch ran before
        return True

    def _answer(self, slot: Slot, ref: Any, outcomes: list[Outcome]) -> None:
        if slot.probe is not ref:
            return  # from a worker since replaced
        slot.probe, slot.answered = None, time.monotonic()
        try:
            answer = self.pool.ray.get(ref)
        except self.pool.ray.exceptions.RayError:
            return  # the batch itself reports the death
        if answer is None or not slot.batches or slot.batches[0].id != answer[0]:
            return
        head, (_, index, elapsed) = slot.batches[0], answer
        if index >= len(head.tasks):
            return  # the invocation it names was moved elsewhere before it began
        if elapsed > CUT_AFTER_S:
            # The worker ends this batch after the long invocation and skips those behind it.
            slot.slow = True
            self._queues.put_back(head.tasks[index + 1 :], head.alone)
            head.tasks = head.tasks[: index + 1]
            for batch in reversed(list(slot.batches)[1:]):
                if batch.id in slot.probe_behind:
                    self._queues.put_back(batch.tasks, batch.alone)
                    batch.tasks = []
        if elapsed > head.tasks[index].timeout_s + self.grace_s:
            self._stuck(slot, index, elapsed, outcomes)

    def _check_unanswered(self, outcomes: list[Outcome]) -> None:
        now = time.monotonic()
        for slot in self.pool.slots:
            if slot.probe is None or not slot.batches or not slot.batches[0].tasks:
                # An emptied head batch (its tasks moved elsewhere) has nothing to condemn:
                # the worker returns it at once, and the probe is judged on the next batch.
                continue
            # A probe sent while an earlier batch ran is judged from when this batch became
            # the head, against this batch's timeouts.
            since = max(slot.probe_sent, slot.head_since)
            limit = max(t.timeout_s for t in slot.batches[0].tasks) + self.grace_s
            if now - since > limit:
                self._stuck(slot, None, now - since, outcomes)

    def _stuck(
        self, slot: Slot, index: int | None, elapsed: float, outcomes: list[Outcome]
    ) -> None:
        """An invocation ran past its timeout in Python: replace the worker, keep the rest.

        `index` is None when the worker stopped answering (code holding the interpreter);
        which invocation holds it is then found by running them one at a time.
        """
        head, *later = self._take_back(slot, "lost")
        self._replace(slot)
        self._queues.put_back_batches(later)
        if index is not None and index >= len(head.tasks):
            index = None  # the answer names an invocation no longer in the batch
        if not head.tasks:
            return
        if index is None and len(head.tasks) > 1:
            self._queues.retry_alone(head.tasks)
            return
        why = (
            "Python code that never returns"
            if index is not None
            else "its worker stopped answering, held by code that does not let go"
        )
        index = index or 0
        task = head.tasks[index]
        outcomes.append(
            _failed(
                task,
                Status.TIMEOUT,
                f"did not return within its timeout of "
                f"{task.timeout_s:g} s ({why}); its worker was stopped and "
                "replaced",
                elapsed * 1000,
            )
        )
        self._queues.put_back(head.tasks[:index] + head.tasks[index + 1 :], head.alone)

    def _worker_died(self, slot: Slot, exc: Exception, outcomes: list[Outcome]) -> None:
        ray = self.pool.ray
        pid = slot.pid
        if pid is None and ray.wait([slot.ready], timeout=0)[0]:
            with contextlib.suppress(ray.exceptions.RayError):
                pid = ray.get(slot.ready)
        note = read_note(pid)  # left by a worker its memory guard ended
        lost = self._take_back(slot, None)
        # A batch that finished before the worker died still holds its results.
        while lost and ray.wait([lost[0].ref], timeout=0)[0]:
            try:
                results = ray.get(lost[0].ref)
            except ray.exceptions.RayError:
                break
            finished = lost.pop(0)
            self._report(finished, "ok")
            self._deliver(finished, results, outcomes)
        for batch in lost:
            self._report(batch, "lost")
        self._replace(slot)
        if not lost:
            return
        running = lost[0]
        culprit = next((t for t in running.tasks if note and t.key == note.get("key")), None)
        if culprit is not None and note is not None:
            outcomes.append(_failed(culprit, Status.OOM, str(note.get("error"))))
            rest = [t for t in running.tasks if t is not culprit]
            self._queues.put_back(rest, running.alone)
        elif running.alone:
            outcomes.append(
                _failed(
                    running.tasks[0],
                    Status.CRASHED,
                    "its worker died while running it, in its "
                    f"batch and again when it ran alone on another worker ({_death_reason(exc)})",
                )
            )
        else:
            self._queues.retry_alone(running.tasks)
        self._queues.put_back_batches(lost[1:])

    def _take_back(self, slot: Slot, status: str | None) -> list[Batch]:
        lost = list(slot.batches)
        slot.batches.clear()
        for batch in lost:
            self._batches.pop(batch.ref, None)
            if status is not None:
                self._report(batch, status)
        return lost

    def _replace(self, slot: Slot) -> None:
        if slot.probe is not None:
            self._probes.pop(slot.probe, None)
        self.pool.replace(slot)


def _failed(task: Task, status: Status, error: str, duration_ms: float = 0.0) -> Outcome:
    return Outcome(
        task.key, task.analyzer, task.params, status, error=error, duration_ms=duration_ms
    )


def _death_reason(exc: Exception) -> str:
    """Ray's long explanation of a dead actor, as one clause a person can act on."""
    text = str(exc)
    lowered = text.lower()
    if "memory" in lowered and ("monitor" in lowered or "pressure" in lowered):
        return "Ray's memory monitor killed the worker: the node ran low on memory"
    kind = re.search(r"Worker exit type: (\w+)", text)
    return (
        f"the worker process exited unexpectedly{f' ({kind.group(1)})' if kind else ''}: "
        "a crash in native code, os._exit() or the kernel's out-of-memory killer"
    )


def _absolute(store_path: str) -> str:
    """A store path as workers elsewhere can open it: absolute, or a URL (s3://...) as it is."""
    import os

    return store_path if "://" in store_path else os.path.abspath(os.path.expanduser(store_path))
