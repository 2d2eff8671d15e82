"""What every runtime receives, and the shape it must have."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from casebook.executor.planner import Task
from casebook.sdk.invocation import Outcome
from casebook.sdk.models import Alert, TimeWindow
from casebook.sdk.registry import Registry
from casebook.sdk.telemetry import TelemetrySource


@dataclass
class RunContext:
    """One investigation as a runtime sees it."""

    investigation_id: str
    alert: Alert
    window: TimeWindow
    registry: Registry
    source: TelemetrySource
    store_path: str | None = None  # for workers in other processes
    packs: list[str] = field(default_factory=list)


class Runtime(Protocol):
    name: str

    def start(self, context: RunContext) -> None: ...

    def submit(self, tasks: list[Task]) -> None: ...

    def poll(self, timeout: float) -> list[Outcome]:
        """Outcomes finished since the last call; waits up to `timeout` for at least one."""
        ...

    def pending(self) -> int: ...

    def stop(self) -> None:
        """End the current investigation (the runtime stays usable for the next)."""
        ...

    def warm(self) -> None:
        """Start what takes time to start, before the first investigation."""
        ...

    def shutdown(self) -> None:
        """Release everything; the runtime is not used again."""
        ...
