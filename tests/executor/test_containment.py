"""The hostile pack on both runtimes: every run completes and is stored, each bad analyzer gets
its status, the good finding is always there, and the telemetry store never changes.

`CASEBOOK_HOSTILE_RUNS` sets how many runs each runtime gets here (default 1; the 30-run loop,
with random worker kills, is `python benchmarks/hostile.py`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parents[1] / "fixtures"
sys.path.insert(0, str(FIXTURES))  # the workers import the pack by name, as they import packs

import hostile_pack as hostile  # noqa: E402

from casebook.executor.intake.queue import MAX_ATTEMPTS, AlertQueue  # noqa: E402
from casebook.executor.intake.worker import fail_abandoned  # noqa: E402
from casebook.executor.pipeline import investigate  # noqa: E402
from casebook.executor.record import InvestigationRecord  # noqa: E402
from casebook.executor.results import ResultsStore  # noqa: E402
from casebook.executor.runtime.local import LocalRuntime  # noqa: E402
from casebook.sdk.models import TimeWindow  # noqa: E402

RUNS = int(os.environ.get("CASEBOOK_HOSTILE_RUNS", "1"))


@pytest.fixture
def store(tmp_path) -> Path:
    return hostile.make_store(tmp_path / "telemetry")


def run_pack(runtime, store: Path, tmp_path: Path, runs: int) -> None:
    before = hostile.digest(store)
    outside = tmp_path / "outside"
    outside.mkdir()
    registry = hostile.hostile_registry()
    with ResultsStore(tmp_path / "results.duckdb") as results:
        for run in range(runs):
            record = investigate(
                hostile.hostile_alert(store, outside),
                telemetry=store, registry=registry, runtime=runtime, results=results,
                narrate=False,
            )
            stored = results.get(record.id)
            assert stored is not None and stored.status != "running", f"run {run}"
            assert hostile.statuses(stored) == hostile.EXPECTED, f"run {run}"
            assert [f.analyzer for f in stored.findings] == ["good"], f"run {run}"
            errors = {i.analyzer: i.error or "" for i in stored.invocations}
            assert errors["memory_hog"].startswith("used too much memory: the process reached ")
            assert "past its ceiling of 300 MB (@analyzer(memory_mb=...))" in errors["memory_hog"]
            assert errors["stubborn_hog"].startswith("used too much memory: the process reached ")
            assert errors["connection_attribute"].startswith(
                "TelemetryError: telemetry is read-only and hands out no database connection"
            )
            assert hostile.digest(store) == before, f"run {run}: the store changed"
            assert list(outside.iterdir()) == [], f"run {run}: a file was written outside"


def test_the_hostile_pack_on_ray(ray_runtime, store, tmp_path):
    run_pack(ray_runtime, store, tmp_path, RUNS)


def test_the_hostile_pack_in_a_child_process(store, tmp_path):
    runtime = LocalRuntime()
    try:
        run_pack(runtime, store, tmp_path, RUNS)
        assert runtime.limits_note is None  # a store on disk: every limit is enforced
        assert runtime.replaced >= 4 * RUNS  # endless Python, sleep, stubborn hog, os._exit
    finally:
        runtime.shutdown()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(FIXTURES), *sys.path])}
    return subprocess.run(
        [str(Path(sys.executable).parent / "casebook"), *args],
        capture_output=True, text=True, env=env, timeout=300,
    )


@pytest.mark.slow
@pytest.mark.parametrize("where", ["ray", "local"])
def test_json_stdout_is_only_the_document_when_analyzers_kill_their_process(
    where, ray_session, store, tmp_path
):
    outside = tmp_path / "outside"
    outside.mkdir()
    alert_file = tmp_path / "alert.json"
    alert_file.write_text(hostile.hostile_alert(store, outside, hostile.DIES).model_dump_json())
    runtime = (
        ["--ray-address", ray_session.get_runtime_context().gcs_address]
        if where == "ray" else ["--local"]
    )
    done = cli("investigate", str(alert_file), "--telemetry", str(store),
               "--db", str(tmp_path / "results.duckdb"), "--pack", "hostile_pack", "--json",
               *runtime)
    assert done.returncode == 0, done.stderr[-2000:]
    document = json.loads(done.stdout)
    statuses = {i["analyzer"]: i["status"] for i in document["invocations"]}
    assert {statuses["good"], statuses["exits"]} == {"found", "crashed"}
    assert [f["analyzer"] for f in document["findings"]] == ["good"]


def test_an_investigation_its_process_never_finishes_is_failed_not_running(tmp_path):
    from casebook.sdk.testing import make_alert

    alert = make_alert("Hostile", service="checkout")
    window = TimeWindow.around(alert.starts_at, timedelta(hours=1), timedelta(minutes=15))
    queue = AlertQueue(tmp_path / "queue.db")
    [given_up, requeued] = queue.accept(
        [alert, make_alert("Other", starts_at=datetime(2026, 3, 1, tzinfo=UTC))], "alertmanager"
    )
    with ResultsStore(tmp_path / "results.duckdb") as results:
        for receipt in (given_up, requeued):
            results.begin(InvestigationRecord(id=receipt.investigation_id, alert=alert,
                                              window=window, runtime="local"))
        results.begin(InvestigationRecord(id="orphan", alert=alert, window=window,
                                          runtime="local"))
        # The process died MAX_ATTEMPTS times while the first alert ran, once for the second.
        for _ in range(MAX_ATTEMPTS):
            queue.claim()
            queue.recover()
        assert queue.state_of(given_up.investigation_id) == "failed"
        assert queue.state_of(requeued.investigation_id) == "queued"

        assert fail_abandoned(results, queue) == 2
        failed = results.get(given_up.investigation_id)
        assert failed.status == "failed" and failed.finished_at is not None
        assert failed.notes[-1] == (
            f"The investigation failed: the service stopped {MAX_ATTEMPTS} times while "
            "investigating this alert (an analyzer or the machine ended the process); it is "
            "not tried again"
        )
        assert results.get("orphan").notes[-1] == (
            "The investigation failed: the process running it stopped before it finished"
        )
        assert results.get(requeued.investigation_id).status == "running"  # runs again
    queue.close()


def test_serve_local_survives_an_analyzer_that_ends_its_process(store, tmp_path):
    from fastapi.testclient import TestClient

    from casebook.executor.intake.app import create_app
    from casebook.executor.intake.config import IntakeConfig
    from casebook.executor.intake.service import IntakeService

    config = IntakeConfig(telemetry=store, db=tmp_path / "results.duckdb", local=True,
                          packs=["hostile_pack"])
    service = IntakeService.open(config)
    alert = hostile.hostile_alert(store, tmp_path, hostile.DIES)
    body = {
        "version": "4", "status": "firing", "receiver": "casebook", "groupKey": "{}",
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [{
            "status": "firing", "labels": alert.labels, "annotations": {},
            "startsAt": alert.starts_at.isoformat(), "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": "dies1",
        }],
    }
    with TestClient(create_app(service, run_worker=False), base_url="http://127.0.0.1") as client:
        answer = client.post("/webhook/alertmanager", json=body)
        assert answer.status_code == 202
        ident = answer.json()["alerts"][0]["investigation_id"]
        assert service.worker.run_once()
        record = client.get(f"/api/investigations/{ident}").json()
        assert record["status"] != "running"
        statuses = {i["analyzer"]: i["status"] for i in record["invocations"]}
        assert (statuses["good"], statuses["exits"]) == ("found", "crashed")
        assert [f["analyzer"] for f in record["findings"]] == ["good"]
