"""One table's manifest: the Parquet files readers see, and the batches already taken in.

`TABLE/_manifest.json` is the commit point of every change to a table. A writer adds its files
first (no reader looks at a file the manifest does not name), then replaces the manifest in one
step; compaction writes the merged file, swaps the manifest, and deletes the files it replaced
only after a grace period, so a query that started before the swap still finds them. A table
written before manifests existed (flat `TABLE/part-*.parquet`) reads as the files it holds, and
gets a manifest naming them on its first change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from casebook.executor.telemetry_store.conformance import TelemetryStoreError
from casebook.executor.telemetry_store.location import Location

MANIFEST = "_manifest.json"
LOCK = ".lock"  # at the store's root: held while a manifest is read, changed and replaced
FORMAT = 1
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

    @classmethod
    def load(cls, location: Location, table: str) -> Manifest:
        """The table's manifest; for a table without one, its flat `*.parquet` files."""
        data = location.read(f"{table}/{MANIFEST}")
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
            return cls(table, parts, dict(content["retired"]), dict(content["keys"]), True)
        except (ValueError, KeyError, TypeError) as exc:
            raise TelemetryStoreError(
                f"the manifest {location.url(f'{table}/{MANIFEST}')} is unreadable ({exc}); "
                "restore it from a backup, or delete it to read the table's flat files again"
            ) from None

    def save(self, location: Location) -> None:
        """Replace the manifest in one step: readers see the old file list or the new one."""
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
        location.replace(f"{self.table}/{MANIFEST}", json.dumps(content).encode())
        self.saved = True

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


def _is_flat_part(path: str, table: str) -> bool:
    name = path.removeprefix(f"{table}/")
    return "/" not in name and name.endswith(".parquet") and not name.startswith((".", "_"))


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
