"""The Ray worker: a long-lived actor holding its DuckDB connection and the analyzer packs.

The driver ships invocations by analyzer name in batches. The worker keeps, per investigation,
one `Telemetry` handle on the window; `telemetry.shared(...)` asks the runtime's `SharedScans`
actor (`runtime.scans`), which runs each grouped query once per investigation, and every later
invocation of the fan-out on this worker reuses the result. Each invocation goes through
`run_invocation`, the one function every runtime calls. A second thread answers `progress()`
while a batch runs, which is how the driver tells Python that never returns from a slow batch.

Imported only by the worker pool (`runtime.pool`), when it starts its first worker.
"""

from __future__ import annotations

import os
import pickle
import sys
import threading
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

import ray

from casebook.executor.runtime.heap import freeze_loaded_objects
from casebook.executor.runtime.memory_guard import (
    MemoryGuard,
    guarded_invocation,
    worker_ceiling_mb,
)
from casebook.executor.runtime.scans import fetch_shared
from casebook.executor.runtime.window_cache import PreparedWindow, open_prepared
from casebook.executor.shipped import ResultColumns
from casebook.sdk.invocation import Outcome, Status, run_invocation
from casebook.sdk.models import Alert, Finding, TimeWindow
from casebook.sdk.registry import Registry
from casebook.sdk.telemetry import Telemetry, TelemetrySource

# (key, analyzer, params, upstream findings, timeout_s): what travels for one invocation.
TaskWire = tuple[str, str, dict[str, Any], dict[str, Finding | None], float]

KEPT_REGISTRIES = 4
WINDOWS_PER_CONNECTION = 200  # each window leaves a schema of views; start afresh after this


@dataclass(frozen=True)
class WorkerContext:
    """One investigation as a worker needs it; shipped once per worker through the object store."""

    investigation_id: str
    version: int  # bumped when the window has been prepared
    alert: Alert
    window: TimeWindow
    store_path: str
    registry_token: str
    sys_path: tuple[str, ...]  # packs importable in the driver (--pack folders, tests) are here
    prepared: PreparedWindow | None = None
    scans: Any = None  # the SharedScans actor answering `telemetry.shared(...)`, if any


@dataclass
class OpenInvestigation:
    context: WorkerContext
    registry: Registry
    source: TelemetrySource
    telemetry: Telemetry
    read: set[str]  # analyzers whose findings another one reads: only their models travel


@ray.remote(concurrency_groups={"control": 1})
class InvestigationWorker:
    """Runs batches of invocations; `progress()` answers from another thread while it does."""

    def __init__(self, duckdb_threads: int, memory_mb: int | None = None) -> None:
        freeze_loaded_objects()
        self._threads = duckdb_threads
        self._guard = MemoryGuard(worker_ceiling_mb(memory_mb))
        self._registries: dict[str, Registry] = {}
        self._sources: dict[str, tuple[dict[str, tuple[str, ...]], TelemetrySource, int]] = {}
        self._open: dict[str, OpenInvestigation] = {}
        self._current: tuple[int, int, float] | None = None
        self._last: tuple[int, int] | None = None  # (batch id, last index to run) once cut
        self._skipped: set[int] = set()  # batches moved to other workers before they began
        self._lock = threading.Lock()

    def ready(self) -> int:
        """The worker's process id, once it is up."""
        return os.getpid()

    def run_batch(self, batch_id: int, boxed: list[Any], wire: bytes) -> ResultColumns:
        """Run the tasks (a pickled list of `TaskWire`) one after another; the results of those
        it ran, in order, as columns."""
        tasks: list[TaskWire] = pickle.loads(wire)
        with self._lock:
            if batch_id in self._skipped:
                self._skipped.discard(batch_id)
                return ResultColumns.of([])
        try:
            investigation = self._investigation(boxed)
        except Exception as exc:
            reason = f"the worker could not open the investigation: {type(exc).__name__}: {exc}"
            return ResultColumns.failed(len(tasks), Status.ERROR, reason, time.time())
        context, registry = investigation.context, investigation.registry
        telemetry = investigation.telemetry
        results: list[Outcome] = []
        try:
            for index, (key, name, params, upstream, timeout_s) in enumerate(tasks):
                with self._lock:
                    if (
                        self._last is not None
                        and self._last[0] == batch_id
                        and (index > self._last[1])
                    ):
                        break  # the driver moved the rest of the batch to other workers
                    self._current = (batch_id, index, time.monotonic())
                spec = registry.get(name)
                if spec is None:
                    known = ", ".join(s.name for s in registry)
                    results.append(
                        Outcome(
                            key,
                            name,
                            params,
                            Status.ERROR,
                            error=f"no analyzer named '{name}' in the worker's packs "
                            f"(known: {known})",
                        )
                    )
                    continue
                call = partial(
                    run_invocation,
                    spec,
                    params,
                    alert=context.alert,
                    window=context.window,
                    telemetry=telemetry,
                    upstream=upstream,
                    timeout_s=timeout_s,
                )
                results.append(
                    guarded_invocation(self._guard, key, call, spec.memory_mb, telemetry.interrupt)
                )
        finally:
            with self._lock:
                self._current = self._last = None
        return ResultColumns.of(results, investigation.read)

    @ray.method(concurrency_group="control")
    def progress(self, cut_after_s: float, behind: list[int]) -> tuple[int, int, float] | None:
        """(batch id, index, seconds it has run) of the running invocation, if any.

        Once it has run longer than `cut_after_s`, nothing else waits for it: the batch ends
        after it and the batches `behind` it are skipped; the driver sends them elsewhere.
        """
        with self._lock:
            current = self._current
            if current is None:
                return None
            batch_id, index, started = current
            elapsed = time.monotonic() - started
            if elapsed > cut_after_s:
                if self._last is None:
                    self._last = (batch_id, index)
                self._skipped.update(behind)
        return batch_id, index, elapsed

    def release(self, investigation_id: str) -> None:
        """Forget an investigation: its window handle and shared query results."""
        investigation = self._open.pop(investigation_id, None)
        if investigation is None:
            return
        investigation.telemetry.close()
        if all(kept is not investigation.source for _, kept, _ in self._sources.values()):
            investigation.source.connection.close()

    def _investigation(self, boxed: list[Any]) -> OpenInvestigation:
        # The references arrive boxed in a list so Ray does not fetch them for every batch.
        investigation_id, version, context_ref, registry_ref = boxed
        current = self._open.get(investigation_id)
        if current is not None and current.context.version == version:
            return current
        context: WorkerContext = ray.get(context_ref)
        sys.path[:0] = [entry for entry in context.sys_path if entry not in sys.path]
        registry = self._registry(context.registry_token, registry_ref)
        if current is not None:
            source = current.source
            current.telemetry.close()
        else:
            for other in list(self._open):  # one investigation at a time per worker
                self.release(other)
            source = self._source(context.store_path)
        if context.prepared is not None:
            # A sealed source reads only its store: the prepared files need one of their own.
            source = self._prepared_source(context.store_path, context.prepared)
            telemetry = open_prepared(source, context.prepared)
        else:
            telemetry = source.open(context.window)
        if context.scans is not None:
            telemetry.sharer = partial(fetch_shared, context.scans, [context_ref])
        read = {name for spec in registry for name in spec.depends_on}
        opened = OpenInvestigation(context, registry, source, telemetry, read)
        self._open[investigation_id] = opened
        return opened

    def _registry(self, token: str, ref: Any) -> Registry:
        registry = self._registries.get(token)
        if registry is None:
            registry = ray.get(ref)
            if len(self._registries) >= KEPT_REGISTRIES:
                self._registries.pop(next(iter(self._registries)))
            self._registries[token] = registry
        return registry

    def _source(self, store_path: str) -> TelemetrySource:
        """The connection to a store, kept between investigations while its files stay.

        A Parquet store's connection reads the files its manifests named when it was made, so
        it is kept only while they are still the same. A DuckDB-file store is opened per
        investigation: a connection held open would keep `casebook ingest` from writing to it.
        """
        from casebook.executor.telemetry_store import TelemetryStore

        store = TelemetryStore.open(store_path)
        snapshot = store.snapshot()
        kept = self._sources.pop(store_path, None)
        if kept is not None:
            if kept[0] == snapshot and kept[2] < WINDOWS_PER_CONNECTION:
                self._sources[store_path] = (snapshot, kept[1], kept[2] + 1)
                return kept[1]
            kept[1].connection.close()
        source = store.source(snapshot)
        self._limit(source)
        if store.layout == "parquet":
            self._sources[store_path] = (snapshot, source, 1)
        return source

    def _prepared_source(self, store_path: str, prepared: PreparedWindow) -> TelemetrySource:
        from casebook.executor.telemetry_store import TelemetryStore

        store = TelemetryStore.open(store_path)
        source = TelemetrySource(store.connect(), readable=(str(store.path), prepared.directory))
        self._limit(source)
        return source

    def _limit(self, source: TelemetrySource) -> None:
        """DuckDB's threads and memory, set before the source is sealed (then they are fixed).

        DuckDB gets half the worker's ceiling: a query past it fails with DuckDB's own
        out-of-memory error (the invocation ends `oom`) before the process reaches the ceiling.
        """
        connection = source.connection
        connection.execute(f"set threads = {self._threads}")
        connection.execute(f"set memory_limit = '{max(64, self._guard.ceiling_mb // 2)}MB'")

