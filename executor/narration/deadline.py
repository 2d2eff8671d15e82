"""A hard wall-clock deadline for narration: every attempt, wait and retry fits inside it.

The `anthropic` client's own timeout bounds each read, not the whole answer: a body trickled a
byte at a time never trips it, and its retries sleep for whatever `retry-after` says. So the
client runs with no retries of its own, each call runs in a worker thread that the narrator stops
waiting for at the deadline (closing the client's connections), and retries are decided here.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

RETRYABLE = {408, 409, 429, 500, 502, 503, 504, 529}
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0


class DeadlineReached(Exception):
    """The narration deadline passed while waiting for an answer; the call was abandoned."""


@dataclass
class Deadline:
    """The end of the narration's time, on the monotonic clock."""

    seconds: float
    started: float = 0.0

    def __post_init__(self) -> None:
        self.started = self.started or time.monotonic()

    @property
    def left(self) -> float:
        return max(0.0, self.started + self.seconds - time.monotonic())

    def call(self, func: Callable[[], Any], abandon: Callable[[], None]) -> Any:
        """func() if it returns before the deadline; else abandon() and raise DeadlineReached."""
        box: dict[str, Any] = {}
        done = threading.Event()

        def run() -> None:
            try:
                box["value"] = func()
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=run, name="casebook-narrator-call", daemon=True).start()
        if not done.wait(self.left):
            with contextlib.suppress(Exception):  # closing what was abandoned is best effort
                abandon()
            raise DeadlineReached
        if "error" in box:
            raise box["error"]
        return box.get("value")


def retry_wait(exc: Any, attempt: int) -> tuple[float, bool]:
    """How long to wait before the next attempt, and whether the server asked for it
    (retry-after) rather than the backoff choosing it."""
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            return max(0.0, float(raw) * scale), True
        except ValueError:
            continue  # an HTTP date; fall back to the backoff
    return min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2**attempt), False
