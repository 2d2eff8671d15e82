"""OpenTelemetry export: spans and metrics to a file `casebook ingest` loads, then analyzed."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from casebook.analyzers.selfwatch import failing_analyzer
from casebook.executor import observability
from casebook.executor.ingest import ingest
from casebook.executor.investigation import run_investigation
from casebook.executor.runtime.local import LocalRuntime
from casebook.executor.telemetry_store import TelemetryStore
from casebook.sdk import Entity, Finding, Telemetry, analyzer
from casebook.sdk.analyzer import spec_of
from casebook.sdk.registry import Registry
from casebook.sdk.testing import DEFAULT_START, TinyStore, make_alert

SERVICES = ["api", "db", "cache"]


class Found(Finding):
    service: str


def services(telemetry: Telemetry) -> list[str]:
    return SERVICES


@analyzer(match={"alertname": "Traced"}, fan_out={"service": services})
def service_errors(telemetry: Telemetry, service: str) -> Found | None:
    rows = telemetry.shared("select service, count(*) as n from logs group by service")
    if (rows.by("service").get(service) or {}).get("n"):
        return Found(
            title=f"{service} logs",
            summary="logged",
            service=service,
            entities=[Entity.service(service)],
        )
    return None


@analyzer(match={"alertname": "Traced"})
def broken_check(telemetry: Telemetry) -> Found | None:
    raise RuntimeError("the check is broken")


REGISTRY = Registry([spec_of(service_errors), spec_of(broken_check)]).checked()


@pytest.fixture(autouse=True)
def export_off():
    observability.configure(None)
    yield
    observability.configure(None)


def tiny_store() -> TinyStore:
    moment = DEFAULT_START - timedelta(minutes=5)
    return TinyStore().add(
        "logs",
        [{"ts": moment, "service": s, "level": "error", "message": "boom"} for s in SERVICES[:2]],
    )


def documents(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def spans_of(path: Path) -> list[dict]:
    return [
        span
        for document in documents(path)
        for resource in document.get("resourceSpans", [])
        for scope in resource["scopeSpans"]
        for span in scope["spans"]
    ]


def attributes(span: dict) -> dict:
    return {a["key"]: next(iter(a["value"].values())) for a in span.get("attributes", [])}


def test_export_is_off_unless_configured(monkeypatch):
    monkeypatch.delenv(observability.ENVIRONMENT, raising=False)
    assert observability.trace_investigation(None, LocalRuntime()) is None


def test_spans_and_metrics_go_to_a_file_casebook_ingests_and_an_analyzer_reads(tmp_path):
    target = tmp_path / "runs.jsonl"
    observability.configure(str(target))
    record = run_investigation(
        make_alert("Traced"), registry=REGISTRY, source=tiny_store().source, runtime=LocalRuntime()
    )
    assert {i.analyzer: i.status for i in record.invocations if i.status != "found"} == {
        "broken_check": "error",
        "service_errors": "nothing",
    }

    spans = spans_of(target)
    names = sorted(s["name"] for s in spans)
    assert names == [
        "broken_check",
        "investigate Traced",
        "service_errors",
        "service_errors",
        "service_errors",
        "wave 0",
    ]
    by_id = {s["spanId"]: s for s in spans}
    broken = next(s for s in spans if s["name"] == "broken_check")
    assert broken["status"] == {"code": 2, "message": "RuntimeError: the check is broken"}
    assert attributes(broken)["casebook.status"] == "error"
    assert by_id[broken["parentSpanId"]]["name"] == "wave 0"
    root = by_id[by_id[broken["parentSpanId"]]["parentSpanId"]]
    assert root["name"] == "investigate Traced" and "parentSpanId" not in root
    assert attributes(root)["casebook.invocations.found"] == "2"
    metric_names = {
        m["name"]
        for d in documents(target)
        for r in d.get("resourceMetrics", [])
        for s in r["scopeMetrics"]
        for m in s["metrics"]
    }
    assert {
        "casebook.invocations",
        "casebook.invocation.duration",
        "casebook.rows_read",
        "casebook.investigations",
        "casebook.investigation.duration",
    } <= metric_names

    store = TelemetryStore.open(tmp_path / "self", create=True)
    tables = {report.table for report in ingest([target], store)}
    assert tables == {"spans", "metrics"}
    own = run_investigation(
        make_alert("CasebookAnalyzerErrors", starts_at=record.created_at),
        registry=Registry([spec_of(failing_analyzer)]).checked(),
        source=store.source(),
        runtime=LocalRuntime(),
    )
    assert [f.title for f in own.findings] == ["analyzer broken_check failed 1 times"]


def test_ray_spans_nest_investigation_wave_batch_invocation(ray_runtime, tmp_path):
    path = tmp_path / "telemetry"
    moment = DEFAULT_START - timedelta(minutes=5)
    TelemetryStore.open(path, create=True).append(
        "logs",
        pa.Table.from_pylist(
            [{"ts": moment, "service": "api", "level": "error", "message": "boom"}]
        ),
    )
    target = tmp_path / "runs.jsonl"
    observability.configure(str(target))
    run_investigation(
        make_alert("Traced"),
        registry=REGISTRY,
        source=TelemetryStore.open(path).source(),
        runtime=ray_runtime,
        store_path=str(path),
    )
    assert ray_runtime.on_batch is None  # the hook is removed when the investigation ends
    spans = spans_of(target)
    by_id = {s["spanId"]: s for s in spans}
    for span in spans:
        if span["name"] in ("service_errors", "broken_check"):
            chain = [span["name"]]
            while "parentSpanId" in span:
                span = by_id[span["parentSpanId"]]
                chain.append(span["name"])
            assert chain[1:] == ["batch", "wave 0", "investigate Traced"]
    batches = [s for s in spans if s["name"] == "batch"]
    assert batches and all(attributes(b)["casebook.batch_status"] == "ok" for b in batches)


def test_console_export_writes_to_stderr_not_stdout(capsys):
    observability.configure("console")
    run_investigation(
        make_alert("Traced"), registry=REGISTRY, source=tiny_store().source, runtime=LocalRuntime()
    )
    captured = capsys.readouterr()
    assert captured.out == ""
    assert '"name": "investigate Traced"' in captured.err


def test_a_file_in_a_missing_folder_is_refused_with_the_fix(tmp_path):
    observability.configure(str(tmp_path / "nowhere" / "runs.jsonl"))
    with pytest.raises(ValueError) as caught:
        observability.current_export()
    assert str(caught.value) == (
        f"CASEBOOK_OTEL={tmp_path / 'nowhere' / 'runs.jsonl'}: expected console, otlp, or a "
        f"file to write OTLP/JSON lines to in an existing folder, found no folder "
        f"{tmp_path / 'nowhere'}"
    )
