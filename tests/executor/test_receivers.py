"""Live telemetry into `casebook serve` over real HTTP (uvicorn): the OpenTelemetry SDK's OTLP/HTTP
exporters, OTLP/JSON, Prometheus remote-write bodies, change events and `casebook event`."""

import base64
import gzip
import json
import socket
import threading
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from casebook.executor.cli import app as cli
from casebook.executor.ingest import IngestError, ingest
from casebook.executor.ingest.remote_write import encode_remote_write
from casebook.executor.intake.app import create_app
from casebook.executor.intake.config import IntakeConfig
from casebook.executor.intake.service import IntakeService
from casebook.executor.telemetry_store import TelemetryStore

TOKEN = "receiver-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NOON_NANOS = 1767268800000000000  # 2026-01-01 12:00 UTC
NOON = datetime(2026, 1, 1, 12, 0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Served:
    """`casebook serve`'s app on a real uvicorn server in a thread of this process."""

    def __init__(self, tmp: Path):
        self.store = tmp / "store"
        TelemetryStore.open(self.store, create=True)
        config = IntakeConfig(telemetry=self.store, db=tmp / "results.duckdb", local=True,
                              token=TOKEN)
        self.service = IntakeService.open(config)
        self.app = create_app(self.service, run_worker=False)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)

    @property
    def spool(self):
        return self.app.state.spool

    def rows(self, query: str) -> list[tuple]:
        """Rows of a query over the store once everything received is written."""
        self.spool.flush()
        with TelemetryStore.open(self.store).connect() as con:
            return con.execute(query).fetchall()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)


@contextmanager
def serving(tmp_path):
    served = Served(tmp_path)
    try:
        yield served
    finally:
        served.stop()


def test_the_opentelemetry_sdk_exports_traces_logs_and_metrics(tmp_path):
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import Status, StatusCode

    resource = Resource.create({"service.name": "checkout", "k8s.pod.name": "checkout-1"})
    with serving(tmp_path) as served:
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
            endpoint=f"{served.url}/v1/traces", headers=AUTH, compression=Compression.Gzip)))
        tracer = tracer_provider.get_tracer("test")
        with tracer.start_as_current_span("POST /pay") as parent:
            with tracer.start_as_current_span("SELECT") as child:
                child.set_attribute("db.rows", 3)
            parent.set_status(Status(StatusCode.ERROR, "card declined"))
        trace_id = f"{parent.get_span_context().trace_id:032x}"
        tracer_provider.shutdown()

        logger_provider = LoggerProvider(resource=resource)
        logger_provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(
            endpoint=f"{served.url}/v1/logs", headers=AUTH)))
        from opentelemetry._logs import SeverityNumber

        logger_provider.get_logger("test").emit(
            body="card declined", severity_number=SeverityNumber.ERROR, severity_text="ERROR",
            attributes={"account": "a-17"})
        logger_provider.shutdown()

        reader = PeriodicExportingMetricReader(OTLPMetricExporter(
            endpoint=f"{served.url}/v1/metrics", headers=AUTH), export_interval_millis=60_000)
        meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        counter = meter_provider.get_meter("test").create_counter("http_requests_total")
        counter.add(5, {"route": "/pay"})
        meter_provider.shutdown()  # exports once more on the way out

        spans = served.rows("select trace_id, name, service, status, parent_span_id is null, "
                            "attributes['k8s.pod.name'] from raw.spans order by name")
        assert spans == [(trace_id, "POST /pay", "checkout", "error", True, "checkout-1"),
                         (trace_id, "SELECT", "checkout", "ok", False, "checkout-1")]
        assert served.rows("select service, level, message, attributes['account'] "
                           "from raw.logs") == [("checkout", "error", "card declined", "a-17")]
        assert served.rows("select name, service, value, labels['route'] from raw.metrics") == [
            ("http_requests_total", "checkout", 5.0, "/pay")]


def span_document(trace_id: str, span_id: str, start: int | None = NOON_NANOS) -> dict:
    span = {"traceId": trace_id, "spanId": span_id, "name": "GET /", "kind": 2,
            "endTimeUnixNano": str(NOON_NANOS + 5_000_000)}
    if start is not None:
        span["startTimeUnixNano"] = str(start)
    return {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "web"}}]},
        "scopeSpans": [{"spans": [span]}]}]}


def test_otlp_json_takes_hex_and_base64_ids_and_reports_partial_success(tmp_path):
    trace = bytes(range(16))
    span = bytes(range(8, 16))
    with serving(tmp_path) as served:
        hex_body = span_document(trace.hex().upper(), span.hex())
        answer = httpx.post(f"{served.url}/v1/traces", json=hex_body, headers=AUTH)
        assert (answer.status_code, answer.json()) == (200, {})
        b64_body = json.dumps(span_document(base64.b64encode(trace).decode(),
                                            base64.b64encode(bytes(8)).decode()))
        answer = httpx.post(f"{served.url}/v1/traces", content=gzip.compress(b64_body.encode()),
                            headers={**AUTH, "Content-Type": "application/json",
                                     "Content-Encoding": "gzip"})
        assert answer.status_code == 200
        partial = span_document(trace.hex(), "ff" * 8, start=None)
        answer = httpx.post(f"{served.url}/v1/traces", json=partial, headers=AUTH)
        assert (answer.status_code, answer.json()) == (200, {"partialSuccess": {
            "rejectedSpans": "1", "errorMessage": "expected startTimeUnixNano on every span, "
                                                  "found span 'GET /' without it"}})
        assert served.rows("select trace_id, span_id, duration_ms from raw.spans "
                           "order by span_id") == [(trace.hex(), "0000000000000000", 5.0),
                                                   (trace.hex(), span.hex(), 5.0)]


def test_otlp_refusals_say_what_was_wrong(tmp_path):
    with serving(tmp_path) as served:
        garbage = httpx.post(f"{served.url}/v1/logs", content=b"\xff\x01not protobuf",
                             headers={**AUTH, "Content-Type": "application/x-protobuf"})
        assert garbage.status_code == 400
        from google.rpc.status_pb2 import Status

        status = Status.FromString(garbage.content)
        assert status.code == 3
        assert status.message.startswith("the body is not a protobuf ExportLogsServiceRequest")
        bad_id = httpx.post(f"{served.url}/v1/traces", json=span_document("abc", "00" * 8),
                            headers=AUTH)
        assert bad_id.status_code == 400
        assert "traceId 'abc' is not a 16-byte id: expected 32 hex digits" in \
            bad_id.json()["message"]
        assert httpx.post(f"{served.url}/v1/traces", content=b"x",
                          headers={**AUTH, "Content-Type": "text/plain"}).status_code == 415
        unauthorized = httpx.post(f"{served.url}/v1/traces", json={})
        assert unauthorized.status_code == 401
        assert served.rows("select count(*) from raw.spans") == [(0,)]


def test_remote_write_samples_become_metrics_once(tmp_path):
    stale = __import__("struct").unpack("<d", (0x7FF0000000000002).to_bytes(8, "little"))[0]
    body = encode_remote_write([
        ({"__name__": "cpu_usage_ratio", "service": "checkout", "pod": "checkout-1"},
         [(1767268800000, 0.25), (1767268815000, 0.5)]),
        ({"__name__": "up", "job": "node", "instance": "n1:9100"}, [(1767268800000, 1.0)]),
        ({"__name__": "up", "job": "gone"}, [(1767268800000, stale)]),
    ])
    headers = {**AUTH, "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
               "X-Prometheus-Remote-Write-Version": "0.1.0"}
    with serving(tmp_path) as served:
        assert httpx.post(f"{served.url}/api/v1/write", content=body,
                          headers=headers).status_code == 204
        # Prometheus re-sends a batch it got no answer for: stored once all the same.
        assert httpx.post(f"{served.url}/api/v1/write", content=body,
                          headers=headers).status_code == 204
        assert served.rows("select ts, name, service, value, labels from raw.metrics "
                           "order by name, ts") == [
            (NOON, "cpu_usage_ratio", "checkout", 0.25, {"pod": "checkout-1",
                                                         "service": "checkout"}),
            (datetime(2026, 1, 1, 12, 0, 15), "cpu_usage_ratio", "checkout", 0.5,
             {"pod": "checkout-1", "service": "checkout"}),
            (NOON, "up", "node", 1.0, {"instance": "n1:9100", "job": "node"}),
        ]
        refused = httpx.post(f"{served.url}/api/v1/write", content=b"plain", headers=headers)
        assert refused.status_code == 400
        assert refused.json()["error"].startswith("the body is not snappy-compressed")


KUBE_EVENTS = {"apiVersion": "v1", "kind": "List", "items": [
    {"kind": "Event", "reason": "Pulled", "type": "Normal",
     "message": 'Successfully pulled image "registry.local/checkout:v2.4.1" in 1.2s',
     "involvedObject": {"kind": "Pod", "name": "checkout-7d9f8b6c5-x2k4q", "namespace": "shop"},
     "lastTimestamp": "2026-01-01T11:55:00Z", "count": 1},
    {"kind": "Event", "reason": "OOMKilling", "type": "Warning", "message": "Memory cgroup out "
     "of memory", "involvedObject": {"kind": "Pod", "name": "cart-0", "namespace": "shop"},
     "lastTimestamp": "2026-01-01T11:58:00Z", "count": 2},
    {"kind": "Event", "reason": "ScalingReplicaSet", "type": "Normal",
     "message": "Scaled up replica set checkout-7d9f8b6c5 to 4",
     "involvedObject": {"kind": "Deployment", "name": "checkout", "namespace": "shop"},
     "firstTimestamp": "2026-01-01T11:50:00Z", "lastTimestamp": None},
    {"kind": "Event", "reason": "Scheduled", "type": "Normal", "message": "assigned",
     "involvedObject": {"kind": "Pod", "name": "checkout-7d9f8b6c5-x2k4q"},
     "lastTimestamp": "2026-01-01T11:54:00Z"},
]}  # fmt: skip
KUBE_ROWS = [
    (datetime(2026, 1, 1, 11, 50), "scale", "checkout"),
    (datetime(2026, 1, 1, 11, 55), "deploy", "checkout"),
    (datetime(2026, 1, 1, 11, 58), "restart", "cart"),
]


def test_change_events_and_kubernetes_events_are_posted(tmp_path):
    with serving(tmp_path) as served:
        one = {"kind": "Deploy", "service": "checkout", "summary": "checkout v2.4.1",
               "ts": "2026-01-01T11:59:00Z", "attributes": {"version": "v2.4.1", "canary": True}}
        answer = httpx.post(f"{served.url}/api/events", json=one, headers=AUTH)
        assert (answer.status_code, answer.json()) == (202, {"accepted": 1, "duplicates": 0})
        bad = [{"kind": "flag", "service": "cart", "summary": "dark mode on"},
               {"kind": "flag", "service": "cart"}]
        answer = httpx.post(f"{served.url}/api/events", json=bad, headers=AUTH)
        assert answer.status_code == 422
        assert answer.json()["error"].startswith("events[1].summary: field required")
        answer = httpx.post(f"{served.url}/api/events", json=KUBE_EVENTS, headers=AUTH)
        assert (answer.status_code, answer.json()["accepted"]) == (202, 3)
        assert served.rows("select ts, kind, service from raw.events where kind <> 'deploy' "
                           "or attributes['reason'] = 'Pulled' order by ts") == KUBE_ROWS
        assert served.rows("select summary, attributes from raw.events where "
                           "attributes['canary'] = 'true'") == [
            ("checkout v2.4.1", {"version": "v2.4.1", "canary": "true"})]
        pulled = served.rows("select attributes['version'], attributes['image'] from raw.events "
                             "where attributes['reason'] = 'Pulled'")
        assert pulled == [("v2.4.1", "registry.local/checkout:v2.4.1")]


def test_ingest_reads_kubectl_and_exporter_event_files(tmp_path):
    kubectl = tmp_path / "events.json"
    kubectl.write_text(json.dumps(KUBE_EVENTS, indent=2))
    lines = tmp_path / "exported.jsonl"
    lines.write_text("\n".join(json.dumps(e) for e in KUBE_EVENTS["items"]) + "\n")
    for path, name in ((kubectl, "a"), (lines, "b")):
        [report] = ingest([path], tmp_path / name)
        assert (report.table, report.format, report.rows) == ("events", "kubernetes", 3)
        with TelemetryStore.open(tmp_path / name).connect() as con:
            assert con.execute("select ts, kind, service from raw.events order by ts").fetchall() \
                == KUBE_ROWS


def test_casebook_event_posts_to_serve_or_writes_the_store(tmp_path):
    runner = CliRunner()
    with serving(tmp_path) as served:
        result = runner.invoke(cli, ["event", "deploy", "checkout", "--summary", "v2 rolled out",
                                     "--version", "v2", "--attr", "commit=3f2a1c9",
                                     "--ts", "2026-01-01T12:00:00Z", "--url", served.url],
                               env={"CASEBOOK_TOKEN": TOKEN})
        assert result.exit_code == 0, result.output
        assert result.output == f"recorded deploy of checkout in {served.url}\n"
        assert served.rows("select ts, kind, service, summary, attributes from raw.events") == [
            (NOON, "deploy", "checkout", "v2 rolled out", {"commit": "3f2a1c9", "version": "v2"})]
        refused = runner.invoke(cli, ["event", "deploy", "checkout", "--summary", "x",
                                      "--url", served.url], env={"CASEBOOK_TOKEN": "wrong"})
        assert refused.exit_code == 2
        assert "answered 401: missing or wrong token" in " ".join(refused.output.split())
    direct = runner.invoke(cli, ["event", "flag", "cart", "--summary", "dark mode on",
                                 "--telemetry", str(tmp_path / "direct")])
    assert direct.exit_code == 0, direct.output
    with TelemetryStore.open(tmp_path / "direct").connect() as con:
        assert con.execute("select kind, service from raw.events").fetchall() == [("flag", "cart")]
    neither = runner.invoke(cli, ["event", "flag", "cart", "--summary", "x"])
    assert neither.exit_code == 2
    assert "--url SERVE_URL (a running casebook serve) or --telemetry PATH" in \
        " ".join(neither.output.split())
    bad_ts = runner.invoke(cli, ["event", "flag", "cart", "--summary", "x", "--ts", "soon",
                                 "--telemetry", str(tmp_path / "direct")])
    assert bad_ts.exit_code == 2
    assert "--ts: input should be a valid datetime" in " ".join(bad_ts.output.split())


def test_a_full_spool_answers_503_with_retry_after(tmp_path, monkeypatch):
    with serving(tmp_path) as served:
        monkeypatch.setattr(served.spool, "flush", lambda: 0)  # the store is not keeping up
        served.spool.max_pending_bytes = 1
        first = {"kind": "deploy", "service": "a", "summary": "one"}
        assert httpx.post(f"{served.url}/api/events", json=first, headers=AUTH).status_code == 202
        answer = httpx.post(f"{served.url}/api/events", json={**first, "summary": "two"},
                            headers=AUTH)
        assert answer.status_code == 503
        assert answer.headers["Retry-After"] == "5"
        assert "still on its way into the store; retry later" in answer.json()["error"]
        otlp = httpx.post(f"{served.url}/v1/traces", json=span_document("00" * 16, "11" * 8),
                          headers=AUTH)
        assert (otlp.status_code, otlp.headers["Retry-After"]) == (503, "5")
        assert otlp.json()["message"].endswith("on its way into the store; retry later")


def test_a_list_of_something_else_is_not_taken_for_events(tmp_path):
    pods = tmp_path / "pods.json"
    pods.write_text(json.dumps({"apiVersion": "v1", "kind": "List",
                                "items": [{"kind": "Pod", "metadata": {"name": "a"}}]}))
    with pytest.raises(IngestError, match=r"pods.json: expected Kubernetes Events \(the output "
                       r"of `kubectl get events -o json`, or one Event per line\), found a "
                       r"List of Pod"):
        ingest([pods], tmp_path / "store")


def test_the_receivers_keep_the_guard_and_headers_of_every_route(tmp_path):
    body = span_document("00" * 16, "11" * 8)
    with serving(tmp_path) as served:
        elsewhere = httpx.post(f"{served.url}/v1/traces", json=body,
                               headers={**AUTH, "Host": "casebook.example"})
        assert elsewhere.status_code == 421
        assert elsewhere.json()["error"].startswith("this service answers to ")
        cross = httpx.post(f"{served.url}/api/v1/write", content=b"",
                           headers={**AUTH, "Origin": "http://casebook.example"})
        assert cross.status_code == 403
        assert cross.json()["error"] == ("cross-site request refused: Origin "
                                         "http://casebook.example is not this service")
        taken = httpx.post(f"{served.url}/v1/traces", json=body, headers=AUTH)
        assert taken.status_code == 200
        assert taken.headers["X-Frame-Options"] == "DENY"
        assert taken.headers["X-Content-Type-Options"] == "nosniff"
        assert httpx.get(f"{served.url}/v1/traces", headers=AUTH).status_code == 405
        assert served.rows("select count(*) from raw.spans") == [(1,)]
