from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

import casebook.executor.telemetry_store as telemetry_store
from casebook.executor.telemetry_store import (
    SchemaError,
    TelemetryStore,
    TelemetryStoreError,
    conform,
)
from casebook.sdk.models import TimeWindow

NOON = datetime(2026, 1, 1, 12, 0)
LAYOUTS = ["store", "store.duckdb"]


def logs(*rows: tuple) -> pa.Table:
    """Rows of (ts, service, level, message)."""
    columns = ("ts", "service", "level", "message")
    return pa.table({c: [r[i] for r in rows] for i, c in enumerate(columns)})


def rows_of(store: TelemetryStore, query: str) -> list[tuple]:
    with store.connect() as con:
        return con.execute(query).fetchall()


@pytest.fixture(params=LAYOUTS)
def store(request, tmp_path) -> TelemetryStore:
    return TelemetryStore.open(tmp_path / request.param, create=True)


def test_missing_store_names_the_path_and_the_command(tmp_path):
    path = tmp_path / "nowhere"
    with pytest.raises(TelemetryStoreError) as error:
        TelemetryStore.open(path)
    assert str(error.value) == (
        f"no telemetry store at {path}; create one with "
        f"`casebook ingest FILE... --telemetry {path}`"
    )
    assert not path.exists()


def test_a_plain_file_is_not_a_store(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(TelemetryStoreError, match="notes.txt is a file, not a telemetry store"):
        TelemetryStore.open(path)


def test_layout_follows_the_path(tmp_path):
    assert TelemetryStore.open(tmp_path / "dir", create=True).layout == "parquet"
    assert TelemetryStore.open(tmp_path / "t.duckdb", create=True).layout == "duckdb"
    assert TelemetryStore.open(tmp_path / "t.db", create=True).layout == "duckdb"


def test_parquet_store_keeps_one_dataset_per_table(tmp_path):
    store = TelemetryStore.open(tmp_path / "tel", create=True)
    store.append("logs", logs((NOON, "api", "error", "boom")))
    store.append("logs", logs((NOON, "api", "info", "ok")))
    files = sorted(p.name for p in (tmp_path / "tel" / "logs" / "hour=2026-01-01T12").iterdir())
    assert len(files) == 2
    assert all(f.startswith("part-") and f.endswith(".parquet") for f in files)
    assert (tmp_path / "tel" / "logs" / "_manifest.json").is_file()


def test_append_reads_back_through_raw_views(store):
    store.append("logs", logs((NOON, "api", "error", "boom"), (NOON, "db", "info", "ok")))
    assert store.tables() == ["logs"]
    assert store.row_counts() == {"logs": 2}
    assert rows_of(
        store, "select service, level, message, attributes from raw.logs order by 1"
    ) == [
        ("api", "error", "boom", {}),
        ("db", "info", "ok", {}),
    ]


def test_core_tables_without_data_are_empty_views_with_the_schema(store):
    with store.connect() as con:
        assert con.execute("select count(*) from raw.spans").fetchone() == (0,)
        columns = [r[0] for r in con.execute("describe raw.metrics").fetchall()]
    assert columns == ["ts", "name", "service", "value", "labels"]


def test_time_range_per_table(store):
    store.append(
        "logs", logs((NOON, "api", "info", "a"), (NOON + timedelta(hours=1), "api", "info", "b"))
    )
    assert store.time_range("logs") == (NOON, NOON + timedelta(hours=1))
    assert store.time_range("spans") == (None, None)
    with pytest.raises(TelemetryStoreError, match="no table 'orders' in the telemetry store"):
        store.time_range("orders")


def test_timestamps_become_naive_utc_whatever_their_spelling():
    spellings = [
        "2026-01-01T12:00:00Z",
        "2026-01-01T14:00:00+02:00",
        "2026-01-01 12:00:00",
        "1767268800",
        "1767268800000",
        "1767268800000000",
        "1767268800000000000",
    ]
    rows = [(s, "api", "info", "m") for s in spellings]
    batch = conform("logs", logs(*rows))
    assert batch.data["ts"].to_pylist() == [NOON] * len(spellings)


def test_epoch_numbers_pick_their_unit_by_magnitude():
    seconds = 1767268800
    for value in (seconds, seconds * 1000, seconds * 10**6, seconds * 10**9, seconds + 0.5):
        batch = conform("logs", logs((value, "api", "info", "m")))
        expected = NOON + timedelta(milliseconds=500) if isinstance(value, float) else NOON
        assert batch.data["ts"].to_pylist() == [expected]


def test_zoned_arrow_timestamps_are_stored_as_utc():
    zoned = pa.array([datetime(2026, 1, 1, 12, tzinfo=UTC)], pa.timestamp("ns", tz="Asia/Tokyo"))
    batch = conform(
        "logs", pa.table({"ts": zoned, "service": ["a"], "level": ["info"], "message": ["m"]})
    )
    assert batch.data["ts"].to_pylist() == [NOON]


def test_columns_are_cast_to_the_schema_and_optional_ones_filled():
    data = pa.table({
        "ts": ["2026-01-01T12:00:00Z"], "name": ["cpu_usage_ratio"], "service": ["api"],
        "value": ["0.75"], "pod": ["api-1"], "route": [""],
    })  # fmt: skip
    batch = conform("metrics", data)
    assert batch.data.schema.names == ["ts", "name", "service", "value", "labels"]
    assert batch.data.to_pylist() == [
        {"ts": NOON, "name": "cpu_usage_ratio", "service": "api", "value": 0.75,
         "labels": [("pod", "api-1")]}
    ]  # fmt: skip


def test_map_columns_accept_objects_maps_and_json_text():
    for labels in ([{"pod": "a", "n": 1}], ['{"pod": "a", "n": 1}']):
        data = pa.table({"ts": [NOON], "name": ["m"], "service": ["s"], "value": [1.0],
                         "labels": labels})  # fmt: skip
        assert conform("metrics", data).data["labels"].to_pylist() == [[("pod", "a"), ("n", "1")]]


def test_levels_and_span_statuses_get_one_spelling():
    batch = conform(
        "logs", logs(*[(NOON, "a", level, "m") for level in ("WARNING", "Error", "info")])
    )
    assert batch.data["level"].to_pylist() == ["warn", "error", "info"]
    spans = pa.table({
        "trace_id": ["t", "t"], "span_id": ["a", "b"], "parent_span_id": ["", "a"],
        "service": ["s", "s"], "name": ["n", "n"], "start_ts": [NOON, NOON],
        "duration_ms": [1, 2], "status": ["STATUS_CODE_ERROR", "Unset"],
    })  # fmt: skip
    batch = conform("spans", spans)
    assert batch.data["status"].to_pylist() == ["error", "ok"]
    assert batch.data["parent_span_id"].to_pylist() == [None, "a"]


def test_missing_required_column_names_table_and_column():
    data = pa.table({"ts": [NOON], "service": ["api"], "message": ["m"]})
    with pytest.raises(SchemaError) as error:
        conform("logs", data)
    assert str(error.value) == (
        "table logs: missing column level (lower-case level: debug, info, warn, error, fatal); "
        "found columns: ts, service, message; add it or rename the column that holds it"
    )


def test_bad_values_name_the_row_the_column_and_the_expectation():
    with pytest.raises(SchemaError) as error:
        conform("logs", logs((NOON.isoformat(), "a", "info", "m"), ("yesterday", "a", "info", "m")))
    assert str(error.value) == (
        "table logs row 2: column ts: expected a timestamp (ISO 8601 text, or epoch "
        "seconds/ms/us/ns), found 'yesterday'"
    )
    data = pa.table({"ts": [NOON], "name": ["m"], "service": ["s"], "value": ["lots"]})
    with pytest.raises(SchemaError, match="row 1: column value: expected a number, found 'lots'"):
        conform("metrics", data)


def test_time_column_must_hold_a_value():
    with pytest.raises(
        SchemaError, match="column ts: expected a timestamp .* found an empty value"
    ):
        conform("logs", logs((None, "a", "info", "m")))


def test_table_names_must_be_plain_sql_names(store):
    with pytest.raises(TelemetryStoreError, match="table name 'my-logs' is not a plain SQL name"):
        store.append("my-logs", logs((NOON, "a", "info", "m")))


def test_extra_tables_keep_their_columns_and_grow_new_ones(store):
    store.append("accounts", pa.table({"ts": ["2026-01-01T12:00:00Z"], "account": ["a1"]}))
    store.append("accounts", pa.table({"ts": [1767268860], "account": ["a2"], "country": ["fr"]}))
    assert rows_of(store, "select ts, account, country from raw.accounts order by ts") == [
        (NOON, "a1", None),
        (NOON + timedelta(minutes=1), "a2", "fr"),
    ]


def test_extra_table_without_a_time_column_is_stored_as_is(store):
    store.append("owners", pa.table({"service": ["api"], "team": ["payments"]}))
    assert rows_of(store, "select * from raw.owners") == [("api", "payments")]
    assert store.time_range("owners") == (None, None)


def test_source_opens_window_scoped_telemetry(store):
    store.append("logs", logs(
        (NOON - timedelta(hours=2), "api", "error", "old"),
        (NOON, "api", "error", "in window"),
        (NOON + timedelta(minutes=5), "db", "info", "also in window"),
    ))  # fmt: skip
    store.append("accounts", pa.table({"ts": [NOON - timedelta(hours=2), NOON], "id": [1, 2]}))
    window = TimeWindow(start=NOON - timedelta(minutes=30), end=NOON + timedelta(minutes=30))
    telemetry = store.source().open(window)
    assert telemetry.sql("select message from logs order by ts").column("message") == [
        "in window",
        "also in window",
    ]
    assert telemetry.sql("select id from accounts").column("id") == [2]
    assert telemetry.sql("select count(*) from spans").scalar() == 0
    baseline = telemetry.between(NOON - timedelta(hours=3), NOON - timedelta(hours=1))
    assert baseline.sql("select message from logs").column("message") == ["old"]


def test_parquet_readers_keep_their_snapshot_and_new_connections_see_later_files(tmp_path):
    store = TelemetryStore.open(tmp_path / "tel", create=True)
    store.append("logs", logs((NOON, "api", "info", "first")))
    con = store.connect()
    store.append("logs", logs((NOON, "api", "info", "second")))
    assert con.execute("select count(*) from raw.logs").fetchone() == (1,)
    assert store.row_counts() == {"logs": 2}


def test_failed_parquet_write_leaves_the_store_as_it_was(tmp_path, monkeypatch):
    store = TelemetryStore.open(tmp_path / "tel", create=True)
    store.append("logs", logs((NOON, "api", "info", "kept")))
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "tel").rglob("*"))
    batches = [
        conform("logs", logs((NOON, "api", "error", "new"))),
        conform(
            "events",
            pa.table({"ts": [NOON], "kind": ["deploy"], "service": ["api"], "summary": ["v2"]}),
        ),  # fmt: skip
    ]
    calls = []

    def failing_fsync(path):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")

    monkeypatch.setattr(telemetry_store.location, "_fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        store.write(batches)
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "tel").rglob("*")) == before
    assert store.row_counts() == {"logs": 1}


def test_failed_duckdb_write_rolls_back_every_table(tmp_path):
    store = TelemetryStore.open(tmp_path / "t.duckdb", create=True)
    store.append("accounts", pa.table({"ts": [NOON], "id": pa.array([1], pa.int32())}))
    batches = [
        conform("logs", logs((NOON, "api", "error", "new"))),
        conform("accounts", pa.table({"ts": [NOON], "id": ["not a number"]})),
    ]
    with pytest.raises(TelemetryStoreError, match="could not write to"):
        store.write(batches)
    assert store.row_counts() == {"accounts": 1}


def test_duckdb_store_refuses_a_writer_while_a_reader_is_open(tmp_path):
    store = TelemetryStore.open(tmp_path / "t.duckdb", create=True)
    store.append("logs", logs((NOON, "api", "info", "m")))
    reader = store.connect()
    with pytest.raises(TelemetryStoreError, match="a DuckDB file takes one writer and no readers"):
        store.append("logs", logs((NOON, "api", "info", "m")))
    reader.close()
    store.append("logs", logs((NOON, "api", "info", "m")))
    assert store.row_counts() == {"logs": 2}
