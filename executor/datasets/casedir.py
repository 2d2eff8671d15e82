"""Writing one case directory: alert.json, telemetry/<table>.parquet, expected.json, case.json."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from casebook.executor.errors import UserError
from casebook.sdk.drilldown import slice_name
from casebook.sdk.models import Alert
from casebook.sdk.schema import CORE_TABLES, MAP

CASE_FILES = ("alert.json", "expected.json")
__all__ = ["CASE_FILES", "Case", "Cause", "rows_table", "slice_name", "write_case"]
ARROW_TYPES = {
    "TIMESTAMP": pa.timestamp("us"),
    "VARCHAR": pa.string(),
    "DOUBLE": pa.float64(),
    MAP: pa.map_(pa.string(), pa.string()),
}


class DatasetLayoutError(UserError):
    """The source folder is not laid out as the converter expects; the message says how."""


def core_schema(table: str) -> pa.Schema:
    """The Arrow schema of a core table, from sdk/schema.py (timestamps naive UTC)."""
    spec = CORE_TABLES[table]
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.type]) for c in spec.columns])


def rows_table(table: str, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Rows (dicts) as Arrow: core tables get the schema's columns, maps from dicts, and every
    timestamp is naive UTC like the store's."""
    if table not in CORE_TABLES:
        return pa.Table.from_pylist([{k: _naive(v) for k, v in r.items()} for r in rows])
    spec = CORE_TABLES[table]
    columns = {}
    for column in spec.columns:
        values = [r.get(column.name) for r in rows]
        if column.type == MAP:
            values = [sorted((str(k), str(v)) for k, v in (m or {}).items()) for m in values]
        columns[column.name] = pa.array([_naive(v) for v in values],
                                        type=ARROW_TYPES[column.type])
    return pa.Table.from_pydict(columns, schema=core_schema(table))


def _naive(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def conformed(table: str, data: pa.Table) -> pa.Table:
    """A core table with exactly the schema's columns, in order and cast; others as given."""
    if table not in CORE_TABLES:
        return data
    schema = core_schema(table)
    missing = [name for name in schema.names if name not in data.column_names]
    if missing:
        raise ValueError(f"table {table} lacks columns {', '.join(missing)}")
    return data.select(schema.names).cast(schema)


@dataclass(frozen=True)
class Cause:
    """One expected cause: the entity and, when the data set says, its category."""

    kind: str
    name: str
    category: str | None = None

    def as_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"entity": {"kind": self.kind, "name": self.name}}
        if self.category:
            entry["category"] = self.category
        return entry


@dataclass
class Case:
    """Everything one case directory holds."""

    name: str
    alert: Alert
    tables: dict[str, pa.Table]
    causes: list[Cause]
    metadata: dict[str, Any] = field(default_factory=dict)

    def rows(self) -> dict[str, int]:
        return {table: data.num_rows for table, data in self.tables.items()}


def write_case(out: Path, case: Case) -> Path:
    """Write the case under OUT/<case name>/, replacing an earlier conversion of it."""
    directory = out / case.name
    if directory.exists():
        if not any((directory / name).exists() for name in CASE_FILES):
            raise UserError(
                f"{directory} exists and is not a case directory; choose an empty OUT folder "
                "or remove it"
            )
        shutil.rmtree(directory)
    telemetry = directory / "telemetry"
    telemetry.mkdir(parents=True)
    for table, data in case.tables.items():
        pq.write_table(conformed(table, data), telemetry / f"{table}.parquet")
    alert = case.alert.model_dump(mode="json")
    _write_json(directory / "alert.json", alert)
    expected: dict[str, Any] = {"causes": [c.as_json() for c in case.causes]}
    if case.metadata.get("class"):  # generated cases say which fault class they hold
        expected["class"] = case.metadata["class"]
    _write_json(directory / "expected.json", expected)
    _write_json(directory / "case.json", {"case": case.name, **case.metadata, "rows": case.rows()})
    return directory


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def snake_case(text: str) -> str:
    """`PodClientLatencyP90` -> `pod_client_latency_p90`; `Sum` -> `sum`."""
    out: list[str] = []
    for index, char in enumerate(text):
        previous = text[index - 1] if index else ""
        following = text[index + 1] if index + 1 < len(text) else ""
        starts_word = char.isupper() and (
            previous.islower() or previous.isdigit() or (previous.isupper() and following.islower())
        )
        if starts_word:
            out.append("_")
        out.append(char.lower() if char.isalnum() else "_")
    return "_".join(part for part in "".join(out).split("_") if part)


def require(path: Path, what: str, layout: str) -> Path:
    """PATH itself, or a DatasetLayoutError naming the missing file and the expected layout."""
    if not path.exists():
        raise DatasetLayoutError(f"{path} not found: expected {what}. {layout}")
    return path
