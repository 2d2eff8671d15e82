"""`casebook serve` in process: webhooks, manual investigations, auth, limits, feedback, pages
and metrics, over the kv_cache seed scenario's telemetry."""

import json
import shutil
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from casebook.examples.seeds import kv_cache
from casebook.executor.cli import app as cli
from casebook.executor.ingest import ingest
from casebook.executor.intake.app import create_app
from casebook.executor.intake.config import IntakeConfig
from casebook.executor.intake.service import IntakeService
from casebook.executor.telemetry_store import TelemetryStore

KV_LABELS = {
    "alertname": "HighRequestVolume",
    "service": "inference-api",
    "severity": "page",
    "team": "inference",
}
STARTS = "2026-03-14T14:10:00Z"
ZERO = "0001-01-01T00:00:00Z"


def build_kv_store(root: Path) -> Path:
    """A telemetry store holding the kv_cache seed incident."""
    case = kv_cache.generate(root / "case")
    ingest(
        sorted((case / "telemetry").glob("*.parquet")),
        TelemetryStore.open(root / "store", create=True),
    )
    return root / "store"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return build_kv_store(tmp_path_factory.mktemp("kv_cache"))


@contextmanager
def serving(tmp_path, store, run_worker=False, **options):
    config = IntakeConfig(telemetry=store, db=tmp_path / "results.duckdb", local=True, **options)
    service = IntakeService.open(config)
    with TestClient(
        create_app(service, run_worker=run_worker), base_url="http://127.0.0.1"
    ) as client:
        yield client, service


def am_alert(fingerprint="kv1", status="firing", starts=STARTS, ends=ZERO, **labels):
    return {
        "status": status,
        "labels": {**KV_LABELS, **labels},
        "annotations": {"summary": "inference-api requests far above normal"},
        "startsAt": starts,
        "endsAt": ends,
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": fingerprint,
    }


def webhook(*alerts, status="firing"):
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HighRequestVolume"}',
        "status": status,
        "receiver": "casebook",
        "groupLabels": {"alertname": "HighRequestVolume"},
        "commonLabels": {"alertname": "HighRequestVolume"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "truncatedAlerts": 0,
        "alerts": list(alerts),
    }


def post(client, path, body, **headers):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(path, content=raw, headers={"Content-Type": "application/json", **headers})


def drain(service) -> int:
    done = 0
    while service.worker.run_once():
        done += 1
    return done


def test_a_group_is_answered_202_queued_investigated_and_resent_without_effect(tmp_path, store):
    with serving(tmp_path, store) as (client, service):
        group = webhook(am_alert("kv1"), am_alert("kv2", pod="gpu-7"))
        answer = post(client, "/webhook/alertmanager", group)
        assert answer.status_code == 202
        body = answer.json()
        assert (body["accepted"], body["duplicates"]) == (2, 0)
        first = body["alerts"][0]
        assert {
            k: first[k] for k in ("fingerprint", "status", "starts_at", "action", "duplicate")
        } == {
            "fingerprint": "kv1",
            "status": "firing",
            "starts_at": "2026-03-14T14:10:00.000000+00:00",
            "action": "investigate",
            "duplicate": False,
        }
        ident = first["investigation_id"]
        waiting = client.get(f"/api/investigations/{ident}")
        assert (waiting.status_code, waiting.json()) == (202, {"id": ident, "state": "queued"})

        assert drain(service) == 2
        record = client.get(f"/api/investigations/{ident}").json()
        assert record["id"] == ident and record["status"] == "done"
        assert record["alert"]["name"] == "HighRequestVolume"
        assert record["causes"][0]["entity"] == {"kind": "service", "name": "kv-cache"}
        assert {"analyzer", "params", "status", "duration_ms", "error"} <= set(
            record["invocations"][0]
        )
        assert record["narrative"]["text"]

        resent = post(client, "/webhook/alertmanager", group).json()
        assert (resent["accepted"], resent["duplicates"]) == (0, 2)
        assert resent["alerts"][0]["investigation_id"] == ident
        assert drain(service) == 0
        listed = client.get("/api/investigations").json()
        assert len(listed["investigations"]) == 2 and listed["pending"] == []


def test_a_resolved_alert_is_noted_on_its_investigation(tmp_path, store):
    with serving(tmp_path, store) as (client, service):
        fired = post(client, "/webhook/alertmanager", webhook(am_alert())).json()
        drain(service)
        ident = fired["alerts"][0]["investigation_id"]
        resolved = post(
            client,
            "/webhook/alertmanager",
            webhook(am_alert(status="resolved", ends="2026-03-14T14:40:00Z"), status="resolved"),
        ).json()
        assert resolved["alerts"][0]["action"] == "resolve"
        assert resolved["alerts"][0]["investigation_id"] == ident
        assert drain(service) == 1
        notes = client.get(f"/api/investigations/{ident}").json()["notes"]
        assert notes[-1] == (
            "Resolved at 2026-03-14 14:40:00 UTC, 30 min after it began (reported by alertmanager)."
        )
        [row] = client.get("/api/investigations").json()["investigations"]
        assert row["resolved_at"] == "2026-03-14T14:40:00Z"


def test_a_flapping_alert_is_noted_not_investigated_again(tmp_path, store):
    with serving(tmp_path, store, cooldown_s=600) as (client, service):
        first = post(client, "/webhook/alertmanager", webhook(am_alert())).json()
        drain(service)
        again = post(
            client, "/webhook/alertmanager", webhook(am_alert(starts="2026-03-14T14:14:00Z"))
        ).json()["alerts"][0]
        ident = first["alerts"][0]["investigation_id"]
        assert (again["action"], again["investigation_id"]) == ("cooldown", ident)
        drain(service)
        [row] = client.get("/api/investigations").json()["investigations"]
        assert row["repeats"] == 1
        assert client.get(f"/api/investigations/{ident}").json()["notes"][-1] == (
            "Fired again at 2026-03-14 14:14:00 UTC, 4 min apart from this one; not "
            "investigated again within the 10 min cooldown."
        )


def test_a_rerun_after_a_crash_replaces_rather_than_adds(tmp_path, store):
    with serving(tmp_path, store) as (client, service):
        fired = post(client, "/webhook/alertmanager", webhook(am_alert())).json()
        ident = fired["alerts"][0]["investigation_id"]
        resolved = webhook(am_alert(status="resolved", ends="2026-03-14T14:40:00Z"))
        post(client, "/webhook/alertmanager", resolved)
        assert drain(service) == 2
        # The process died after storing both results but before marking them done.
        with sqlite3.connect(service.config.queue_path) as db:
            db.execute("update alerts set state = 'running'")
        assert service.queue.recover() == (2, 0)
        assert drain(service) == 2
        listed = client.get("/api/investigations").json()["investigations"]
        assert [r["id"] for r in listed] == [ident]
        notes = client.get(f"/api/investigations/{ident}").json()["notes"]
        assert [n for n in notes if n.startswith("Resolved at")] == [
            "Resolved at 2026-03-14 14:40:00 UTC, 30 min after it began (reported by alertmanager)."
        ]


def test_a_manual_investigation_takes_an_alert_object(tmp_path, store):
    with serving(tmp_path, store) as (client, service):
        alert = {"name": "HighRequestVolume", "labels": KV_LABELS, "starts_at": STARTS}
        answer = post(client, "/api/investigations", alert)
        assert answer.status_code == 202
        [ident] = answer.json()["investigations"]
        assert answer.headers["location"] == f"/api/investigations/{ident}"
        [pending] = client.get("/api/investigations").json()["pending"]
        assert (pending["id"], pending["alert_name"], pending["state"]) == (
            ident,
            "HighRequestVolume",
            "queued",
        )
        # the same alert asked for again is a second investigation, not a duplicate
        assert post(client, "/api/investigations", alert).json()["accepted"] == 1
        assert drain(service) == 2
        assert client.get(f"/api/investigations/{ident}").json()["status"] == "done"


def test_a_full_queue_answers_503_so_alertmanager_retries(tmp_path, store):
    with serving(tmp_path, store, queue_capacity=1) as (client, service):
        full = post(client, "/webhook/alertmanager", webhook(am_alert("a"), am_alert("b")))
        assert full.status_code == 503 and full.headers["retry-after"] == "30"
        assert full.json()["error"].startswith(
            "the alert queue is full: 0 alerts are waiting "
            "and this request adds 2, over the capacity of 1"
        )
        assert service.queue.depth() == 0
        assert post(client, "/webhook/alertmanager", webhook(am_alert("a"))).status_code == 202


def test_feedback_from_the_web_is_stored_for_the_coverage_report(tmp_path, store):
    with serving(tmp_path, store) as (client, service):
        ident = post(client, "/webhook/alertmanager", webhook(am_alert())).json()["alerts"][0][
            "investigation_id"
        ]
        drain(service)
        url = f"/api/investigations/{ident}/feedback"
        given = post(client, url, {"helpful": True, "finding_id": "F1", "comment": "spot on"})
        assert (given.status_code, given.json()) == (
            201,
            {"recorded": True, "investigation_id": ident, "finding_id": "F1", "helpful": True},
        )
        assert post(client, url, {"helpful": False}).status_code == 201
        rows = service.results.connection.execute(
            "select investigation_id, finding_id, helpful, comment, source from feedback "
            "order by created_at"
        ).fetchall()
        assert rows == [(ident, "F1", True, "spot on", "web"), (ident, None, False, "", "web")]

        unknown = post(client, url, {"helpful": True, "finding_id": "F99"})
        assert (unknown.status_code, unknown.json()) == (
            404,
            {"error": f"investigation '{ident}' has no finding 'F99'"},
        )
        vague = post(client, url, {"helpful": "maybe"})
        assert vague.status_code == 422
        assert vague.json()["error"].startswith(
            'helpful: Input should be a valid boolean; expected {"helpful": true|false, '
            '"finding_id": "F1" (optional), "comment": "..." (optional)}, as JSON or as a form'
        )
        nowhere = post(client, "/api/investigations/inv-none/feedback", {"helpful": True})
        assert nowhere.status_code == 404
        assert nowhere.json()["error"].startswith("no investigation 'inv-none' in ")


def form(client, url, fields):
    return client.post(
        url,
        data=fields,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )


def test_the_report_pages_feedback_forms_post_back_and_return_to_the_report(tmp_path, store):
    with serving(tmp_path, store) as (client, service):
        ident = post(client, "/webhook/alertmanager", webhook(am_alert())).json()["alerts"][0][
            "investigation_id"
        ]
        drain(service)
        url = f"/api/investigations/{ident}/feedback"
        on_finding = form(
            client, url, {"investigation_id": ident, "finding_id": "F2", "helpful": "false"}
        )
        assert on_finding.status_code == 303
        assert on_finding.headers["location"] == f"/investigations/{ident}"
        whole = form(client, url, {"investigation_id": ident, "finding_id": "", "helpful": "true"})
        assert whole.status_code == 303
        rows = service.results.connection.execute(
            "select finding_id, helpful, source from feedback order by created_at"
        ).fetchall()
        assert rows == [("F2", False, "web"), (None, True, "web")]
        elsewhere = form(client, url, {"investigation_id": "inv-other", "helpful": "true"})
        assert elsewhere.status_code == 400
        assert elsewhere.headers["content-type"].startswith("text/html")
        assert (
            "the form is about investigation &#x27;inv-other&#x27; but was posted to "
            f"&#x27;{ident}&#x27;; post it to /api/investigations/inv-other/feedback"
        ) in elsewhere.text


def metric_values(text: str) -> dict:
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return values


def test_metrics_show_queue_investigations_and_latency(tmp_path, store):
    with serving(tmp_path, store) as (client, service):
        post(client, "/webhook/alertmanager", webhook(am_alert("a"), am_alert("b")))
        before = metric_values(client.get("/metrics").text)
        assert before["casebook_queue_depth"] == 2
        assert before["casebook_queue_alerts{state=queued}"] == 2
        drain(service)
        post(client, "/webhook/alertmanager", webhook(am_alert("a")))
        answer = client.get("/metrics")
        assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
        after = metric_values(answer.text)
        assert after["casebook_queue_depth"] == 0
        assert after["casebook_investigations_total{status=done}"] == 2
        assert after["casebook_alert_to_report_seconds_count"] == 2
        assert after["casebook_alerts_received_total{outcome=investigate,source=alertmanager}"] == 2
        assert after["casebook_alerts_received_total{outcome=duplicate,source=alertmanager}"] == 1


def test_the_list_page_links_each_report_and_offers_feedback(tmp_path, store):
    with serving(tmp_path, store) as (client, service):
        empty = client.get("/")
        assert "No investigations yet." in empty.text
        ident = post(client, "/webhook/alertmanager", webhook(am_alert())).json()["alerts"][0][
            "investigation_id"
        ]
        queued = client.get("/")
        assert "1 alert(s) waiting" in queued.text and 'http-equiv="refresh"' in queued.text
        waiting = client.get(f"/investigations/{ident}")
        assert waiting.status_code == 202
        assert f"Investigation {ident} is queued" in waiting.text
        drain(service)
        page = client.get("/").text
        assert f'<a href="/investigations/{ident}">HighRequestVolume</a>' in page
        assert "cache on service <b>kv-cache</b>" in page
        assert f'data-feedback="/api/investigations/{ident}/feedback" data-helpful="false"' in page


def test_the_report_page_is_the_html_report_with_feedback(tmp_path, store):
    with serving(tmp_path, store) as (client, service):
        ident = post(client, "/webhook/alertmanager", webhook(am_alert())).json()["alerts"][0][
            "investigation_id"
        ]
        drain(service)
        page = client.get(f"/investigations/{ident}")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.text.lstrip().lower().startswith("<!doctype html")
        assert "kv-cache" in page.text
        assert f"/api/investigations/{ident}/feedback" in page.text


def test_an_investigation_that_fails_is_stored_as_failed_with_the_reason(tmp_path, store):
    doomed = tmp_path / "store"
    shutil.copytree(store, doomed)
    with serving(tmp_path, doomed) as (client, service):
        ident = post(client, "/webhook/alertmanager", webhook(am_alert())).json()["alerts"][0][
            "investigation_id"
        ]
        shutil.rmtree(doomed)
        drain(service)
        record = client.get(f"/api/investigations/{ident}").json()
        assert record["status"] == "failed"
        assert record["notes"] == [
            f"The investigation failed: no telemetry store at {doomed}; "
            f"create one with `casebook ingest FILE... --telemetry "
            f"{doomed}`"
        ]
        assert service.queue.counts()["failed"] == 1
        assert (
            metric_values(client.get("/metrics").text)[
                "casebook_investigations_total{status=failed}"
            ]
            == 1
        )


def test_the_worker_thread_investigates_while_the_app_runs(tmp_path, store):
    with serving(tmp_path, store, run_worker=True) as (client, service):
        ident = post(client, "/webhook/alertmanager", webhook(am_alert())).json()["alerts"][0][
            "investigation_id"
        ]
        deadline = time.monotonic() + 20
        while client.get(f"/api/investigations/{ident}").json().get("status") != "done":
            assert time.monotonic() < deadline, "not investigated within 20 s"
            time.sleep(0.05)
        assert client.get("/healthz").json() == {"status": "ok", "queue_depth": 0}
    assert not service.worker.alive


def test_serve_names_a_missing_telemetry_store(tmp_path):
    result = CliRunner().invoke(
        cli,
        [
            "serve",
            "--telemetry",
            str(tmp_path / "nowhere"),
            "--db",
            str(tmp_path / "results.duckdb"),
        ],
    )
    assert result.exit_code == 2
    assert (
        f"error: no telemetry store at {tmp_path / 'nowhere'}; create one with `casebook "
        "ingest FILE... --telemetry" in " ".join(result.output.split())
    )
