"""The driver's connection to a store, kept between investigations while the store's files stay
the same (as the Ray workers and the scans actor keep theirs).

Opening a source costs a DuckDB connection, a view per table and a schema of views per window;
and a kept source keeps the answers to its queries (`answers.QueryAnswers`), so the fan-out
sources of the next investigation of the same window are answered without a scan. A store
written to since gives a fresh source: the old one is left to whoever still reads it.

    source = KEPT_SOURCES.source(store)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from casebook.executor.telemetry_store import TelemetryStore
from casebook.sdk.telemetry import TelemetrySource

MAX_USES = 200  # each window leaves a schema of views on the connection; start afresh after


@dataclass
class _Kept:
    snapshot: dict[str, tuple[str, ...]]
    source: TelemetrySource
    uses: int = 0


class SourceKeeper:
    """One source per Parquet store (by URL), replaced when the store's snapshot changes."""

    def __init__(
        self, max_uses: int = MAX_USES, *, memory_mb: int | None = None,
        threads: int | None = None,
    ) -> None:
        self.max_uses = max_uses
        self.memory_mb, self.threads = memory_mb, threads  # DuckDB's, set as a source is sealed
        self._kept: dict[str, _Kept] = {}
        self._lock = threading.Lock()

    def source(self, store: TelemetryStore) -> TelemetrySource:
        """A source reading the store as it is now; a DuckDB-file store's is always fresh (a
        connection held open would keep `casebook ingest` from writing to it)."""
        if store.layout != "parquet":
            return store.source()
        snapshot = store.snapshot()
        with self._lock:
            kept = self._kept.get(store.url)
            if kept is not None and kept.snapshot == snapshot and kept.uses < self.max_uses:
                kept.uses += 1
                return kept.source
        source = store.source(snapshot)
        # Now, not by two investigations opening their first windows at once.
        source.seal(memory_mb=self.memory_mb, threads=self.threads)
        with self._lock:
            self._kept[store.url] = _Kept(snapshot, source, 1)
        return source

    def forget(self) -> None:
        """Let go of every kept source."""
        with self._lock:
            self._kept.clear()


KEPT_SOURCES = SourceKeeper()
