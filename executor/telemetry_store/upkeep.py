"""Keeping a store in shape while it is written: compaction, retention and the removal of
what dead writers left (partitions.py, manifest.py), in the background.

    upkeep = StoreUpkeep("telemetry/", retention=parse_retention("14d")).start()
    ...
    upkeep.stop()
"""

from __future__ import annotations

import logging
import re
import threading
from datetime import timedelta

from casebook.executor.telemetry_store.conformance import TelemetryStoreError

log = logging.getLogger("casebook.store")

UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
INTERVAL_S = 300.0  # how often serve compacts its store


def parse_retention(text: str | None, option: str = "--retention") -> timedelta | None:
    """'14d' -> 14 days (units s, m, h, d, w); None or '' -> None (keep everything)."""
    if text is None or not text.strip():
        return None
    match = DURATION.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise TelemetryStoreError(
            f"{option} {text}: expected a positive number and a unit, such as 12h, 14d or 2w"
        )
    return timedelta(**{UNITS[match.group(2).lower()]: float(match.group(1))})


class StoreUpkeep:
    """Compacts a Parquet store every `interval_s` seconds in a daemon thread."""

    def __init__(
        self, telemetry: str, retention: timedelta | None = None, interval_s: float = INTERVAL_S
    ):
        self.telemetry, self.retention, self.interval_s = telemetry, retention, interval_s
        self.runs = 0
        self.last_error: str | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="casebook-upkeep", daemon=True)

    def start(self) -> StoreUpkeep:
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 30.0) -> None:
        self._stopped.set()
        self._thread.join(timeout)

    def run_once(self) -> None:
        from casebook.executor.telemetry_store import TelemetryStore

        store = TelemetryStore.open(self.telemetry)
        done = store.compact(retention=self.retention)
        self.runs += 1
        merged = sum(c.merged for c in done)
        dropped = sum(c.dropped for c in done)
        orphans = sum(c.orphans for c in done)
        if merged or dropped:
            log.info("compacted %s: %d files merged, %d dropped", store.url, merged, dropped)
        if orphans:
            log.info("deleted %d files (or unfinished uploads) of writers that died before "
                     "committing, in %s", orphans, store.url)  # fmt: skip

    def _loop(self) -> None:
        while not self._stopped.wait(self.interval_s):
            try:
                self.run_once()
                self.last_error = None
            except Exception as exc:  # the store is retried next time; serve keeps serving
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("compacting %s failed: %s", self.telemetry, self.last_error)
