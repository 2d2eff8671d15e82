"""A memory ceiling for the process that runs analyzers (a Ray worker or the local child).

A thread samples the process's resident memory every `SAMPLE_S`. When the running invocation
passes its ceiling (the worker's, or `@analyzer(memory_mb=...)` above what the process held
when it began), its query is interrupted and a `MemoryCeilingExceeded` is raised in its thread;
the invocation ends `oom` with the figure reached. Code that cannot be interrupted (one huge
allocation in C) gets the process killed after `KILL_AFTER_S`, leaving a note the parent reads
to report `oom` all the same. RLIMIT_AS is not used: Ray and DuckDB reserve far more address
space than they touch, so any useful limit on it would break them.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from casebook.sdk.invocation import Outcome, Status

SAMPLE_S = 0.05
KILL_AFTER_S = 1.0  # past the ceiling this long after being told to stop: the process goes
WORKER_SHARE = 0.25  # of the machine's memory, per worker, unless configured
ENVIRONMENT = "CASEBOOK_WORKER_MEMORY_MB"
NOTES = Path(tempfile.gettempdir()) / "casebook-oom"


class MemoryCeilingExceeded(MemoryError):
    """Raised in an invocation's thread when the process passes the invocation's ceiling."""


def machine_mb() -> int:
    """Physical memory of this machine, in MB."""
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20)


def worker_ceiling_mb(configured: int | None = None) -> int:
    """The ceiling of one worker: `configured`, else $CASEBOOK_WORKER_MEMORY_MB, else 25% of RAM."""
    if configured:
        return int(configured)
    from_env = os.environ.get(ENVIRONMENT, "").strip()
    if from_env:
        try:
            return max(1, int(from_env))
        except ValueError:
            raise ValueError(
                f"{ENVIRONMENT}={from_env!r} is not a whole number of megabytes; "
                f"set e.g. {ENVIRONMENT}=4096"
            ) from None
    return max(256, int(machine_mb() * WORKER_SHARE))


def resident_mb() -> float:
    """This process's resident memory in MB (Linux /proc; 0 where it cannot be read)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def note_path(pid: int) -> Path:
    return NOTES / f"{pid}.json"


def read_note(pid: int | None) -> dict[str, object] | None:
    """What a process killed for memory wrote before it went (and forget it)."""
    if pid is None:
        return None
    path = note_path(pid)
    try:
        note = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    path.unlink(missing_ok=True)
    return note if isinstance(note, dict) else None


def oom_text(peak_mb: float, limit_mb: float, memory_mb: int | None) -> str:
    """The error of an invocation stopped at its ceiling, for the person reading the report."""
    which = (
        f"its ceiling of {memory_mb} MB (@analyzer(memory_mb=...)) above what the worker held"
        if memory_mb
        else f"the worker's ceiling of {limit_mb:.0f} MB"
    )
    return (
        f"used too much memory: the process reached {peak_mb:.0f} MB, past {which}; it was "
        f"stopped. Raise memory_mb= on the analyzer or {ENVIRONMENT} for every worker, or "
        "read less (aggregate in SQL rather than in Python)"
    )


@dataclass
class Watch:
    """One invocation under watch."""

    key: str
    thread: int
    limit_mb: float
    memory_mb: int | None
    on_stop: Callable[[], None]
    peak_mb: float = 0.0
    stopped_at: float | None = None


class MemoryGuard:
    """Watches the invocation running in this process; one per process."""

    def __init__(self, ceiling_mb: int) -> None:
        self.ceiling_mb = ceiling_mb
        self.enforced = resident_mb() > 0  # /proc is readable: Linux
        self._watch: Watch | None = None
        self._lock = threading.Lock()
        if self.enforced:
            threading.Thread(target=self._run, name="casebook-memory", daemon=True).start()

    def begin(self, key: str, memory_mb: int | None, on_stop: Callable[[], None]) -> None:
        """Watch the invocation about to run in the calling thread."""
        limit = float(self.ceiling_mb)
        if memory_mb:
            limit = min(limit, resident_mb() + memory_mb)
        with self._lock:
            self._watch = Watch(key, threading.get_ident(), limit, memory_mb, on_stop)

    def end(self) -> str | None:
        """Stop watching; the `oom` error text when the invocation was stopped for memory."""
        with self._lock:
            watch, self._watch = self._watch, None
            if watch is None or watch.stopped_at is None:
                return None
            # The exception may not have fired yet; it must not fire in the worker's own code.
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(watch.thread), None)
        return oom_text(watch.peak_mb, watch.limit_mb, watch.memory_mb)

    def _run(self) -> None:
        while True:
            time.sleep(SAMPLE_S)
            rss = resident_mb()
            with self._lock:
                watch = self._watch
                if watch is None or rss <= watch.limit_mb:
                    continue
                watch.peak_mb = max(watch.peak_mb, rss)
                first = watch.stopped_at is None
                if first:
                    watch.stopped_at = time.monotonic()
                overdue = time.monotonic() - (watch.stopped_at or 0.0) > KILL_AFTER_S
                if first:
                    _stop(watch)  # under the lock, so `end()` cannot miss it
            if overdue:
                self._kill(watch)

    def _kill(self, watch: Watch) -> None:
        """The invocation does not let go: leave a note for the parent and end the process."""
        NOTES.mkdir(parents=True, exist_ok=True)
        note = {"key": watch.key, "error": oom_text(watch.peak_mb, watch.limit_mb, watch.memory_mb)}
        note_path(os.getpid()).write_text(json.dumps(note))
        os.kill(os.getpid(), signal.SIGKILL)


def _stop(watch: Watch) -> None:
    with contextlib.suppress(Exception):  # a closed connection has nothing left to stop
        watch.on_stop()
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(watch.thread), ctypes.py_object(MemoryCeilingExceeded)
    )


def guarded_invocation(
    guard: MemoryGuard,
    key: str,
    call: Callable[[], Outcome],
    memory_mb: int | None,
    interrupt: Callable[[], None],
) -> Outcome:
    """Run one invocation under the memory guard; past its ceiling it ends `oom`."""
    started = time.time()
    clock = time.perf_counter()
    guard.begin(key, memory_mb, interrupt)
    try:
        outcome: Outcome = call()
    except MemoryCeilingExceeded:  # fired outside the analyzer's own code
        outcome = Outcome(key, key, {}, Status.OOM, error="ran out of memory")
        outcome.started_at = datetime.fromtimestamp(started, UTC)
    finally:
        verdict = guard.end()
    outcome.duration_ms = outcome.duration_ms or (time.perf_counter() - clock) * 1000
    if verdict is not None:
        outcome.status, outcome.finding, outcome.error = Status.OOM, None, verdict
    return outcome
