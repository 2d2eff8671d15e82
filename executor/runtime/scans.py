"""Grouped scans once per investigation, not once per worker.

Fan-out analyzers answer every entity from one grouped query (`telemetry.shared(...)`). Run in
each worker, that query scans the window once per worker, each with the one DuckDB thread its
worker holds. Here it runs once, in one actor with every DuckDB thread of its node, and the
result is put in Ray's object store once; every worker that asks reads it from there.

Workers wait for a scan without holding a CPU of their own (they have nothing else to run until
it is back), so the scan gets the CPUs. A worker whose invocation runs past its timeout stops
waiting (`TimeoutError`, as for its own query); the scan goes on for the others and is
interrupted when the investigation ends. When the actor cannot answer (it died), the worker
runs the query itself, as before. A pool of one worker has no actor (`WorkerPool.shares_scans`).

    scans = SharedScans.options(num_cpus=0).remote()             # once, by the worker pool
    telemetry.sharer = partial(fetch_shared, scans, [context_ref])  # in each worker
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict, deque
from typing import Any

import ray

from casebook.sdk.telemetry import QueryMemoryError, QueryResult, TelemetryError

WAIT_STEP_S = 0.01
KEPT_RESULTS = 64  # results kept in the object store per store snapshot
ERRORS: dict[str, type[Exception]] = {
    "TelemetryError": TelemetryError,
    "QueryMemoryError": QueryMemoryError,
    "TimeoutError": TimeoutError,
}


class _Scan:
    """One shared query of one investigation: run once, awaited by whoever asks meanwhile."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.answer: Any = None
        self.telemetry: Any = None


class _Investigation:
    """An investigation's scans, and the store connection it reads (chosen on its first scan)."""

    def __init__(self) -> None:
        self.scans: dict[tuple[str, tuple[Any, ...]], _Scan] = {}
        self.source: _Source | None = None
        self.running = 0
        self.released = False


class _Source:
    """A sealed connection to one store as its files were at one moment, and who reads it."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.users = 0
        self.stale = False  # the store has changed since; closed once nobody reads it
        # Results already in the object store, by window and query: the snapshot never changes,
        # so a later investigation of the same window gets the same object, put once.
        self.refs: OrderedDict[Any, Any] = OrderedDict()


@ray.remote(max_concurrency=16)
class SharedScans:
    """Runs each investigation's shared queries once and keeps their results in the object store.

    A threaded actor: scans of different queries run at once, and a second request for a scan
    that is running waits for it instead of starting another. As in the workers, a Parquet
    store's connection is kept between investigations while its files stay the same; an
    investigation reads through the one it started with until it is released.
    """

    def __init__(self, threads: int | None = None, memory_mb: int | None = None) -> None:
        from casebook.executor.runtime.memory_guard import worker_ceiling_mb
        from casebook.executor.telemetry_store import TelemetryStore

        self._store = TelemetryStore  # imported now, not during the first scan
        self._threads = threads or os.cpu_count() or 1
        self._memory_mb = max(64, worker_ceiling_mb(memory_mb) // 2)
        self._open: dict[str, _Investigation] = {}
        self._ended: deque[str] = deque(maxlen=256)  # a late scan must not reopen one
        self._sources: dict[str, tuple[Any, _Source]] = {}  # store path: (snapshot, source)
        self._lock = threading.Lock()
        self._count = 0

    def ready(self) -> int:
        return os.getpid()

    def scans_run(self) -> int:
        """How many queries this actor has run since it started."""
        return self._count

    def scan(self, context_box: list[Any], query: str, params: list[Any]) -> Any:
        """`[ref]` to the query's result in the object store, or `(error kind, message)`."""
        (context_ref,) = context_box
        context = ray.get(context_ref)
        key = (" ".join(query.split()), tuple(params))
        with self._lock:
            if context.investigation_id in self._ended:
                return ("TelemetryError", "the investigation has ended")
            investigation = self._open.setdefault(context.investigation_id, _Investigation())
            scan = investigation.scans.get(key)
            mine = scan is None
            if mine:
                scan = investigation.scans[key] = _Scan()
                investigation.running += 1
        assert scan is not None
        if not mine:
            scan.done.wait()
            return scan.answer
        try:
            scan.answer = self._run(investigation, scan, context, query, params)
        finally:
            scan.done.set()
            with self._lock:
                investigation.running -= 1
                if investigation.released and not investigation.running:
                    self._let_go(investigation)
        return scan.answer

    def release(self, investigation_id: str) -> None:
        """Forget an investigation: interrupt the scans nobody waits for any more."""
        with self._lock:
            self._ended.append(investigation_id)
            investigation = self._open.pop(investigation_id, None)
            if investigation is None:
                return
            investigation.released = True
            for scan in investigation.scans.values():
                if not scan.done.is_set() and scan.telemetry is not None:
                    scan.telemetry.interrupt()
            if not investigation.running:
                self._let_go(investigation)

    def _let_go(self, investigation: _Investigation) -> None:
        """(Holding the lock.) The investigation no longer reads its source."""
        kept = investigation.source
        investigation.source = None
        if kept is not None:
            kept.users -= 1
            if kept.stale and not kept.users:
                kept.source.connection.close()

    def _run(
        self, investigation: _Investigation, scan: _Scan, context: Any, query: str,
        params: list[Any],
    ) -> Any:
        try:
            with self._lock:
                if investigation.source is None:
                    investigation.source = self._source(context.store_path)
                    investigation.source.users += 1
                kept = investigation.source
                source = kept.source
                put = _answer_key(source, context.window, query, params)
                if put is not None and put in kept.refs:
                    return [kept.refs[put]]
            telemetry = source.open(context.window)
        except Exception as exc:
            return ("TelemetryError", f"the shared scan could not open the window: {exc}")
        scan.telemetry = telemetry
        try:
            with self._lock:
                self._count += 1
            result = telemetry.sql(query, params)
        except Exception as exc:
            return (type(exc).__name__, str(exc))
        finally:
            scan.telemetry = None
            telemetry.close()
        ref = ray.put(result)
        if put is not None:
            with self._lock:
                kept.refs[put] = ref
                if len(kept.refs) > KEPT_RESULTS:
                    kept.refs.popitem(last=False)
        return [ref]

    def _source(self, store_path: str) -> _Source:
        """(Holding the lock.) The store's current connection, sealed with every thread here.

        The store's window views even when the runtime prepared the window for the workers: a
        grouped scan reads every row either way. A DuckDB-file store is opened afresh each time
        (a connection held open would keep `casebook ingest` from writing to it).
        """
        store = self._store.open(store_path)
        snapshot = store.snapshot()
        known = self._sources.get(store_path)
        if known is not None and known[0] == snapshot and store.layout == "parquet":
            return known[1]
        source = store.source(snapshot)
        source.seal(memory_mb=self._memory_mb, threads=self._threads)
        fresh = _Source(source)
        if known is not None:
            known[1].stale = True
            if not known[1].users:
                known[1].source.connection.close()
        if store.layout == "parquet":
            self._sources[store_path] = (snapshot, fresh)
        else:
            fresh.stale = True  # closed when its investigation lets go of it
        return fresh


def _answer_key(source: Any, window: Any, query: str, params: list[Any]) -> Any:
    """The key of a repeatable query on a source that keeps answers, else None."""
    answers = getattr(source, "answers", None)
    if answers is None:
        return None
    return answers.key((window.start, window.end), query, params)


def fetch_shared(
    scans: Any, context_box: list[Any], query: str, params: list[Any],
    interrupted: threading.Event,
) -> QueryResult | None:
    """The shared query's result from the scan actor; None when the actor cannot answer."""
    try:
        ref = scans.scan.remote(context_box, query, params)
        while not ray.wait([ref], timeout=WAIT_STEP_S)[0]:
            if interrupted.is_set():
                raise TimeoutError("query interrupted: the invocation ran past its timeout")
        answer = ray.get(ref)
        if isinstance(answer, list):
            return _result_of(answer[0])
    except ray.exceptions.RayError:
        return None
    kind, message = answer
    raise ERRORS.get(kind, TelemetryError)(message)


_READ: OrderedDict[bytes, QueryResult] = OrderedDict()
_READ_LOCK = threading.Lock()


def _result_of(ref: Any) -> QueryResult:
    """The result behind a ref, read once per worker (what the object store holds never
    changes, and the scans actor hands out the same ref for the same window and query)."""
    key = ref.binary()
    with _READ_LOCK:
        known = _READ.get(key)
    if known is None:
        known = ray.get(ref)
        with _READ_LOCK:
            _READ[key] = known
            if len(_READ) > KEPT_RESULTS // 2:
                _READ.popitem(last=False)
    return known
