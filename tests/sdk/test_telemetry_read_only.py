"""Telemetry is read-only by construction: every way an analyzer could write, or read outside
the store, is refused, and the store's files never change."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from casebook.executor.telemetry_store import TelemetryStore
from casebook.sdk import TelemetryError, TimeWindow
from casebook.sdk.telemetry import QueryMemoryError
from casebook.sdk.testing import DEFAULT_START, TinyStore

WINDOW = TimeWindow(start=DEFAULT_START - timedelta(minutes=60), end=DEFAULT_START)


@pytest.fixture
def store(tmp_path) -> Path:
    path = tmp_path / "telemetry"
    rows = [{"ts": DEFAULT_START - timedelta(minutes=5), "service": "api", "level": "error",
             "message": "boom"}]
    TelemetryStore.open(path, create=True).append("logs", pa.Table.from_pylist(rows))
    return path


def digest(path: Path) -> str:
    hashed = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        hashed.update(str(file.relative_to(path)).encode() + file.read_bytes())
    return hashed.hexdigest()


def refusal(telemetry, query: str) -> str:
    with pytest.raises(TelemetryError) as caught:
        telemetry.sql(query)
    return str(caught.value)


def test_every_statement_that_writes_or_configures_is_refused(store, tmp_path):
    before = digest(store)
    telemetry = TelemetryStore.open(store).source().open(WINDOW)
    inside, outside = store / "logs" / "part-evil.parquet", tmp_path / "copied.csv"
    refused = {
        f"copy (select * from logs) to '{inside}' (format parquet)": "COPY",
        f"copy (select * from logs) to '{outside}'": "COPY",
        "create table raw.evil as select * from logs": "CREATE",
        "insert into logs select * from logs": "INSERT",
        f"attach '{tmp_path / 'evil.duckdb'}' as evil": "ATTACH",
        "set enable_external_access = true": "SET",
        "pragma threads=64": "SET",
        "install httpfs": "LOAD",
        "load httpfs": "LOAD",
        f"export database '{tmp_path / 'exported'}'": "EXPORT",
    }
    for query, kind in refused.items():
        assert refusal(telemetry, query) == (
            f"telemetry is read-only: a {kind} statement was refused; analyzers may only SELECT"
        ), query
    assert digest(store) == before
    assert not outside.exists() and not (tmp_path / "evil.duckdb").exists()


def test_selects_read_the_store_and_nothing_else(store):
    telemetry = TelemetryStore.open(store).source().open(WINDOW)
    assert telemetry.sql("select count(*) from logs").scalar() == 1
    for query in (
        "select * from read_csv('/etc/passwd')",
        "select * from read_text('/etc/hostname')",
        f"select * from read_parquet('{store}/../**/*')",
        "select * from glob('/*')",
    ):
        message = refusal(telemetry, query)
        assert message.startswith("query refused: telemetry reads only the store's tables ("), query
        assert message.endswith("query the tables events, logs, metrics, spans by name"), query
    # The store's own files are readable, as the views read them.
    assert telemetry.sql(f"select count(*) from read_parquet('{store}/logs/**/*.parquet')").scalar() == 1


def test_no_connection_is_handed_out():
    telemetry = TinyStore().telemetry(WINDOW)
    with pytest.raises(TelemetryError) as caught:
        telemetry.connection.execute("select 1")
    assert str(caught.value) == (
        "telemetry is read-only and hands out no database connection; query it with "
        "telemetry.sql('select ...', [params]) or telemetry.shared(...)"
    )
    assert "_cursor" not in repr(telemetry)


def test_the_configuration_is_locked_once_a_handle_is_open(store):
    source = TelemetryStore.open(store).source()
    source.open(WINDOW)
    for setting in ("enable_external_access = true", "lock_configuration = false",
                    "allowed_directories = ['/']", "memory_limit = '100GB'"):
        with pytest.raises(Exception, match="the configuration has been locked"):
            source.connection.execute(f"set {setting}")


def test_limits_are_set_before_sealing(store):
    source = TelemetryStore.open(store).source()
    source.seal(memory_mb=300, threads=1)
    telemetry = source.open(WINDOW)
    settings = dict(telemetry.sql(
        "select name, value from duckdb_settings() where name in ('memory_limit', 'threads')"
    ).rows)
    assert settings == {"memory_limit": "286.1 MiB", "threads": "1"}


def test_a_query_past_duckdbs_memory_limit_is_a_memory_error(store):
    source = TelemetryStore.open(store).source()
    source.seal(memory_mb=64, threads=1)
    telemetry = source.open(WINDOW)
    with pytest.raises(QueryMemoryError, match="^the query ran out of memory: "):
        telemetry.sql("select list(range) from range(100000000)")


def test_a_source_reading_undeclared_files_says_how_to_declare_them(tmp_path, store):
    import duckdb

    from casebook.sdk.telemetry import TelemetrySource

    con = duckdb.connect()
    con.execute("create schema raw")
    con.execute(f"create view raw.logs as select * from read_parquet('{store}/logs/**/*.parquet')")
    with pytest.raises(TelemetryError) as caught:
        TelemetrySource(con).open(WINDOW)
    assert str(caught.value).startswith(
        "table 'logs' reads files outside the directories this telemetry source may read (none): "
    )
    assert str(caught.value).endswith(
        "declare them with TelemetrySource(connection, readable=[directory])"
    )
    con = duckdb.connect()
    con.execute("create schema raw")
    con.execute(f"create view raw.logs as select * from read_parquet('{store}/logs/**/*.parquet')")
    declared = TelemetrySource(con, readable=[str(store)]).open(WINDOW)
    assert declared.sql("select count(*) from logs").scalar() == 1
