"""The store's life: hourly partitions, idempotent writes, compaction, retention, old layouts."""

import json
import threading
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from casebook.executor.cli import app
from casebook.executor.telemetry_store import TelemetryStore, TelemetryStoreError
from casebook.executor.telemetry_store.upkeep import StoreUpkeep, parse_retention

NOW = datetime.now(UTC).replace(tzinfo=None, minute=0, second=0, microsecond=0)
OLD = NOW - timedelta(days=20)


def logs(*stamps: datetime, message: str = "m") -> pa.Table:
    return pa.table(
        {
            "ts": list(stamps),
            "service": ["api"] * len(stamps),
            "level": ["info"] * len(stamps),
            "message": [message] * len(stamps),
        }
    )


def hour_folders(path, table="logs") -> list[str]:
    return sorted(p.name for p in (path / table).iterdir() if p.name.startswith("hour="))


def parquet_files(path, table="logs") -> list[str]:
    return sorted(str(p.relative_to(path / table)) for p in (path / table).rglob("*.parquet"))


@pytest.fixture
def store(tmp_path) -> TelemetryStore:
    return TelemetryStore.open(tmp_path / "tel", create=True)


def test_rows_go_to_the_partition_of_their_hour(store, tmp_path):
    store.append("logs", logs(NOW, NOW + timedelta(minutes=30), NOW + timedelta(hours=1)))
    first, second = NOW.strftime("%Y-%m-%dT%H"), (NOW + timedelta(hours=1)).strftime("%Y-%m-%dT%H")
    assert hour_folders(tmp_path / "tel") == [f"hour={first}", f"hour={second}"]
    assert store.row_counts() == {"logs": 3}
    manifest = json.loads((tmp_path / "tel" / "logs" / "_manifest.json").read_text())
    assert sorted((p["hour"], p["rows"]) for p in manifest["parts"]) == [(first, 2), (second, 1)]


def test_rows_without_a_time_are_kept_apart_from_the_hours(store, tmp_path):
    store.append("owners", pa.table({"service": ["api", "db"], "team": ["pay", "data"]}))
    assert [p.split("/")[0] for p in parquet_files(tmp_path / "tel", "owners")] == ["timeless"]
    assert store.row_counts() == {"owners": 2}


@pytest.mark.parametrize("name", ["tel", "tel.duckdb"])
def test_a_batch_with_a_key_the_table_holds_adds_nothing(tmp_path, name):
    store = TelemetryStore.open(tmp_path / name, create=True)
    first = store.append("logs", logs(NOW, NOW), key="batch-1")
    again = store.append("logs", logs(NOW, NOW), key="batch-1")
    other = store.append("logs", logs(NOW), key="batch-2")
    assert (first.duplicate, again.duplicate, other.duplicate) == (False, True, False)
    assert store.row_counts() == {"logs": 3}
    # Keys are per table: the same key in another table is another batch.
    store.append("events", pa.table({"ts": [NOW], "kind": ["deploy"], "service": ["api"],
                                     "summary": ["v2"]}), key="batch-1")  # fmt: skip
    assert store.row_counts() == {"events": 1, "logs": 3}


def test_ingesting_the_same_file_twice_adds_its_rows_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "logs.csv").write_text(
        f"ts,service,level,message\n{NOW.isoformat()},api,error,boom\n"
        f"{NOW.isoformat()},api,info,ok\n"
    )
    first = CliRunner().invoke(app, ["ingest", "logs.csv", "--telemetry", "tel"])
    again = CliRunner().invoke(app, ["ingest", "logs.csv", "--telemetry", "tel"])
    assert first.exit_code == 0, first.output
    assert again.exit_code == 0, again.output
    assert "already ingested" not in first.output
    assert "already ingested" in again.output
    assert TelemetryStore.open(tmp_path / "tel").row_counts() == {"logs": 2}


def test_compaction_merges_an_hours_files_and_deletes_them_after_the_grace(store, tmp_path):
    hour = NOW - timedelta(hours=3)
    for minute in range(4):
        store.append("logs", logs(hour + timedelta(minutes=minute)))
    assert len(parquet_files(tmp_path / "tel")) == 4
    reader = store.connect()  # opened before the swap: keeps reading the replaced files

    (done,) = store.compact()
    assert (done.table, done.merged, done.written, done.dropped, done.deleted) == (
        "logs", 4, 1, 0, 0,
    )  # fmt: skip
    live = store.snapshot()["logs"]
    assert len(live) == 1 and "/compact-" in live[0]
    assert len(parquet_files(tmp_path / "tel")) == 5  # replaced files wait for the grace period
    assert reader.execute("select count(*) from raw.logs").fetchone() == (4,)
    assert store.row_counts() == {"logs": 4}

    (done,) = store.compact(grace=timedelta(0))
    assert (done.merged, done.deleted) == (0, 4)
    assert [p.split("/")[1].split("-")[0] for p in parquet_files(tmp_path / "tel")] == ["compact"]
    assert store.row_counts() == {"logs": 4}


def test_the_open_hour_is_left_alone_until_it_holds_many_files(store, tmp_path):
    now = datetime.now(UTC).replace(tzinfo=None)
    store.append("logs", logs(now))
    store.append("logs", logs(now))
    (done,) = store.compact()
    assert done.merged == 0
    assert store.row_counts() == {"logs": 2}


def test_retention_drops_the_hours_older_than_it(store, tmp_path):
    store.append("logs", logs(OLD, OLD + timedelta(hours=1)), key="old")
    store.append("logs", logs(NOW - timedelta(hours=2)), key="recent")
    (done,) = store.compact(retention=parse_retention("14d"), grace=timedelta(0))
    assert (done.dropped, done.deleted) == (2, 2)
    assert hour_folders(tmp_path / "tel") == [
        f"hour={(NOW - timedelta(hours=2)).strftime('%Y-%m-%dT%H')}"
    ]
    assert store.row_counts() == {"logs": 1}
    with store.connect() as con:
        assert con.execute("select min(ts) from raw.logs").fetchone() == (NOW - timedelta(hours=2),)


def test_ingest_with_retention_drops_old_hours(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lines = [f"{t.isoformat()},api,info,m" for t in (OLD, NOW - timedelta(hours=1))]
    (tmp_path / "logs.csv").write_text("ts,service,level,message\n" + "\n".join(lines) + "\n")
    result = CliRunner().invoke(
        app, ["ingest", "logs.csv", "--telemetry", "tel", "--retention", "14d"]
    )
    assert result.exit_code == 0, result.output
    assert TelemetryStore.open(tmp_path / "tel").row_counts() == {"logs": 1}


def test_duckdb_store_retention_deletes_old_rows(tmp_path):
    store = TelemetryStore.open(tmp_path / "t.duckdb", create=True)
    store.append("logs", logs(OLD, NOW))
    (done,) = store.compact(retention=timedelta(days=14))
    assert (done.table, done.dropped) == ("logs", 1)
    assert store.row_counts() == {"logs": 1}


def test_a_store_in_the_flat_layout_reads_and_is_split_into_hours(tmp_path):
    root = tmp_path / "tel"
    (root / "logs").mkdir(parents=True)
    con = duckdb.connect()
    con.register("rows", logs(NOW - timedelta(hours=5), NOW - timedelta(hours=4)))
    con.execute(f"copy rows to '{root / 'logs' / 'part-old-1.parquet'}' (format parquet)")
    con.register("more", logs(NOW - timedelta(hours=4)))
    con.execute(f"copy more to '{root / 'logs' / 'part-old-2.parquet'}' (format parquet)")
    store = TelemetryStore.open(root)
    assert store.row_counts() == {"logs": 3}

    store.append("logs", logs(NOW - timedelta(hours=4)))  # the first write adopts the flat files
    assert store.row_counts() == {"logs": 4}
    store.compact(grace=timedelta(0))
    store.compact(grace=timedelta(0))
    assert all(p.startswith("hour=") for p in parquet_files(root))
    assert len(hour_folders(root)) == 2
    assert store.row_counts() == {"logs": 4}


def test_readers_never_see_half_a_write_or_a_compaction(store):
    """A writer appends 10-row batches and compacts while readers count: every count they see
    is a whole number of batches, never more than were written, and never goes down."""
    batches, seen, errors = 24, [], []
    stop = threading.Event()
    hour = NOW - timedelta(hours=2)

    def write() -> None:
        try:
            for index in range(batches):
                store.append("logs", logs(*[hour] * 10, message=str(index)))
                if index % 4 == 3:
                    store.compact()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            stop.set()

    def read() -> None:
        try:
            while not stop.is_set():
                seen.append(store.row_counts().get("logs", 0))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert seen, "the reader never ran"
    assert all(count % 10 == 0 and count <= batches * 10 for count in seen)
    assert seen == sorted(seen)
    assert store.row_counts() == {"logs": batches * 10}


def test_writers_in_threads_and_processes_lose_nothing(store, tmp_path):
    import subprocess
    import sys

    script = (
        "import sys, pyarrow as pa, datetime as d\n"
        "from casebook.executor.telemetry_store import TelemetryStore\n"
        "s = TelemetryStore.open(sys.argv[1])\n"
        "t = d.datetime.fromisoformat(sys.argv[2])\n"
        "for i in range(4):\n"
        "    s.append('logs', pa.table({'ts': [t], 'service': ['a'], 'level': ['info'],"
        " 'message': [str(i)]}), key=f'p{i}')\n"
    )
    other = subprocess.Popen([sys.executable, "-c", script, store.url, NOW.isoformat()])

    def write(worker: int) -> None:
        for index in range(4):
            store.append("logs", logs(NOW), key=f"t{worker}-{index}")

    threads = [threading.Thread(target=write, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert other.wait(60) == 0
    assert store.row_counts() == {"logs": 16}


def test_an_unsupported_scheme_is_refused_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for location in ("gs://bucket/store", "http://host/store", "ftp://host/store"):
        with pytest.raises(TelemetryStoreError) as error:
            TelemetryStore.open(location, create=True)
        assert str(error.value) == (
            f"unsupported store location {location}: use a local path or s3://bucket/prefix"
        )
    with pytest.raises(TelemetryStoreError) as error:
        TelemetryStore.open("s3:/bucket/store", create=True)
    assert str(error.value) == (
        "unsupported store location s3:/bucket/store: use a local path or s3://bucket/prefix "
        "(for object storage write s3://..., with two slashes)"
    )
    (tmp_path / "logs.csv").write_text(f"ts,service,level,message\n{NOW.isoformat()},a,info,m\n")
    result = CliRunner().invoke(app, ["ingest", "logs.csv", "--telemetry", "gs://bucket/store"])
    assert result.exit_code != 0
    assert "unsupported store location gs://bucket/store" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs.csv"]


def test_every_command_that_takes_a_store_names_the_schemes_it_supports(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "alert.json").write_text(json.dumps(
        {"name": "HighErrorRate", "labels": {"service": "api"}, "starts_at": NOW.isoformat()}
    ))  # fmt: skip
    commands = [
        ["investigate", "alert.json", "--telemetry", "gs://bucket/store", "--local",
         "--db", "results.duckdb"],
        ["store", "compact", "--telemetry", "gs://bucket/store"],
        ["event", "deploy", "api", "--summary", "v2", "--telemetry", "gs://bucket/store"],
        ["backtest", "--replay", "results.duckdb", "--telemetry", "gs://bucket/store", "--local"],
    ]  # fmt: skip
    for command in commands:
        result = CliRunner().invoke(app, command)
        assert result.exit_code != 0, command
        assert "unsupported store location gs://bucket/store: use a local path or " \
            "s3://bucket/prefix" in " ".join(result.output.split()), (command, result.output)


def test_store_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = TelemetryStore.open("tel", create=True)
    assert store.url == str(tmp_path / "tel")


def test_retention_text_names_what_is_expected():
    assert parse_retention("14d") == timedelta(days=14)
    assert parse_retention("36h") == timedelta(hours=36)
    assert parse_retention(None) is None
    with pytest.raises(TelemetryStoreError) as error:
        parse_retention("two weeks")
    assert str(error.value) == (
        "--retention two weeks: expected a positive number and a unit, such as 12h, 14d or 2w"
    )


def test_store_compact_command_prints_what_it_did(store, tmp_path):
    hour = NOW - timedelta(hours=3)
    store.append("logs", logs(hour))
    store.append("logs", logs(hour))
    result = CliRunner().invoke(app, ["store", "compact", "--telemetry", str(tmp_path / "tel")])
    assert result.exit_code == 0, result.output
    assert f"compacted {tmp_path / 'tel'}" in result.output
    assert "logs" in result.output
    assert len(store.snapshot()["logs"]) == 1


def test_upkeep_compacts_in_the_background(store):
    hour = NOW - timedelta(hours=3)
    store.append("logs", logs(hour))
    store.append("logs", logs(hour))
    upkeep = StoreUpkeep(store.url, retention=None, interval_s=0.05).start()
    try:
        for _ in range(200):
            if upkeep.runs:
                break
            threading.Event().wait(0.05)
    finally:
        upkeep.stop()
    assert upkeep.runs >= 1 and upkeep.last_error is None
    assert len(store.snapshot()["logs"]) == 1


def test_a_store_url_in_the_serve_configuration_is_kept_as_written(tmp_path):
    from casebook.executor.config import load_config

    for written in ("s3://bucket/store", "s3:/bucket/store"):
        (tmp_path / "casebook.yaml").write_text(f"telemetry: {written}\n")
        assert load_config(tmp_path / "casebook.yaml").telemetry == written
    with pytest.raises(TelemetryStoreError, match="with two slashes"):
        TelemetryStore.open(load_config(tmp_path / "casebook.yaml").telemetry, create=True)
    (tmp_path / "casebook.yaml").write_text("telemetry: tel\n")
    assert load_config(tmp_path / "casebook.yaml").telemetry == str(tmp_path / "tel")
