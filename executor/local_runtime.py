"""The in-process runtime: one invocation at a time, each in a thread it can abandon."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from casebook.executor.planner import Task
from casebook.executor.runtime import RunContext
from casebook.sdk.invocation import Outcome, Status, run_invocation
from casebook.sdk.telemetry import Telemetry

# Python that never returns cannot be stopped in-process; after the timeout plus this grace the
# thread is abandoned and the next invocation gets a fresh connection.
GRACE_S = 0.5


class LocalRuntime:
    """Runs tasks in this process. Used by tests and `--local`."""

    name = "local"

    def __init__(self) -> None:
        self._queue: deque[Task] = deque()
        self._context: RunContext | None = None
        self._telemetry: Telemetry | None = None

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

    def stop(self) -> None:
        self._queue.clear()
        self._context = None
        self._telemetry = None

    def _run(self, task: Task) -> Outcome:
        assert self._context is not None and self._telemetry is not None
        context, telemetry = self._context, self._telemetry
        spec = context.registry[task.analyzer]
        box: dict[str, Any] = {}

        def target() -> None:
            box["outcome"] = run_invocation(
                spec, task.params, alert=context.alert, window=context.window,
                telemetry=telemetry, upstream=task.upstream, timeout_s=task.timeout_s,
            )

        thread = threading.Thread(target=target, name=f"casebook-{task.analyzer}", daemon=True)
        thread.start()
        thread.join(task.timeout_s + GRACE_S)
        if thread.is_alive():
            telemetry.connection.interrupt()
            self._telemetry = context.source.open(context.window)
            return Outcome(task.key, task.analyzer, task.params, Status.TIMEOUT,
                           error=f"did not return within its timeout of {task.timeout_s:g} s "
                                 "(Python code that never returns; the thread was abandoned)",
                           duration_ms=task.timeout_s * 1000)
        return box["outcome"]
