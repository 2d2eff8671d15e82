"""The in-process runtime: one invocation at a time on a thread it can abandon."""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable

from casebook.executor.planner import Task
from casebook.executor.runtime import RunContext
from casebook.sdk.invocation import Outcome, Status, run_invocation
from casebook.sdk.telemetry import Telemetry

# Python that never returns cannot be stopped in-process; after the timeout plus this grace the
# thread is abandoned and the next invocation gets a fresh thread and connection.
GRACE_S = 0.5


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
    """Runs tasks in this process. Used by tests and `--local`."""

    name = "local"

    def __init__(self) -> None:
        self._queue: deque[Task] = deque()
        self._context: RunContext | None = None
        self._telemetry: Telemetry | None = None
        self._runner: _Runner | None = None

    def start(self, context: RunContext) -> None:
        self._context = context
        self._telemetry = context.source.open(context.window)

    def submit(self, tasks: list[Task]) -> None:
        self._queue.extend(tasks)

    def pending(self) -> int:
        return len(self._queue)

    def poll(self, timeout: float) -> list[Outcome]:
        if not self._queue:
            return []
        return [self._run(self._queue.popleft())]

    def warm(self) -> None:
        """Nothing to start in-process."""

    def shutdown(self) -> None:
        self.stop()
        if self._runner is not None:
            self._runner.close()
            self._runner = None

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
        telemetry.connection.interrupt()
        self._runner.close()
        self._runner = None
        self._telemetry = context.source.open(context.window)
        return Outcome(task.key, task.analyzer, task.params, Status.TIMEOUT,
                       error=f"did not return within its timeout of {task.timeout_s:g} s "
                             "(Python code that never returns; the thread was abandoned)",
                       duration_ms=task.timeout_s * 1000)
