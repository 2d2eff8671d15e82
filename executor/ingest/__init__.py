"""Load telemetry files into a store: CSV, JSON lines, Parquet and OpenTelemetry OTLP/JSON.

    reports = ingest(["logs.csv.gz", "otel-export.json"], TelemetryStore.open("telemetry/"))

Every file is read and checked before anything is written, so one broken file leaves the
store exactly as it was. Each file's rows are keyed by a digest of its bytes, so ingesting the
same file again adds nothing (the report says so with `added=False`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from casebook.executor.ingest.events import is_kube_events_file, read_kube_events
from casebook.executor.ingest.files import DECODE_ERRORS, IngestError, Loaded, head, unreadable
from casebook.executor.ingest.otlp import is_otlp, read_otlp
from casebook.executor.ingest.tabular import read_csv, read_jsonl, read_parquet
from casebook.executor.telemetry_store import (
    Batch,
    SchemaError,
    TelemetryStore,
    TelemetryStoreError,
    check_table_name,
    conform,
    is_url,
)
from casebook.executor.telemetry_store.temp_files import remove_stale_temp_files

__all__ = ["IngestError", "IngestReport", "ingest"]

FORMATS = {
    ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet",
    ".jsonl": "json", ".ndjson": "json", ".json": "json", ".otlp": "json",
}  # fmt: skip
COMPRESSED = ".gz"
SUPPORTED = ".csv, .tsv, .jsonl, .ndjson, .json (each optionally .gz), .parquet"


@dataclass(frozen=True)
class IngestReport:
    """What one file added to one table."""

    file: str
    table: str
    format: str
    rows: int
    start: datetime | None
    end: datetime | None
    added: bool = True  # False: the table holds this file's rows already


def ingest(
    files: Iterable[str | os.PathLike[str]],
    store: TelemetryStore | str | os.PathLike[str],
    table: str | None = None,
    retention: timedelta | None = None,
) -> list[IngestReport]:
    """Read, check and add files to the store; all of them or, on any error, none.

    The table is `table` when given, else the file name without extensions (`logs.csv.gz`
    -> logs); OTLP/JSON files go to logs, metrics and spans by content. A directory stands
    for the ingestible files directly inside it. With `retention`, the store is compacted
    afterwards and hours older than it are dropped.
    """
    paths = _expand(files)
    if table is not None:
        table = table.strip().lower()
        try:
            check_table_name(table)
        except TelemetryStoreError as exc:
            raise IngestError(f"--table: {exc}") from None
    target = store if isinstance(store, TelemetryStore) else _existing_store(store)
    loaded = [(item, _digest(path)) for path, file in paths for item in _load(path, file, table)]
    batches = [dataclasses.replace(_conform(item), key=key) for item, key in loaded]
    if target is None:
        target = TelemetryStore.open(store, create=True)  # type: ignore[arg-type]
    elif target.layout == "parquet" and target.path is not None:
        remove_stale_temp_files(target.path)  # what an ingest killed mid-write left behind
    added = target.write(batches)
    if retention is not None:
        target.compact(retention=retention)
    return [
        IngestReport(item.file, item.table, item.format, batch.rows, *batch.time_range(), new)
        for (item, _), batch, new in zip(loaded, batches, added, strict=True)
    ]


def _existing_store(path: str | os.PathLike[str]) -> TelemetryStore | None:
    # A missing store is created only once every file has passed, so a failed call leaves
    # nothing behind. A URL is checked now (its scheme, its bucket); it needs no creating.
    if is_url(path):
        return TelemetryStore.open(path, create=True)
    return TelemetryStore.open(path) if Path(path).expanduser().exists() else None


def _digest(path: Path) -> str:
    """The key of a file's rows: a digest of its bytes as stored (compressed or not)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return f"file-sha256:{digest.hexdigest()[:32]}"


def _expand(files: Iterable[str | os.PathLike[str]]) -> list[tuple[Path, str]]:
    paths: list[tuple[Path, str]] = []
    for name in files:
        path = Path(name).expanduser()
        if path.is_dir():
            inside = sorted(
                p
                for p in path.iterdir()
                if p.is_file() and not p.name.startswith(".") and _format_of(p) is not None
            )
            if not inside:
                raise IngestError(f"{name}: the directory holds no files to ingest ({SUPPORTED})")
            paths += [(p, str(p)) for p in inside]
        elif path.is_file():
            paths.append((path, str(name)))
        else:
            raise IngestError(f"no such file: {name}")
    if not paths:
        raise IngestError(f"no files to ingest; name one or more files ({SUPPORTED})")
    return paths


def _format_of(path: Path) -> str | None:
    """The format named by the file's extensions (.gz aside), or None when they name none."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == COMPRESSED:
        suffixes.pop()
    return FORMATS.get(suffixes[-1]) if suffixes else None


def _table_of(path: Path, file: str) -> str:
    name = path.name
    while Path(name).suffix.lower() in (*FORMATS, COMPRESSED):
        name = name[: -len(Path(name).suffix)]
    name = name.lower()
    try:
        check_table_name(name)
    except TelemetryStoreError as exc:
        raise IngestError(
            f"{file}: {exc} (the table is named after the file); rename the file or pass --table"
        ) from None
    return name


def _load(path: Path, file: str, table: str | None) -> list[Loaded]:
    try:
        return _read(path, file, table)
    except DECODE_ERRORS as exc:  # a damaged file: say where, never a traceback
        raise unreadable(path, file, exc) from None


def _read(path: Path, file: str, table: str | None) -> list[Loaded]:
    kind = _format_of(path) or _sniff(path, file)
    if kind == "json" and is_otlp(path):
        if table is not None:
            raise IngestError(
                f"{file}: OTLP/JSON goes to logs, metrics and spans by content, so --table "
                f"{table} cannot apply; ingest this file in a separate call without --table"
            )
        return read_otlp(path, file)
    if kind == "json" and is_kube_events_file(path) and table in (None, "events"):
        return [read_kube_events(path, file)]
    name = table or _table_of(path, file)
    if kind == "parquet":
        return [read_parquet(path, file, name)]
    if kind == "json":
        return [read_jsonl(path, file, name)]
    return [read_csv(path, file, name, delimiter="\t" if kind == "tsv" else ",")]


def _sniff(path: Path, file: str) -> str:
    start = head(path, 64).removeprefix(b"\xef\xbb\xbf").lstrip()
    if start.startswith(b"PAR1"):
        return "parquet"
    if start.startswith(b"{"):
        return "json"
    raise IngestError(f"{file}: cannot tell its format from the name; use one of {SUPPORTED}")


def _conform(item: Loaded) -> Batch:
    if "" in item.data.column_names:
        raise IngestError(f"{item.file}: a field or column has an empty name; name every one")
    try:
        return conform(item.table, item.data)
    except SchemaError as exc:
        where = item.file if exc.row is None else f"{item.file} {item.locate(exc.row)}"
        raise IngestError(f"{where}: {exc.problem}") from None
    except TelemetryStoreError as exc:
        raise IngestError(f"{item.file}: {exc}") from None
