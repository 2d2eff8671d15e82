"""What the Ray runtime sends where: a queue per analyzer, batches per worker, retries alone.

A worker that already ran an analyzer in this investigation holds that analyzer's shared
grouped queries, so its batches go there first; an analyzer no worker has claimed goes to a
worker that has nothing of its own to do; only then does a worker take another's work. Batch
size follows the queue: small while little is ready (so follow-ups start early), up to
`max_batch` when thousands are.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from casebook.executor.planner import Task

PIPELINE = 2  # batches queued per worker, so it never waits for the driver between two


@dataclass
class Slot:
    """One worker actor and the batches sent to it, oldest (the running one) first."""

    index: int
    actor: Any
    ready: Any  # resolves to the worker's process id once it is up
    pid: int | None = None
    batches: deque[Batch] = field(default_factory=deque)
    analyzers: set[str] = field(default_factory=set)
    head_since: float = 0.0  # when the running batch started, as far as the driver knows
    probe: Any = None
    probe_sent: float = 0.0
    probe_behind: list[int] = field(default_factory=list)
    answered: float = 0.0
    slow: bool = False  # its running invocation is long: send it nothing more for now

    def forget(self) -> None:
        """Clear what belonged to the worker this slot held (it was replaced or released)."""
        self.batches.clear()
        self.analyzers.clear()
        self.probe, self.answered, self.slow, self.pid = None, 0.0, False, None


@dataclass
class Batch:
    id: int
    tasks: list[Task]
    slot: Slot
    ref: Any
    alone: bool  # a retry of one invocation after its batch lost a worker
    sent: float = field(default_factory=time.monotonic)


class TaskQueues:
    """Tasks waiting for a worker: one queue per analyzer, and retries that run alone."""

    def __init__(self) -> None:
        self.queues: dict[str, deque[Task]] = {}
        self.queued = 0
        self.singles: deque[Task] = deque()
        self.claimed: set[str] = set()

    def __len__(self) -> int:
        return self.queued + len(self.singles)

    def add(self, tasks: list[Task]) -> None:
        for task in tasks:
            self.queues.setdefault(task.analyzer, deque()).append(task)
        self.queued += len(tasks)

    def take(self, slot: Slot, workers: int, max_batch: int) -> tuple[list[Task], bool]:
        """The next batch for this worker, and whether it is a retry that runs alone."""
        if self.singles:
            return [self.singles.popleft()], True
        name = self._choose(slot)
        queue = self.queues[name]
        share = math.ceil(self.queued / (PIPELINE * workers))
        size = min(len(queue), max_batch, max(1, share))
        tasks = [queue.popleft() for _ in range(size)]
        if not queue:
            del self.queues[name]
        self.queued -= size
        slot.analyzers.add(name)
        self.claimed.add(name)
        return tasks, False

    def _choose(self, slot: Slot) -> str:
        own = [n for n in slot.analyzers if n in self.queues]
        if own:
            return max(own, key=lambda n: len(self.queues[n]))
        free = [n for n in self.queues if n not in self.claimed]
        return free[0] if free else max(self.queues, key=lambda n: len(self.queues[n]))

    def put_back(self, tasks: list[Task], alone: bool) -> None:
        """Return tasks to the front of their queues (they were sent, but did not run)."""
        if alone:
            self.singles.extendleft(reversed(tasks))
            return
        for task in reversed(tasks):
            self.queues.setdefault(task.analyzer, deque()).appendleft(task)
        self.queued += len(tasks)

    def put_back_batches(self, batches: list[Batch]) -> None:
        for batch in reversed(batches):
            self.put_back(batch.tasks, batch.alone)

    def retry_alone(self, tasks: list[Task]) -> None:
        """Run each task again on its own, so a task that kills its worker is found."""
        self.singles.extendleft(reversed(tasks))
