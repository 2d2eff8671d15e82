"""A store under s3://bucket/prefix, against a local S3 server (moto in server mode)."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from casebook.examples.seeds import kv_cache
from casebook.executor.cli import app
from casebook.executor.telemetry_store import TelemetryStore, TelemetryStoreError

pytestmark = pytest.mark.slow

BUCKET = "telemetry"
NOW = datetime.now(UTC).replace(tzinfo=None, minute=0, second=0, microsecond=0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# moto's server app, as `moto_server` runs it, with two differences. Writes take turns: moto
# checks an If-Match and stores the object in two steps that its request threads can interleave,
# where S3 does both as one. And files in CONTROL steer it: `hold-manifests` stalls manifest
# PUTs until the file is removed (the stalled request then fails, like a connection lost),
# `ignore-conditions` drops If-Match and If-None-Match as a server without them would, and
# `deny-uploads` refuses to list multipart uploads, as for credentials not allowed to.
SERVER = r"""
import os, sys, threading, time
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication, MotoRequestHandler, create_backend_app)

port, control = int(sys.argv[1]), sys.argv[2]
os.environ["MOTO_PORT"] = str(port)
moto = DomainDispatcherApplication(create_backend_app)
writes = threading.Lock()


def app(environ, start_response):
    hold = os.path.join(control, "hold-manifests")
    manifest = environ["REQUEST_METHOD"] == "PUT" and environ["PATH_INFO"].endswith("/_manifest.json")
    if manifest and os.path.exists(hold):
        while os.path.exists(hold):
            time.sleep(0.02)
        start_response("503 Service Unavailable", [("Content-Length", "0")])
        return [b""]
    listing = environ["REQUEST_METHOD"] == "GET" and "uploads" in environ.get("QUERY_STRING", "")
    if listing and os.path.exists(os.path.join(control, "deny-uploads")):
        body = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
        start_response("403 Forbidden", [("Content-Type", "application/xml"),
                                         ("Content-Length", str(len(body)))])
        return [body]
    if os.path.exists(os.path.join(control, "ignore-conditions")):
        environ.pop("HTTP_IF_MATCH", None)
        environ.pop("HTTP_IF_NONE_MATCH", None)
    if environ["REQUEST_METHOD"] in ("GET", "HEAD"):
        return moto(environ, start_response)
    with writes:
        return list(moto(environ, start_response))


run_simple("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)
"""


@pytest.fixture(scope="module")
def control(tmp_path_factory) -> Path:
    """The folder whose files steer the S3 server (see SERVER)."""
    return tmp_path_factory.mktemp("s3-control")


@pytest.fixture(scope="module")
def s3_server(control):
    """A moto S3 server on a free port, for the module."""
    pytest.importorskip("moto", reason="moto is not installed (pip install 'moto[server]')")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), str(control)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("moto_server did not start")
        yield url
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def s3(s3_server, monkeypatch):
    """An empty bucket, and the AWS variables that point casebook (and boto3) at it."""
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    yield client
    listed = client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    for item in listed:
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def keys(client, prefix: str) -> list[str]:
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return sorted(item["Key"][len(prefix) :] for item in listed)


def logs(*stamps: datetime) -> pa.Table:
    n = len(stamps)
    return pa.table(
        {"ts": list(stamps), "service": ["api"] * n, "level": ["info"] * n, "message": ["m"] * n}
    )


def test_ingest_into_s3_twice_adds_the_rows_once_and_writes_nothing_locally(
    s3, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "logs.csv").write_text(
        f"ts,service,level,message\n{NOW.isoformat()},api,error,boom\n"
        f"{(NOW + timedelta(hours=1)).isoformat()},api,info,ok\n"
    )
    location = f"s3://{BUCKET}/store"
    first = CliRunner().invoke(app, ["ingest", "logs.csv", "--telemetry", location])
    again = CliRunner().invoke(app, ["ingest", "logs.csv", "--telemetry", location])
    assert first.exit_code == 0, first.output
    assert "logs.csv: already ingested, nothing added" in again.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs.csv"]  # no folder named s3:
    stored = keys(s3, "store/logs/")
    assert stored[0] == "_manifest.json"
    assert [k.split("/")[0] for k in stored[1:]] == [
        f"hour={NOW.strftime('%Y-%m-%dT%H')}",
        f"hour={(NOW + timedelta(hours=1)).strftime('%Y-%m-%dT%H')}",
    ]
    assert TelemetryStore.open(location).row_counts() == {"logs": 2}


def test_compaction_and_retention_on_s3(s3):
    store = TelemetryStore.open(f"s3://{BUCKET}/store", create=True)
    hour = NOW - timedelta(hours=3)
    old = NOW - timedelta(days=20)
    for minute in range(3):
        store.append("logs", logs(hour + timedelta(minutes=minute)))
    store.append("logs", logs(old))
    (done,) = store.compact(retention=timedelta(days=14), grace=timedelta(0))
    assert (done.merged, done.written, done.dropped, done.deleted) == (3, 1, 1, 4)
    files = [k for k in keys(s3, "store/logs/") if k.endswith(".parquet")]
    assert len(files) == 1 and "/compact-" in files[0]
    assert store.row_counts() == {"logs": 3}


def test_investigate_reads_a_store_on_s3(s3, tmp_path):
    case = kv_cache.generate(tmp_path / "case")
    location = f"s3://{BUCKET}/kv"
    files = [str(p) for p in sorted((case / "telemetry").glob("*.parquet"))]
    loaded = CliRunner().invoke(app, ["ingest", *files, "--telemetry", location])
    assert loaded.exit_code == 0, loaded.output
    result = CliRunner().invoke(
        app,
        ["investigate", str(case / "alert.json"), "--telemetry", location, "--local", "--json",
         "--db", str(tmp_path / "results.duckdb")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    expected = json.loads((case / "expected.json").read_text())["causes"][0]
    assert record["causes"][0]["entity"] == expected["entity"]
    assert record["findings"], "no finding was made from the S3 store"
    replayed = CliRunner().invoke(
        app,
        ["backtest", "--replay", str(tmp_path / "results.duckdb"), "--telemetry", location,
         "--since", "3650d", "--local", "--json"],
    )  # fmt: skip
    assert replayed.exit_code == 0, replayed.output
    summary = json.loads(replayed.stdout)
    assert summary["alerts"] == 1 and summary["changed"] == 0
    assert summary["per_alert"][0]["error"] is None


def test_event_and_store_commands_take_a_store_on_s3(s3):
    location = f"s3://{BUCKET}/cmds"
    recorded = CliRunner().invoke(
        app, ["event", "deploy", "api", "--summary", "v2 out", "--version", "2.0",
              "--telemetry", location],
    )  # fmt: skip
    assert recorded.exit_code == 0, recorded.output
    assert f"recorded deploy of api in {location}" in recorded.output
    assert TelemetryStore.open(location).row_counts() == {"events": 1}
    store = TelemetryStore.open(location)
    store.append("logs", logs(NOW - timedelta(days=20)))
    compacted = CliRunner().invoke(
        app, ["store", "compact", "--telemetry", location, "--retention", "14d", "--grace", "0"]
    )
    assert compacted.exit_code == 0, compacted.output
    assert f"compacted {location}" in compacted.output
    assert store.row_counts() == {"events": 1}
    assert [k for k in keys(s3, "cmds/logs/") if k.endswith(".parquet")] == []


def test_a_missing_bucket_is_named(s3):
    with pytest.raises(TelemetryStoreError, match="no bucket nowhere at the S3 endpoint"):
        TelemetryStore.open("s3://nowhere/store", create=True)


def test_serve_investigates_alerts_over_a_store_on_s3(s3, tmp_path):
    from fastapi.testclient import TestClient

    from casebook.executor.intake.app import create_app
    from casebook.executor.intake.config import IntakeConfig
    from casebook.executor.intake.service import IntakeService

    case = kv_cache.generate(tmp_path / "case")
    location = f"s3://{BUCKET}/serve"
    files = [str(p) for p in sorted((case / "telemetry").glob("*.parquet"))]
    assert CliRunner().invoke(app, ["ingest", *files, "--telemetry", location]).exit_code == 0
    config = IntakeConfig(telemetry=location, db=tmp_path / "results.duckdb", local=True)
    assert config.telemetry == location
    service = IntakeService.open(config)
    body = json.loads((case / "alert.json").read_text())
    with TestClient(create_app(service, run_worker=False), base_url="http://127.0.0.1") as client:
        answer = client.post("/webhook/alertmanager", json=body)
        assert answer.status_code == 202, answer.text
        ident = answer.json()["alerts"][0]["investigation_id"]
        while service.worker.run_once():
            pass
        record = client.get(f"/api/investigations/{ident}").json()
    expected = json.loads((case / "expected.json").read_text())["causes"][0]
    assert record["status"] == "done"
    assert record["causes"][0]["entity"] == expected["entity"]


def test_threads_writing_to_one_s3_store_lose_nothing(s3):
    store = TelemetryStore.open(f"s3://{BUCKET}/threads", create=True)

    def write(worker: int) -> None:
        for index in range(3):
            store.append("logs", logs(NOW, NOW), key=f"{worker}-{index}")

    threads = [threading.Thread(target=write, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert store.row_counts() == {"logs": 18}


WRITER = """
import sys, datetime as d, pyarrow as pa
from casebook.executor.telemetry_store import TelemetryStore
store, t = TelemetryStore.open(sys.argv[1]), d.datetime.fromisoformat(sys.argv[2])
for key in sys.argv[3:]:
    rows = {"ts": [t, t], "service": ["a"] * 2, "level": ["info"] * 2, "message": [key] * 2}
    store.append("logs", pa.table(rows), key=key)
"""


def casebook(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "casebook"), *args]


def test_processes_and_threads_writing_one_s3_store_lose_nothing_and_add_a_batch_once(
    s3, tmp_path
):
    """Two writer processes (sharing five batch keys), two `casebook ingest` of one file, and
    three threads, all at once: every batch is in once, and a reader meanwhile only ever sees
    whole batches, never fewer than before."""
    location = f"s3://{BUCKET}/many"
    store = TelemetryStore.open(location, create=True)
    (tmp_path / "logs.csv").write_text(
        f"ts,service,level,message\n{NOW.isoformat()},api,error,a\n{NOW.isoformat()},api,info,b\n"
    )
    shared = [f"shared-{i}" for i in range(5)]
    processes = [
        subprocess.Popen([sys.executable, "-c", WRITER, location, NOW.isoformat(),
                          *[f"p{p}-{i}" for i in range(5)], *shared])  # fmt: skip
        for p in range(2)
    ] + [
        subprocess.Popen(casebook("ingest", str(tmp_path / "logs.csv"), "--telemetry", location),
                         stdout=subprocess.DEVNULL)  # fmt: skip
        for _ in range(2)
    ]
    seen, stop = [], threading.Event()

    def write(worker: int) -> None:
        for index in range(3):
            store.append("logs", logs(NOW, NOW), key=f"t{worker}-{index}")

    def read() -> None:
        while not stop.is_set():
            seen.append(TelemetryStore.open(location).row_counts().get("logs", 0))

    reader = threading.Thread(target=read)
    reader.start()
    threads = [threading.Thread(target=write, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    codes = [process.wait(120) for process in processes]
    stop.set()
    reader.join(60)
    assert codes == [0, 0, 0, 0]
    # 2 processes x 5 own batches + 5 shared batches + 3 threads x 3 + the file, 2 rows each
    assert store.row_counts() == {"logs": 2 * (10 + 5 + 9 + 1)}
    assert seen and all(count % 2 == 0 for count in seen) and seen == sorted(seen)


def test_a_server_that_ignores_conditional_writes_is_refused_unless_one_process_writes(
    s3, control, monkeypatch
):
    s3.create_bucket(Bucket="plain")
    (control / "ignore-conditions").touch()
    try:
        store = TelemetryStore.open("s3://plain/store", create=True)
        with pytest.raises(TelemetryStoreError) as error:
            store.append("logs", logs(NOW))
    finally:
        (control / "ignore-conditions").unlink()
    assert str(error.value) == (
        "the S3 server for s3://plain/store ignores the If-None-Match header of a PUT; casebook "
        "needs conditional writes so that writers in several processes do not lose each "
        "other's batches. Use a server that honours them (AWS S3 does), or, if one process "
        "only ever writes this store, set CASEBOOK_S3_ONE_WRITER=1"
    )
    assert s3.list_objects_v2(Bucket="plain").get("Contents", []) == []  # its file removed
    (control / "ignore-conditions").touch()
    monkeypatch.setenv("CASEBOOK_S3_ONE_WRITER", "1")
    try:
        store.append("logs", logs(NOW))
    finally:
        (control / "ignore-conditions").unlink()
    assert store.row_counts() == {"logs": 1}
    for item in s3.list_objects_v2(Bucket="plain").get("Contents", []):
        s3.delete_object(Bucket="plain", Key=item["Key"])
    s3.delete_bucket(Bucket="plain")


def referenced(client, prefix: str) -> dict[str, str]:
    """The files a table's manifest names, with their ETags (changed bytes change them)."""
    manifest = json.loads(
        client.get_object(Bucket=BUCKET, Key=f"{prefix}logs/_manifest.json")["Body"].read()
    )
    return {
        part["path"]: client.head_object(Bucket=BUCKET, Key=prefix + part["path"])["ETag"]
        for part in manifest["parts"]
    }


def kill_a_writer_at(control: Path, hold: str, prefix: str, tmp_path: Path, ready) -> None:
    """Run `casebook ingest` into s3://BUCKET/PREFIX with the server stalling `hold`, and
    SIGKILL it once `ready()` says it got that far."""
    rows = "".join(
        f"{(NOW - timedelta(hours=2, minutes=i)).isoformat()},api,info,row {i}\n"
        for i in range(50)
    )
    (tmp_path / "logs.csv").write_text("ts,service,level,message\n" + rows)
    (control / hold).touch()
    writer = subprocess.Popen(
        casebook("ingest", str(tmp_path / "logs.csv"), "--telemetry", f"s3://{BUCKET}/{prefix}"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(1200):
            if ready() or writer.poll() is not None:
                break
            time.sleep(0.05)
        assert writer.poll() is None, "the writer ended before it could be killed"
        assert ready(), "the writer never got to the point where it is killed"
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(30)
    finally:
        (control / hold).unlink()
        if writer.poll() is None:
            writer.kill()


def test_upkeep_deletes_what_a_writer_killed_before_its_commit_left_on_s3(s3, control, tmp_path):
    store = TelemetryStore.open(f"s3://{BUCKET}/dead", create=True)
    store.append("logs", logs(NOW - timedelta(hours=5)))
    before = referenced(s3, "dead/")

    def written() -> bool:
        return any(k.endswith(".parquet") for k in keys(s3, "dead/logs/hour=")) and len(
            [k for k in keys(s3, "dead/logs/") if k.endswith(".parquet")]
        ) > len(before)

    kill_a_writer_at(control, "hold-manifests", "dead", tmp_path, written)
    orphans = {k for k in keys(s3, "dead/") if k.endswith(".parquet")} - set(before)
    assert orphans, "the killed writer left no file"

    (young,) = store.compact()  # the default age: these could be a running writer's
    assert young.orphans == 0
    assert orphans <= set(keys(s3, "dead/"))

    (done,) = store.compact(orphan_age=timedelta(0))
    assert done.orphans == len(orphans)
    assert [k for k in keys(s3, "dead/") if k.endswith(".parquet")] == sorted(before)
    assert referenced(s3, "dead/") == before
    assert store.row_counts() == {"logs": 1}


def test_upkeep_cancels_unfinished_uploads_under_a_table(s3):
    """Large files go up in parts (DuckDB's httpfs does so past its buffer); a writer killed
    midway leaves an upload S3 keeps, unseen and billed, until someone cancels it."""
    store = TelemetryStore.open(f"s3://{BUCKET}/midway", create=True)
    store.append("logs", logs(NOW - timedelta(hours=5)))
    before = referenced(s3, "midway/")
    key = "midway/logs/hour=2026-12-01T00/part-20261201T000000-0123456789ab.parquet"
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=1, Body=b"x" * 1024)

    def unfinished() -> list[str]:
        listed = s3.list_multipart_uploads(Bucket=BUCKET, Prefix="midway/").get("Uploads", [])
        return [item["Key"] for item in listed]

    # moto reports every upload as initiated on 2010-11-10, so that an upload younger than
    # the orphan age is kept cannot be shown against it; the files' rule is shown above.
    assert unfinished() == [key]
    (done,) = store.compact(orphan_age=timedelta(0))
    assert done.orphans == 1 and unfinished() == []
    assert referenced(s3, "midway/") == before
    assert store.row_counts() == {"logs": 1}


def test_compaction_goes_on_when_uploads_may_not_be_listed(s3, control, caplog):
    store = TelemetryStore.open(f"s3://{BUCKET}/denied", create=True)
    for minute in range(2):
        store.append("logs", logs(NOW - timedelta(hours=3, minutes=-minute)))
    (control / "deny-uploads").touch()
    try:
        (done,) = store.compact()
    finally:
        (control / "deny-uploads").unlink()
    assert (done.merged, done.written) == (2, 1)
    assert store.row_counts() == {"logs": 2}
    assert (
        f"cannot list or cancel unfinished uploads in s3://{BUCKET}/denied/logs (AccessDenied): "
        "allow s3:ListBucketMultipartUploads and s3:AbortMultipartUpload, or add a lifecycle "
        "rule AbortIncompleteMultipartUpload to the bucket"
    ) in caplog.text


def test_compaction_while_other_processes_write_loses_and_doubles_nothing_on_s3(s3):
    """Compaction in this process swaps the manifest while two writer processes commit to it
    (one batch key shared) and a thread reads: no batch is lost to a merge, none is merged
    twice, and the reader sees whole batches only."""
    location = f"s3://{BUCKET}/busy"
    store = TelemetryStore.open(location, create=True)
    hour = (NOW - timedelta(hours=3)).isoformat()  # a closed hour: every compaction merges it
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, location, hour,
                          *[f"w{w}-{i}" for i in range(6)], "both"])  # fmt: skip
        for w in range(2)
    ]
    merged, seen, stop = 0, [], threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.append(TelemetryStore.open(location).row_counts().get("logs", 0))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        while any(w.poll() is None for w in writers):
            merged += sum(c.merged for c in store.compact())
    finally:
        stop.set()
        reader.join(60)
    assert [w.wait(60) for w in writers] == [0, 0]
    merged += sum(c.merged for c in store.compact())
    assert merged >= 2, "compaction merged nothing"
    assert store.row_counts() == {"logs": 2 * (12 + 1)}
    assert len(store.snapshot()["logs"]) == 1
    # A reader during the swaps saw whole batches only, and never fewer than before.
    assert seen and all(count % 2 == 0 for count in seen) and seen == sorted(seen)
