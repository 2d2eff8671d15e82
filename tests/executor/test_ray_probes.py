"""How the Ray runtime judges a worker that has not answered its probe yet, without Ray.

The crash this guards against (`IndexError` at `head.tasks[index]` in `_stuck`) came from a
probe sent while one batch ran, judged after that batch finished against the next one: a batch
whose tasks had been moved elsewhere (empty), or one that had only just begun.
"""

from __future__ import annotations

import time

from casebook.executor.planner import Task
from casebook.executor.runtime.batches import Batch, Slot
from casebook.executor.runtime.cluster import RayRuntime


class Untouchable:
    """A pool that fails the test if the runtime tries to kill or replace a worker."""

    def __init__(self, slots: list[Slot]) -> None:
        self.slots = slots

    def replace(self, slot: Slot) -> None:
        raise AssertionError(f"worker {slot.index} was replaced, but it did nothing wrong")


def slot_with(*batches: list[Task], probe_age_s: float, head_age_s: float) -> Slot:
    now = time.monotonic()
    slot = Slot(0, actor=None, ready=None, pid=1)
    for index, tasks in enumerate(batches):
        slot.batches.append(Batch(index, tasks, slot, ref=f"batch-{index}", alone=False))
    slot.probe, slot.probe_sent, slot.head_since = "probe", now - probe_age_s, now - head_age_s
    return slot


def runtime_with(slot: Slot) -> RayRuntime:
    runtime = RayRuntime(workers=1)
    runtime.pool = Untouchable([slot])  # type: ignore[assignment]
    runtime._batches = {batch.ref: batch for batch in slot.batches}
    runtime._probes = {slot.probe: slot}
    return runtime


def task(name: str, timeout_s: float = 1.0) -> Task:
    return Task(name, name, {}, {}, timeout_s)


def test_an_emptied_head_batch_is_not_judged():
    # The running batch finished; the one behind it had its tasks moved to other workers.
    slot = slot_with([], [task("later")], probe_age_s=30.0, head_age_s=30.0)
    outcomes: list = []
    runtime_with(slot)._check_unanswered(outcomes)
    assert outcomes == []


def test_a_stale_probe_is_judged_from_when_the_head_batch_began():
    # The probe went out 30 s ago, while a long batch ran; this batch began a moment ago.
    slot = slot_with([task("fresh", timeout_s=1.0)], probe_age_s=30.0, head_age_s=0.1)
    outcomes: list = []
    runtime_with(slot)._check_unanswered(outcomes)
    assert outcomes == []


def test_an_answer_naming_an_invocation_no_longer_in_the_batch_is_ignored():
    slot = slot_with([task("only")], probe_age_s=0.0, head_age_s=10.0)
    runtime = runtime_with(slot)

    class Answers:
        class exceptions:
            RayError = Exception

        @staticmethod
        def get(ref):
            return (0, 3, 10.0)  # batch 0, invocation 3 of a batch that now holds one

    runtime.pool.ray = Answers  # type: ignore[attr-defined]
    outcomes: list = []
    runtime._answer(slot, "probe", outcomes)
    assert outcomes == [] and len(slot.batches[0].tasks) == 1
