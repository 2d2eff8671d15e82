"""One thread that interrupts the queries of invocations that ran past their deadline."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
from collections.abc import Callable


class Watchdog:
    """Calls an action when its deadline passes, unless the returned handle is cancelled first."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cancelled: set[int] = set()
        self._ids = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float, action: Callable[[], None]) -> int:
        ident = next(self._ids)
        with self._wake:
            heapq.heappush(self._heap, (time.monotonic() + seconds, ident, action))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="casebook-watchdog",
                                                daemon=True)
                self._thread.start()
            self._wake.notify()
        return ident

    def disarm(self, ident: int) -> None:
        with self._wake:
            self._cancelled.add(ident)

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._heap and self._heap[0][1] in self._cancelled:
                    self._cancelled.discard(heapq.heappop(self._heap)[1])
                if not self._heap:
                    self._wake.wait(timeout=5.0)
                    continue
                due, ident, action = self._heap[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._wake.wait(timeout=wait)
                    continue
                heapq.heappop(self._heap)
            # An interrupt on a closed connection has nothing left to stop.
            with contextlib.suppress(Exception):
                action()


WATCHDOG = Watchdog()
