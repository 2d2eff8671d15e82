"""Upkeep of a store on disk: what writers that died leave behind, and what writers still
running must keep."""

import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from casebook.executor.telemetry_store import TelemetryStore, TelemetryStoreError
from casebook.executor.telemetry_store import manifest as manifests
from casebook.executor.telemetry_store.temp_files import host_tag

NOW = datetime.now(UTC).replace(tzinfo=None, minute=0, second=0, microsecond=0)


def logs(*stamps: datetime) -> pa.Table:
    n = len(stamps)
    return pa.table(
        {"ts": list(stamps), "service": ["api"] * n, "level": ["info"] * n, "message": ["m"] * n}
    )


def parquet_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*.parquet")}


def referenced(root: Path, table: str = "logs") -> dict[str, str]:
    """The files a table's manifest names, with a digest of their bytes."""
    manifest = json.loads((root / table / "_manifest.json").read_text())
    return {
        part["path"]: hashlib.sha256((root / part["path"]).read_bytes()).hexdigest()
        for part in manifest["parts"]
    }


def test_upkeep_deletes_what_a_writer_killed_mid_write_left_and_nothing_else(tmp_path):
    """A real `casebook ingest` is SIGKILLed after writing its files, before its commit (held
    back by the store's lock, which this test takes): upkeep keeps those files while they are
    young enough to be a running writer's, then deletes them, and no file the manifest names."""
    root = tmp_path / "tel"
    store = TelemetryStore.open(root, create=True)
    store.append("logs", logs(NOW - timedelta(hours=5)))
    before = referenced(root)
    rows = "".join(
        f"{(NOW - timedelta(hours=2, minutes=7 * i)).isoformat()},api,info,row {i}\n"
        for i in range(40)
    )
    (tmp_path / "logs.csv").write_text("ts,service,level,message\n" + rows)
    casebook = str(Path(sys.executable).parent / "casebook")
    with (root / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the writer's commit waits for it
        writer = subprocess.Popen(
            [casebook, "ingest", str(tmp_path / "logs.csv"), "--telemetry", str(root)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            for _ in range(1200):
                if parquet_files(root) - set(before) or writer.poll() is not None:
                    break
                time.sleep(0.05)
            assert writer.poll() is None, "the writer ended before it could be killed"
            orphans = parquet_files(root) - set(before)
            assert orphans, "the writer wrote no file"

            (young,) = store.compact()  # the default age: these could be a running writer's
            assert young.orphans == 0
            assert orphans <= parquet_files(root)

            os.kill(writer.pid, signal.SIGKILL)
            writer.wait(30)
        finally:
            if writer.poll() is None:
                writer.kill()
            fcntl.flock(lock, fcntl.LOCK_UN)
    orphans = parquet_files(root) - set(before)  # all the writer had written when it died
    (done,) = store.compact(orphan_age=timedelta(0))
    assert done.orphans == len(orphans) >= 1
    assert parquet_files(root) == set(before)
    assert referenced(root) == before
    assert store.row_counts() == {"logs": 1}


def test_a_write_that_cannot_commit_in_time_adds_nothing_and_leaves_no_file(
    tmp_path, monkeypatch
):
    """Upkeep takes files older than ORPHAN_AGE for a dead writer's, so a writer that took
    longer than COMMIT_WITHIN must not name them in a manifest."""
    store = TelemetryStore.open(tmp_path / "tel", create=True)
    store.append("logs", logs(NOW))
    monkeypatch.setattr(manifests, "COMMIT_WITHIN", timedelta(0))
    with pytest.raises(TelemetryStoreError) as error:
        store.append("logs", logs(NOW, NOW), key="late")
    assert str(error.value) == (
        f"gave up committing to {tmp_path / 'tel' / 'logs'}: the files were written more than "
        "0:00:00 ago, so upkeep may have taken them for a dead writer's; nothing was added, "
        "run it again"
    )
    assert store.row_counts() == {"logs": 1}
    assert len(parquet_files(tmp_path / "tel")) == 1
    monkeypatch.undo()
    store.append("logs", logs(NOW, NOW), key="late")  # a retry adds it
    assert store.row_counts() == {"logs": 3}


def test_compaction_removes_a_killed_writers_half_written_manifest(tmp_path):
    store = TelemetryStore.open(tmp_path / "tel", create=True)
    store.append("logs", logs(NOW))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = tmp_path / "tel" / "logs" / f"._manifest.json.{host_tag()}.{dead.stdout.strip()}.tmp"
    stale.write_text('{"format": 1, "parts": [')
    store.compact()
    assert not stale.exists()
    assert store.row_counts() == {"logs": 1}


def test_ingests_in_several_processes_and_compaction_lose_and_double_nothing(tmp_path):
    """Two `casebook ingest` of different files and a third of the first file again, at once,
    while this process compacts: every file's rows are in once."""
    root = tmp_path / "tel"
    store = TelemetryStore.open(root, create=True)
    hour = NOW - timedelta(hours=3)
    for name in ("a", "b"):
        rows = "".join(f"{(hour + timedelta(minutes=i)).isoformat()},api,info,{name}{i}\n"
                       for i in range(5))  # fmt: skip
        (tmp_path / name).mkdir()
        (tmp_path / name / "logs.csv").write_text("ts,service,level,message\n" + rows)
    casebook = str(Path(sys.executable).parent / "casebook")
    ingests = [
        subprocess.Popen([casebook, "ingest", str(tmp_path / name / "logs.csv"),
                          "--telemetry", str(root)], stdout=subprocess.DEVNULL)  # fmt: skip
        for name in ("a", "b", "a")
    ]
    while any(i.poll() is None for i in ingests):
        store.compact()
    assert [i.wait(60) for i in ingests] == [0, 0, 0]
    store.compact()
    assert store.row_counts() == {"logs": 10}
    assert len(store.snapshot()["logs"]) == 1


def test_background_upkeep_deletes_orphans_past_their_age_and_keeps_younger_ones(tmp_path):
    from casebook.executor.telemetry_store.upkeep import StoreUpkeep

    root = tmp_path / "tel"
    store = TelemetryStore.open(root, create=True)
    store.append("logs", logs(NOW - timedelta(hours=5)))
    before = referenced(root)
    (part,) = before
    folder = (root / part).parent
    old, young = folder / "part-old-orphan.parquet", folder / "part-young-orphan.parquet"
    for orphan in (old, young):
        orphan.write_bytes((root / part).read_bytes())
    past = time.time() - manifests.ORPHAN_AGE.total_seconds() - 60
    os.utime(old, (past, past))
    os.utime(young, (time.time() - 60, time.time() - 60))
    upkeep = StoreUpkeep(store.url, retention=None, interval_s=0.05).start()
    try:
        for _ in range(200):
            if upkeep.runs:
                break
            time.sleep(0.05)
    finally:
        upkeep.stop()
    assert upkeep.runs >= 1 and upkeep.last_error is None
    assert not old.exists() and young.exists()
    assert referenced(root) == before
    assert store.row_counts() == {"logs": 1}


def test_two_compactions_at_once_merge_an_hour_once(tmp_path):
    """`casebook serve`'s upkeep and a `casebook store compact` from cron may run together:
    both merge the hour, one swap wins, the other's merged file is deleted, nothing doubles."""
    import threading

    root = tmp_path / "tel"
    store = TelemetryStore.open(root, create=True)
    for minute in range(6):
        store.append("logs", logs(NOW - timedelta(hours=3, minutes=-minute)))
    parts = parquet_files(root)
    barrier, done = threading.Barrier(2), []

    def compact() -> None:
        barrier.wait()
        done.extend(TelemetryStore.open(root).compact())

    threads = [threading.Thread(target=compact) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(c.merged for c in done) == [0, 6]
    assert store.row_counts() == {"logs": 6}
    (live,) = store.snapshot()["logs"]
    # The replaced parts wait for the grace period; no losing merge's file is left behind.
    assert parquet_files(root) == parts | {Path(live).relative_to(root).as_posix()}


@pytest.mark.slow
def test_serve_compacts_its_store_in_the_background_with_the_retention(tmp_path):
    """`casebook serve --retention 14d`: while it serves, the old hour goes, the closed hour's
    files are merged, and a dead writer's old file is deleted."""
    import socket
    import urllib.request

    root = tmp_path / "tel"
    store = TelemetryStore.open(root, create=True)
    store.append("logs", logs(NOW - timedelta(days=20)))
    for minute in range(2):
        store.append("logs", logs(NOW - timedelta(hours=3, minutes=-minute)))
    part = next(iter(referenced(root)))
    orphan = (root / part).with_name("part-orphan.parquet")
    orphan.write_bytes((root / part).read_bytes())
    past = time.time() - manifests.ORPHAN_AGE.total_seconds() - 60
    os.utime(orphan, (past, past))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    casebook = str(Path(sys.executable).parent / "casebook")
    serve = subprocess.Popen(
        [casebook, "serve", "--telemetry", str(root), "--db", str(tmp_path / "results.duckdb"),
         "--port", str(port), "--local", "--retention", "14d", "--compact-interval", "0.2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(1200):
            if len(store.snapshot().get("logs", ())) == 1 and not orphan.exists():
                break
            assert serve.poll() is None, "casebook serve ended"
            time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            assert answer.status == 200
    finally:
        serve.terminate()
        serve.wait(30)
    assert store.row_counts() == {"logs": 2}  # the 20-day-old hour dropped, the rest merged
    assert len(store.snapshot()["logs"]) == 1
    assert not orphan.exists()
