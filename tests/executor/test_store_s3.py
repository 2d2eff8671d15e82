"""A store under s3://bucket/prefix, against a local S3 server (moto in server mode)."""

import json
import shutil
import socket
import subprocess
import sys
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


@pytest.fixture(scope="module")
def s3_server():
    """A moto S3 server on a free port, for the module."""
    server = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    if server is None:
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    port = free_port()
    process = subprocess.Popen(
        [server, "-H", "127.0.0.1", "-p", str(port)],
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


@pytest.mark.xfail(strict=False, reason="known bug: threads of one process writing one S3 store "
                   "lost a batch in 2 of 4 runs on a loaded machine; the manifest swap on S3 "
                   "needs a conditional write (see the closing note of the store work)")
def test_threads_writing_to_one_s3_store_lose_nothing(s3):
    import threading

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
