"""The in-process runtime: one invocation at a time, in a child process when it can be.

With a telemetry store on disk (`casebook investigate --local`, `casebook serve --local`) the
analyzers run in one long-lived child process (`runtime.child`): an analyzer that calls
`os._exit`, crashes native code, hangs in Python or passes its memory ceiling costs that child,
which is replaced, and the investigation goes on. Without a store on disk (an in-memory store:
the SDK's testing kit, tests) nothing can be shared with another process, so analyzers run on a
thread of this process. There the runtime cannot enforce a memory ceiling, cannot stop Python
that never returns (the thread is abandoned after its timeout) and does not survive
`os._exit`: trusted code only (`LIMITS_IN_THIS_PROCESS` says so to whoever asks).
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable

from casebook.executor.planner import Task
from casebook.executor.runtime.contract import RunContext
from casebook.sdk.invocation import Outcome, Status, run_invocation
from casebook.sdk.telemetry import Telemetry

# Python that never returns cannot be stopped in-process; after the timeout plus this grace the
# thread is abandoned and the next invocation gets a fresh thread and connection.
GRACE_S = 0.5
LIMITS_IN_THIS_PROCESS = (
    "analyzers run in this process (the telemetry store is in memory): no memory ceiling, "
    "Python that never returns is abandoned rather than stopped, and os._exit() ends the "
    "process; run with a store on disk for a child process that contains all three"
)


class _Runner:
    """A thread that runs one call at a time: starting a thread per invocation costs ~60 us."""

    def __init__(self) -> None:
        self._inbox: queue.SimpleQueue[Callable[[], Outcome] | None] = queue.SimpleQueue()
        self._outbox: queue.SimpleQueue[Outcome | BaseException] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="casebook-local", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (call := self._inbox.get()) is not None:
            try:
                self._outbox.put(call())
            except BaseException as exc:  # handed to the caller, not lost in this thread
                self._outbox.put(exc)
            # Hold no DuckDB cursor while idle: one alive at interpreter exit aborts the process.
            del call

    def run(self, call: Callable[[], Outcome], timeout: float) -> Outcome | None:
        """The call's outcome, or None when it did not return in time."""
        self._inbox.put(call)
        try:
            result = self._outbox.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(result, BaseException):
            raise result
        return result

    def close(self) -> None:
        """Let the thread end once its current call (if any) returns, waiting briefly for it."""
        self._inbox.put(None)
        self._thread.join(timeout=GRACE_S)


class LocalRuntime:
    """Runs tasks one at a time on this machine. Used by tests and `--local`.

    `isolate=False` keeps analyzers in this process even with a store on disk (faster to
    start, for trusted packs); `memory_mb` is the child's ceiling (default: memory_guard's).
    """

    name = "local"

    def __init__(self, *, isolate: bool = True, memory_mb: int | None = None) -> None:
        self.isolate = isolate
        self.memory_mb = memory_mb
        self.limits_note: str | None = None  # set when this investigation runs in-process
        self._queue: deque[Task] = deque()
        self._context: RunContext | None = None
        self._telemetry: Telemetry | None = None
        self._runner: _Runner | None = None
        self._child = None
        self._child_error: str | None = None
        self._isolated = False

    @property
    def replaced(self) -> int:
        """Child processes replaced so far (killed for a hang, or lost)."""
        return self._child.replaced if self._child is not None else 0

    def start(self, context: RunContext) -> None:
        self._context = context
        if self.isolate and context.store_path is not None:
            from casebook.executor.runtime.child import ChildProcess, Opening

            if self._child is None:
                self._child = ChildProcess(self.memory_mb)
            self.limits_note, self._isolated = None, True
            self._child_error = self._child.open(
                Opening(context.alert, context.window, str(context.store_path), context.registry)
            )
            return
        self.limits_note, self._isolated = LIMITS_IN_THIS_PROCESS, False
        self._telemetry = context.source.open(context.window)

    def submit(self, tasks: list[Task]) -> None:
        self._queue.extend(tasks)

    def pending(self) -> int:
        return len(self._queue)

    def poll(self, timeout: float) -> list[Outcome]:
        if not self._queue:
            return []
        task = self._queue.popleft()
        if self._isolated and self._child is not None:
            if self._child_error is not None:
                return [Outcome(task.key, task.analyzer, task.params, Status.ERROR,
                                error=f"the analyzer process could not open the investigation: "
                                      f"{self._child_error}")]
            return [self._child.run(task)]
        return [self._run(task)]

    def warm(self) -> None:
        """Nothing to start ahead: the child starts with the first investigation."""

    def shutdown(self) -> None:
        self.stop()
        if self._runner is not None:
            self._runner.close()
            self._runner = None
        if self._child is not None:
            self._child.close()
            self._child = None

    def stop(self) -> None:
        self._queue.clear()
        self._context = None
        self._telemetry = None

    def _run(self, task: Task) -> Outcome:
        assert self._context is not None and self._telemetry is not None
        context, telemetry = self._context, self._telemetry
        spec = context.registry[task.analyzer]
        if self._runner is None:
            self._runner = _Runner()

        def call() -> Outcome:
            return run_invocation(
                spec, task.params, alert=context.alert, window=context.window,
                telemetry=telemetry, upstream=task.upstream, timeout_s=task.timeout_s,
            )

        outcome = self._runner.run(call, task.timeout_s + GRACE_S)
        if outcome is not None:
            return outcome
        telemetry.interrupt()
        self._runner.close()
        self._runner = None
        self._telemetry = context.source.open(context.window)
        return Outcome(task.key, task.analyzer, task.params, Status.TIMEOUT,
                       error=f"did not return within its timeout of {task.timeout_s:g} s "
                             "(Python code that never returns; the thread was abandoned)",
                       duration_ms=task.timeout_s * 1000)
