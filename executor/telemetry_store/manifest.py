"""One table's manifest: the Parquet files readers see, and the batches already taken in.

`TABLE/_manifest.json` is the commit point of every change to a table. A writer adds its files
first (no reader looks at a file the manifest does not name), then replaces the manifest in one
step; compaction writes the merged file, swaps the manifest, and deletes the files it replaced
only after a grace period, so a query that started before the swap still finds them. A table
written before manifests existed (flat `TABLE/part-*.parquet`) reads as the files it holds, and
gets a manifest naming them on its first change.

Every change is a compare-and-swap (`commit`): read the manifest and its version, change it,
replace it only if it is still at that version (If-Match on S3, a comparison under flock on a
disk), else read it again and redo the change. So writers in any threads, processes or machines
never lose each other's batches, and a batch key is taken in once even when two writers deliver
it at the same moment. A writer that cannot commit within COMMIT_WITHIN of starting gives up,
so upkeep may delete files no manifest names once they are older than ORPHAN_AGE: they belong
to a writer that died (kill -9, a lost machine), never to one still running.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from casebook.executor.telemetry_store.conformance import TelemetryStoreError
from casebook.executor.telemetry_store.location import Location

MANIFEST = "_manifest.json"
FORMAT = 1
# A write or compaction commits within this of starting to write its files, or gives up: long
# enough for a backfill of many gigabytes, short enough that dead writers' files go the same day.
COMMIT_WITHIN = timedelta(hours=3)
# Files no manifest names and older than this are a dead writer's, and upkeep deletes them.
ORPHAN_AGE = 2 * COMMIT_WITHIN
# Keys of batches taken in, newest kept: enough to recognise a re-sent batch or file, bounded so
# the manifest stays small for a receiver that writes a batch every second.
MAX_KEYS = 20_000


@dataclass(frozen=True)
class Part:
    """One Parquet file of a table: path relative to the store root, its hour, its rows."""

    path: str
    hour: str | None  # "2026-12-03T10", or None for rows without a time (and old flat files)
    rows: int


@dataclass
class Manifest:
    table: str
    parts: list[Part] = field(default_factory=list)
    retired: dict[str, str] = field(default_factory=dict)  # path -> when it was replaced
    keys: dict[str, str] = field(default_factory=dict)  # batch key -> when it was taken in
    saved: bool = False  # False: no manifest yet (a new table, or one in the flat layout)
    version: str | None = None  # of the manifest as read; a swap succeeds only from it

    @classmethod
    def load(cls, location: Location, table: str) -> Manifest:
        """The table's manifest; for a table without one, its flat `*.parquet` files."""
        data, version = location.read_versioned(f"{table}/{MANIFEST}")
        if data is None:
            flat = [
                Part(f.path, None, -1)
                for f in location.files(table)
                if _is_flat_part(f.path, table)
            ]
            return cls(table, sorted(flat, key=lambda p: p.path))
        try:
            content = json.loads(data)
            if content.get("format") != FORMAT:
                raise ValueError(f"format {content.get('format')!r}, expected {FORMAT}")
            parts = [Part(p["path"], p["hour"], p["rows"]) for p in content["parts"]]
            retired, keys = dict(content["retired"]), dict(content["keys"])
            return cls(table, parts, retired, keys, saved=True, version=version)
        except (ValueError, KeyError, TypeError) as exc:
            raise TelemetryStoreError(
                f"the manifest {location.url(f'{table}/{MANIFEST}')} is unreadable ({exc}); "
                "restore it from a backup, or delete it to read the table's flat files again"
            ) from None

    def save(self, location: Location) -> bool:
        """Replace the manifest in one step, if nobody replaced it since it was read.

        Readers see the old file list or the new one. False: another writer came first, and
        nothing was written (read it again, see `commit`).
        """
        if len(self.keys) > MAX_KEYS:
            newest = sorted(self.keys.items(), key=lambda item: item[1])[-MAX_KEYS:]
            self.keys = dict(newest)
        content = {
            "format": FORMAT,
            "table": self.table,
            "parts": [{"path": p.path, "hour": p.hour, "rows": p.rows} for p in self.parts],
            "retired": self.retired,
            "keys": self.keys,
        }
        data = json.dumps(content).encode()
        if not location.replace_if(f"{self.table}/{MANIFEST}", data, self.version):
            return False
        self.saved = True
        return True

    def files(self) -> list[str]:
        return [p.path for p in self.parts]

    def known(self) -> set[str]:
        """Every file the manifest accounts for: live ones and replaced ones not yet deleted."""
        return {p.path for p in self.parts} | set(self.retired)

    def retire(self, parts: list[Part], now: datetime) -> None:
        gone = {p.path for p in parts}
        self.parts = [p for p in self.parts if p.path not in gone]
        self.retired |= dict.fromkeys(gone, now.isoformat())

    def forget_keys_before(self, cutoff: datetime) -> None:
        self.keys = {k: at for k, at in self.keys.items() if _moment(at) >= cutoff}

    def deletable(self, now: datetime, grace: timedelta) -> list[str]:
        """Replaced files that no query started before their replacement can still be reading."""
        return [path for path, at in self.retired.items() if _moment(at) <= now - grace]


def commit(
    location: Location, table: str, change: Callable[[Manifest], bool], started: float
) -> Manifest:
    """Apply `change` to the table's newest manifest and swap it in; redone on a conflict.

    `change` edits the manifest it is given and says whether it changed anything; it may be
    called several times (each time on a fresh manifest), so it must decide afresh each time.
    `started` (time.monotonic()) is when the caller began writing the files it commits.
    """
    # Threads of one process take turns, so they do not make each other redo their work.
    with _turn(location.url(f"{table}/{MANIFEST}")):
        attempt = 0
        while True:
            manifest = Manifest.load(location, table)
            if not change(manifest):
                return manifest
            if time.monotonic() - started > COMMIT_WITHIN.total_seconds():
                raise TelemetryStoreError(
                    f"gave up committing to {location.url(table)}: the files were written more "
                    f"than {COMMIT_WITHIN} ago, so upkeep may have taken them for a dead "
                    "writer's; nothing was added, run it again"
                )
            if manifest.save(location):
                return manifest
            attempt += 1
            time.sleep(random.uniform(0, min(1.0, 0.005 * 2 ** min(attempt, 8))))


_turns: dict[str, threading.Lock] = {}
_turns_guard = threading.Lock()


def _turn(name: str) -> threading.Lock:
    with _turns_guard:
        return _turns.setdefault(name, threading.Lock())


def _is_flat_part(path: str, table: str) -> bool:
    name = path.removeprefix(f"{table}/")
    return "/" not in name and name.endswith(".parquet") and not name.startswith((".", "_"))


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
