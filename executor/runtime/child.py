"""The child process the in-process runtime runs analyzers in, so none can take `--local` down.

One long-lived process per runtime, a fresh interpreter (`python -m
casebook.executor.runtime.child`, so no script that uses the runtime needs a `__main__` guard,
as multiprocessing's spawn and forkserver would): it opens the telemetry store read-only and sealed, holds the analyzer packs,
and runs one invocation at a time under the memory guard. The parent waits for each answer up
to the invocation's timeout plus a grace; a child that does not answer is killed, one that died
(`os._exit`, a crash in native code, the kernel's OOM killer) is replaced, and the next
invocation runs in a fresh one. Messages are cloudpickled, as Ray ships analyzers, so packs
defined anywhere importable (and test modules) travel.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import cloudpickle

from casebook.executor.planner import Task
from casebook.executor.runtime.memory_guard import (
    MemoryGuard,
    guarded_invocation,
    read_note,
    worker_ceiling_mb,
)
from casebook.sdk.invocation import Outcome, Status, run_invocation
from casebook.sdk.models import Alert, TimeWindow
from casebook.sdk.registry import Registry

GRACE_S = 0.5  # past the invocation's timeout before the child is killed
START_TIMEOUT_S = 60.0  # to start the child and open the store


@dataclass(frozen=True)
class Opening:
    """What the child needs to run an investigation's invocations."""

    alert: Alert
    window: TimeWindow
    store_path: str
    registry: Registry


class ChildProcess:
    """The parent's side: one child, replaced whenever it dies or has to be killed."""

    def __init__(self, memory_mb: int | None = None) -> None:
        self.memory_mb = memory_mb
        self.replaced = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Pipes | None = None
        self._opening: bytes | None = None
        self._path: list[str] = []

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def open(self, opening: Opening) -> str | None:
        """Open an investigation in the child; the reason it could not, or None."""
        self._opening = cloudpickle.dumps(opening)
        self._path = list(sys.path)
        if self._conn is None:
            return self._start()
        return self._send_opening()

    def run(self, task: Task) -> Outcome:
        """One invocation in the child; whatever the child does, an outcome comes back."""
        if self._conn is None and (reason := self._start()) is not None:
            return _outcome(task, Status.ERROR, f"the analyzer process could not start: {reason}")
        assert self._conn is not None
        message = (task.key, task.analyzer, task.params, task.upstream, task.timeout_s)
        clock = time.perf_counter()
        died = False
        try:
            self._conn.send_bytes(cloudpickle.dumps(("run", message)))
            if self._conn.poll(task.timeout_s + GRACE_S):
                return cloudpickle.loads(self._conn.recv_bytes())
        except (EOFError, OSError):
            died = True  # its end of the pipe closed: told below
        elapsed_ms = (time.perf_counter() - clock) * 1000
        assert self._process is not None
        code = self._process.poll()
        if died and code is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self._process.wait(timeout=5)
        alive, pid = code is None, self._process.pid
        self._kill()
        note = read_note(pid)
        if note is not None:
            return _outcome(task, Status.OOM, str(note.get("error")), elapsed_ms)
        if alive:
            return _outcome(
                task,
                Status.TIMEOUT,
                f"did not return within its timeout of {task.timeout_s:g} s (Python code "
                "that does not return, or a sleep); its process was stopped and replaced",
                elapsed_ms,
            )
        return _outcome(
            task,
            Status.CRASHED,
            f"its process exited while running it (exit code {code}): os._exit(), a crash in "
            "native code or the kernel's out-of-memory killer; a fresh process runs the rest",
            elapsed_ms,
        )

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send_bytes(cloudpickle.dumps(("stop", None)))
            with contextlib.suppress(subprocess.TimeoutExpired):
                assert self._process is not None
                self._process.wait(timeout=2)
        self._kill(count=False)

    def _start(self) -> str | None:
        to_child, from_parent = os.pipe()
        to_parent, from_child = os.pipe()
        command = [sys.executable, "-m", __name__, str(to_child), str(from_child)]
        if self.memory_mb:
            command.append(str(self.memory_mb))
        # What analyzers print goes to stderr: stdout may carry `--json`.
        self._process = subprocess.Popen(
            command, pass_fds=(to_child, from_child), stdin=subprocess.DEVNULL, stdout=2
        )
        os.close(to_child)
        os.close(from_child)
        self._conn = Pipes(
            Connection(to_parent, writable=False), Connection(from_parent, readable=False)
        )
        return self._send_opening()

    def _send_opening(self) -> str | None:
        if self._opening is None or self._conn is None:
            return None
        try:
            self._conn.send_bytes(cloudpickle.dumps(("open", self._path)))
            self._conn.send_bytes(self._opening)
            if not self._conn.poll(START_TIMEOUT_S):
                self._kill()
                return f"it did not answer within {START_TIMEOUT_S:g} s"
            reason = cloudpickle.loads(self._conn.recv_bytes())
        except (EOFError, OSError) as exc:
            self._kill()
            return f"it exited while opening the telemetry store ({type(exc).__name__})"
        return reason

    def _kill(self, count: bool = True) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5)
            if count:
                self.replaced += 1
        if self._conn is not None:
            self._conn.close()
        self._process, self._conn = None, None


@dataclass
class Pipes:
    """Both directions between parent and child, as one connection."""

    incoming: Connection
    outgoing: Connection

    def send_bytes(self, data: bytes) -> None:
        self.outgoing.send_bytes(data)

    def recv_bytes(self) -> bytes:
        return self.incoming.recv_bytes()

    def poll(self, timeout: float) -> bool:
        return self.incoming.poll(timeout)

    def close(self) -> None:
        self.incoming.close()
        self.outgoing.close()


def _outcome(task: Task, status: Status, error: str, duration_ms: float = 0.0) -> Outcome:
    return Outcome(
        task.key, task.analyzer, task.params, status, error=error, duration_ms=duration_ms
    )


# -- the child ----------------------------------------------------------------------------------


def serve(conn: Pipes, memory_mb: int | None) -> None:
    """The child's loop: open investigations, run invocations, until told to stop."""
    from casebook.executor.telemetry_store.keeper import SourceKeeper

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    guard = MemoryGuard(worker_ceiling_mb(memory_mb))
    # The store's connection is kept between investigations while its files stay the same, as
    # the Ray workers keep theirs: no connection, views and window schema per investigation.
    keeper = SourceKeeper(memory_mb=max(64, guard.ceiling_mb // 2), threads=os.cpu_count() or 1)
    opened: tuple[Opening, Any] | None = None
    while True:
        try:
            kind, body = cloudpickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        if kind == "stop":
            return
        if kind == "open":
            sys.path[:0] = [entry for entry in body if entry not in sys.path]
            try:
                opening: Opening = cloudpickle.loads(conn.recv_bytes())
                if opened is not None:
                    opened[1].close()
                opened = (opening, _open_telemetry(opening, keeper))
                reason = None
            except Exception as exc:
                opened, reason = None, f"{type(exc).__name__}: {exc}"
            conn.send_bytes(cloudpickle.dumps(reason))
            continue
        key, name, params, upstream, timeout_s = body
        if opened is None:
            outcome = Outcome(key, name, params, Status.ERROR, error="no investigation is open")
        else:
            outcome = _run(opened, guard, key, name, params, upstream, timeout_s)
        conn.send_bytes(cloudpickle.dumps(outcome))


def _open_telemetry(opening: Opening, keeper: Any) -> Any:
    from casebook.executor.telemetry_store import TelemetryStore

    return keeper.source(TelemetryStore.open(opening.store_path)).open(opening.window)


def _run(
    opened: tuple[Opening, Any],
    guard: MemoryGuard,
    key: str,
    name: str,
    params: dict[str, Any],
    upstream: dict[str, Any],
    timeout_s: float,
) -> Outcome:
    opening, telemetry = opened
    spec = opening.registry.get(name)
    if spec is None:
        known = ", ".join(s.name for s in opening.registry)
        return Outcome(key, name, params, Status.ERROR,
                       error=f"no analyzer named '{name}' in the packs (known: {known})")

    def call() -> Outcome:
        return run_invocation(spec, params, alert=opening.alert, window=opening.window,
                              telemetry=telemetry, upstream=upstream, timeout_s=timeout_s)

    outcome = guarded_invocation(guard, key, call, spec.memory_mb, telemetry.interrupt)
    outcome.key, outcome.analyzer, outcome.params = key, name, params
    return outcome


if __name__ == "__main__":
    incoming, outgoing = int(sys.argv[1]), int(sys.argv[2])
    serve(
        Pipes(Connection(incoming, writable=False), Connection(outgoing, readable=False)),
        int(sys.argv[3]) if len(sys.argv) > 3 else None,
    )
