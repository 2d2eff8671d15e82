"""Writing a scenario as a case directory: alert.json, telemetry/<table>.parquet, expected.json."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from casebook.sdk.models import Alert
from casebook.sdk.schema import CORE_TABLES, MAP

ARROW_TYPES = {"TIMESTAMP": pa.timestamp("us"), "VARCHAR": pa.string(), "DOUBLE": pa.float64(),
               MAP: pa.map_(pa.string(), pa.string())}


def arrow_table(name: str, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Rows as an Arrow table; core tables get exactly the schema's columns and types."""
    core = CORE_TABLES.get(name)
    if core is None:  # extra table: timestamps as naive UTC, like the core tables
        return pa.Table.from_pylist([{k: _naive(v) if isinstance(v, datetime) else v
                                      for k, v in r.items()} for r in rows])
    arrays, fields = [], []
    for column in core.columns:
        kind = ARROW_TYPES[column.type]
        values = [r.get(column.name) for r in rows]
        if column.type == MAP:
            values = [sorted((str(k), str(v)) for k, v in (m or {}).items()) for m in values]
        elif column.type == "TIMESTAMP":
            values = [_naive(v) for v in values]
        arrays.append(pa.array(values, type=kind))
        fields.append(pa.field(column.name, kind))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def write_case(directory: Path, *, alert: Alert, tables: Mapping[str, Sequence[Mapping[str, Any]]],
               expected: list[dict[str, Any]], about: Mapping[str, Any] | None = None) -> Path:
    """Write one case directory (the backtest format of DESIGN.md)."""
    telemetry = directory / "telemetry"
    telemetry.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        pq.write_table(arrow_table(name, rows), telemetry / f"{name}.parquet")
    (directory / "alert.json").write_text(alert.model_dump_json(indent=2))
    (directory / "expected.json").write_text(json.dumps({"causes": expected}, indent=2))
    if about:
        (directory / "case.json").write_text(json.dumps({"dataset": "seeds", **about}, indent=2,
                                                         default=str))
    return directory
