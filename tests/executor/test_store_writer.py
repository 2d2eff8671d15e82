"""Rows written into a Parquet store read back exactly as written, in hourly files sorted by
time, whichever writer (pyarrow for plain types, DuckDB for the rest) made the file."""

import json
from datetime import datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq

from casebook.executor.telemetry_store import TelemetryStore, conform

START = datetime(2026, 1, 1, 10, 59, 59)
TEXT_MAP = pa.map_(pa.string(), pa.string())


def spans(offsets_s: list[float], tag: str) -> pa.Table:
    count = len(offsets_s)
    return pa.table({
        "trace_id": [f"{tag}{n:030x}" for n in range(count)],
        "span_id": [f"{n:016x}" for n in range(count)],
        "parent_span_id": [None if n % 2 else "00" * 8 for n in range(count)],
        "service": ["checkout"] * count,
        "name": [f"{tag}-{n}" for n in range(count)],
        "start_ts": pa.array([START + timedelta(seconds=s) for s in offsets_s],
                             pa.timestamp("us")),
        "duration_ms": [n / 3 for n in range(count)],
        "status": ["error" if n % 3 == 0 else "ok" for n in range(count)],
        "attributes": pa.array([[("k", str(n)), ("a", "b")] if n % 2 else []
                                for n in range(count)], TEXT_MAP),
    })  # fmt: skip


def everything(store: TelemetryStore, table: str) -> list[tuple]:
    with store.connect() as con:
        query = f"select * replace (map_entries(attributes) as attributes) from raw.{table}" \
            if table == "spans" else f"select * from raw.{table}"
        return sorted(con.execute(query).fetchall(), key=repr)


def test_rows_read_back_as_from_a_duckdb_file_store_in_hourly_sorted_files(tmp_path):
    # Out of order, ties in time, three hours; then a second write into the same hours.
    first = spans([7200.5, 0, 1, 0, 3600, -0.5, 1], "a")
    second = spans([2, 3601, 3601], "b")
    parquet = TelemetryStore.open(tmp_path / "store", create=True)
    duck = TelemetryStore.open(tmp_path / "same.duckdb", create=True)
    for data in (first, second):
        parquet.append("spans", data)
        duck.append("spans", data)
    assert everything(parquet, "spans") == everything(duck, "spans")
    manifest = json.loads((tmp_path / "store/spans/_manifest.json").read_text())
    assert sorted((p["hour"], p["rows"]) for p in manifest["parts"]) == [
        ("2026-01-01T10", 3), ("2026-01-01T11", 1), ("2026-01-01T11", 3),
        ("2026-01-01T12", 1), ("2026-01-01T12", 2)]
    for part in manifest["parts"]:
        assert part["path"].startswith(f"spans/hour={part['hour']}/part-")
        stamps = pq.read_table(tmp_path / "store" / part["path"])["start_ts"].to_pylist()
        assert stamps == sorted(stamps)
    # Ties (a-1 and a-3) keep the order they arrived in.
    [ten] = [p for p in manifest["parts"] if p["hour"] == "2026-01-01T10"]
    names = pq.read_table(tmp_path / "store" / ten["path"])["name"].to_pylist()
    assert names == ["a-5", "a-1", "a-3"]


def test_files_of_both_writers_have_one_schema_and_compaction_merges_them(tmp_path):
    store = TelemetryStore.open(tmp_path / "store", create=True)
    store.append("spans", spans([0, 1], "a"))
    store.append("spans", spans([2], "b"))
    before = everything(store, "spans")
    [merge] = [c for c in store.compact() if c.table == "spans"]
    assert (merge.merged, merge.written) == (2, 1)  # merged by DuckDB's COPY
    assert everything(store, "spans") == before
    manifest = json.loads((tmp_path / "store/spans/_manifest.json").read_text())
    [compacted] = [p["path"] for p in manifest["parts"] if "/compact-" in p["path"]]
    merged = pq.ParquetFile(tmp_path / "store" / compacted)
    retired = pq.ParquetFile(tmp_path / "store" / sorted(manifest["retired"])[0])
    assert merged.metadata.created_by.startswith("DuckDB")
    assert retired.metadata.created_by.startswith("parquet-cpp-arrow")
    assert merged.schema.to_arrow_schema() == retired.schema.to_arrow_schema()


def test_types_pyarrow_does_not_write_alike_still_go_through_duckdb(tmp_path):
    accounts = pa.table({
        "ts": pa.array([START, START + timedelta(hours=2)], pa.timestamp("us")),
        "balance": pa.array([Decimal("1.50"), Decimal("-2.25")], pa.decimal128(9, 2)),
        "tags": [["a"], []],
    })  # fmt: skip
    store = TelemetryStore.open(tmp_path / "store", create=True)
    store.write([conform("accounts", accounts)])
    assert everything(store, "accounts") == [
        (START, Decimal("1.50"), ["a"]), (START + timedelta(hours=2), Decimal("-2.25"), [])]
    files = sorted((tmp_path / "store/accounts").rglob("*.parquet"))
    assert [f.parent.name for f in files] == ["hour=2026-01-01T10", "hour=2026-01-01T12"]
    assert all(pq.ParquetFile(f).metadata.created_by.startswith("DuckDB") for f in files)
