import gzip
import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from casebook.executor.cli import app
from casebook.executor.ingest import IngestError, IngestReport, ingest
from casebook.executor.telemetry_store import TelemetryStore
from casebook.sdk.models import TimeWindow

NOON = datetime(2026, 1, 1, 12, 0)
NOON_NANOS = "1767268800000000000"
LOGS_CSV = (
    "ts,service,level,message,pod\n"
    '2026-01-01T12:00:00Z,api,ERROR,"payment failed, retrying",api-1\n'
    "1767268860,api,info,ok,api-2\n"
)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def rows(store_path: Path, query: str) -> list[tuple]:
    with TelemetryStore.open(store_path).connect() as con:
        return con.execute(query).fetchall()


def attribute(key: str, value: dict) -> dict:
    return {"key": key, "value": value}


def resource(service: str) -> dict:
    return {"attributes": [attribute("service.name", {"stringValue": service}),
                           attribute("k8s.pod.name", {"stringValue": f"{service}-1"}),
                           attribute("telemetry.sdk.name", {"stringValue": "opentelemetry"})]}  # fmt: skip


OTLP_LOGS = {"resourceLogs": [{"resource": resource("checkout"), "scopeLogs": [{"logRecords": [
    {"timeUnixNano": NOON_NANOS, "severityText": "ERROR", "body": {"stringValue": "card declined"},
     "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "eee19b7ec3c1b174",
     "attributes": [attribute("retries", {"intValue": "3"}),
                    attribute("tags", {"arrayValue": {"values": [{"stringValue": "a"},
                                                                {"boolValue": True}]}})]},
    {"observedTimeUnixNano": "1767268801000000000", "severityNumber": 13,
     "body": {"stringValue": "slow"}},
    {"timeUnixNano": "1767268802000000000", "severityNumber": "SEVERITY_NUMBER_FATAL",
     "body": {"kvlistValue": {"values": [attribute("code", {"doubleValue": 1.5})]}}},
]}]}]}  # fmt: skip
OTLP_METRICS = {"resourceMetrics": [{"resource": resource("api"), "scopeMetrics": [{"metrics": [
    {"name": "http_requests_total", "sum": {"isMonotonic": True, "dataPoints": [
        {"timeUnixNano": NOON_NANOS, "asInt": "42",
         "attributes": [attribute("route", {"stringValue": "/pay"})]}]}},
    {"name": "cpu_usage_ratio", "gauge": {"dataPoints": [
        {"timeUnixNano": NOON_NANOS, "asDouble": 0.75}]}},
    {"name": "latency_ms", "histogram": {"dataPoints": [
        {"timeUnixNano": NOON_NANOS, "count": "10", "sum": 1234.5,
         "bucketCounts": ["4", "6"], "explicitBounds": [100]}]}},
]}]}]}  # fmt: skip
OTLP_SPANS = {"resourceSpans": [{"resource": resource("checkout"), "scopeSpans": [{"spans": [
    {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "aaaaaaaaaaaaaaaa",
     "parentSpanId": "", "name": "POST /pay", "kind": 2,
     "startTimeUnixNano": NOON_NANOS, "endTimeUnixNano": "1767268800250000000",
     "status": {"code": 2, "message": "card declined"},
     "attributes": [attribute("http.status_code", {"intValue": 500})]},
    {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "bbbbbbbbbbbbbbbb",
     "parentSpanId": "aaaaaaaaaaaaaaaa", "name": "SELECT", "kind": "SPAN_KIND_CLIENT",
     "startTimeUnixNano": NOON_NANOS, "endTimeUnixNano": "1767268800010000000",
     "status": {"code": "STATUS_CODE_OK"}},
]}]}]}  # fmt: skip


def test_csv_goes_to_the_table_named_after_the_file(tmp_path):
    reports = ingest([write(tmp_path / "logs.csv", LOGS_CSV)], tmp_path / "tel")
    assert reports == [
        IngestReport(
            str(tmp_path / "logs.csv"), "logs", "csv", 2, NOON, NOON + timedelta(minutes=1)
        )
    ]
    assert rows(
        tmp_path / "tel", "select ts, level, message, attributes from raw.logs order by ts"
    ) == [
        (NOON, "error", "payment failed, retrying", {"pod": "api-1"}),
        (NOON + timedelta(minutes=1), "info", "ok", {"pod": "api-2"}),
    ]


def test_gzip_csv_and_table_name_without_extensions(tmp_path):
    path = tmp_path / "logs.csv.gz"
    path.write_bytes(gzip.compress(LOGS_CSV.encode()))
    [report] = ingest([path], tmp_path / "tel")
    assert (report.table, report.rows) == ("logs", 2)


def test_byte_order_marks_are_ignored(tmp_path):
    bom = "\ufeff"
    csv = write(tmp_path / "logs.csv", bom + LOGS_CSV + "soon,api,info,x,p\n")
    with pytest.raises(IngestError, match="logs.csv line 4: column ts: expected a timestamp"):
        ingest([csv], tmp_path / "tel")
    otlp = write(tmp_path / "otel.json", bom + json.dumps(OTLP_SPANS))
    [report] = ingest([otlp], tmp_path / "tel")
    assert report.table == "spans"


def test_tsv(tmp_path):
    path = write(
        tmp_path / "events.tsv",
        "ts\tkind\tservice\tsummary\n2026-01-01 12:00:00\tdeploy\tapi\tv2, canary\n",
    )
    ingest([path], tmp_path / "tel")
    assert rows(tmp_path / "tel", "select kind, summary from raw.events") == [
        ("deploy", "v2, canary")
    ]


def test_parquet(tmp_path):
    path = tmp_path / "metrics.parquet"
    pq.write_table(pa.table({"ts": [NOON], "name": ["cpu_usage_ratio"], "service": ["api"],
                             "value": [0.5], "labels": [{"pod": "api-1"}]}), path)  # fmt: skip
    [report] = ingest([path], tmp_path / "tel")
    assert (report.table, report.format, report.rows) == ("metrics", "parquet", 1)
    assert rows(tmp_path / "tel", "select value, labels from raw.metrics") == [
        (0.5, {"pod": "api-1"})
    ]


def test_json_lines_with_blank_lines_objects_and_epoch_ms(tmp_path):
    lines = [
        {"ts": 1767268800000, "kind": "deploy", "service": "api", "summary": "v2",
         "attributes": {"version": "2", "replicas": 3}},
        {"ts": "2026-01-01T11:59:00Z", "kind": "config", "service": "api", "summary": "flag",
         "author": "sam"},
    ]  # fmt: skip
    path = write(
        tmp_path / "events.jsonl", json.dumps(lines[0]) + "\n\n" + json.dumps(lines[1]) + "\n"
    )
    [report] = ingest([path], tmp_path / "tel")
    assert (report.table, report.format, report.rows) == ("events", "jsonl", 2)
    assert rows(tmp_path / "tel", "select ts, kind, attributes from raw.events order by ts") == [
        (NOON - timedelta(minutes=1), "config", {"author": "sam"}),
        (NOON, "deploy", {"version": "2", "replicas": "3"}),
    ]


def test_json_lines_whose_values_change_type_still_load(tmp_path):
    text = '{"ts": 1767268800, "account": 17}\n{"ts": 1767268801, "account": "a-17"}\n'
    path = tmp_path / "accounts.ndjson.gz"
    path.write_bytes(gzip.compress(text.encode()))
    ingest([path], tmp_path / "tel")
    assert rows(tmp_path / "tel", "select account from raw.accounts order by ts") == [
        ("17",),
        ("a-17",),
    ]


def test_otlp_logs(tmp_path):
    path = write(tmp_path / "export.json", json.dumps(OTLP_LOGS) + "\n")
    [report] = ingest([path], tmp_path / "tel")
    assert (report.table, report.format, report.rows) == ("logs", "otlp", 3)
    assert rows(tmp_path / "tel", "select * from raw.logs order by ts") == [
        (NOON, "checkout", "error", "card declined", "5b8efff798038103d269b633813fc60c",
         "eee19b7ec3c1b174", {"k8s.pod.name": "checkout-1", "retries": "3", "tags": '["a", true]'}),
        (NOON + timedelta(seconds=1), "checkout", "warn", "slow", None, None,
         {"k8s.pod.name": "checkout-1"}),
        (NOON + timedelta(seconds=2), "checkout", "fatal", '{"code": 1.5}', None, None,
         {"k8s.pod.name": "checkout-1"}),
    ]  # fmt: skip


def test_otlp_metrics(tmp_path):
    path = write(tmp_path / "otel.jsonl", json.dumps(OTLP_METRICS) + "\n")
    [report] = ingest([path], tmp_path / "tel")
    assert (report.table, report.rows) == ("metrics", 4)
    pod = {"k8s.pod.name": "api-1"}
    assert rows(
        tmp_path / "tel", "select name, service, value, labels from raw.metrics order by name"
    ) == [
        ("cpu_usage_ratio", "api", 0.75, pod),
        ("http_requests_total", "api", 42.0, {**pod, "route": "/pay"}),
        ("latency_ms_count", "api", 10.0, pod),
        ("latency_ms_sum", "api", 1234.5, pod),
    ]


def test_otlp_traces(tmp_path):
    path = write(tmp_path / "traces.json", json.dumps(OTLP_SPANS) + "\n")
    [report] = ingest([path], tmp_path / "tel")
    assert (report.table, report.rows) == ("spans", 2)
    assert rows(tmp_path / "tel", "select * from raw.spans order by duration_ms desc") == [
        ("5b8efff798038103d269b633813fc60c", "aaaaaaaaaaaaaaaa", None, "checkout", "POST /pay",
         NOON, 250.0, "error", {"k8s.pod.name": "checkout-1", "http.status_code": "500",
                                "otel.status_description": "card declined", "span.kind": "server"}),
        ("5b8efff798038103d269b633813fc60c", "bbbbbbbbbbbbbbbb", "aaaaaaaaaaaaaaaa", "checkout",
         "SELECT", NOON, 10.0, "ok", {"k8s.pod.name": "checkout-1", "span.kind": "client"}),
    ]  # fmt: skip


def test_pretty_printed_otlp_document_with_every_signal(tmp_path):
    document = {**OTLP_LOGS, **OTLP_METRICS, **OTLP_SPANS}
    path = write(tmp_path / "anything.txt.json", json.dumps(document, indent=2))
    reports = ingest([path], tmp_path / "tel")
    assert sorted((r.table, r.rows) for r in reports) == [("logs", 3), ("metrics", 4), ("spans", 2)]


def test_the_otlp_example_in_the_docs(tmp_path):
    docs = Path(__file__).parents[2] / "docs" / "telemetry.md"
    example = re.search(r"```json\n(.*?)```", docs.read_text(), re.S).group(1)
    ingest([write(tmp_path / "otel.jsonl", example)], tmp_path / "tel")
    assert rows(tmp_path / "tel", "select * from raw.logs") == [
        (NOON, "checkout", "error", "card declined", "5b8efff798038103d269b633813fc60c",
         "eee19b7ec3c1b174", {"k8s.pod.name": "checkout-1", "retries": "3"}),
    ]  # fmt: skip
    assert rows(tmp_path / "tel", "select name, duration_ms, status, attributes from raw.spans") == [
        ("POST /pay", 250.0, "error",
         {"otel.status_description": "card declined", "span.kind": "server"}),
    ]  # fmt: skip


def test_otlp_is_recognised_by_content_not_name(tmp_path):
    path = tmp_path / "requests.json.gz"
    path.write_bytes(gzip.compress(json.dumps(OTLP_SPANS).encode()))
    [report] = ingest([path], tmp_path / "tel")
    assert report.table == "spans"
    assert TelemetryStore.open(tmp_path / "tel").tables() == ["spans"]


def test_both_store_layouts_hold_ingested_files(tmp_path):
    csv = write(tmp_path / "logs.csv", LOGS_CSV)
    otlp = write(tmp_path / "otel.json", json.dumps(OTLP_SPANS))
    for name in ("tel", "tel.duckdb"):
        ingest([csv, otlp], tmp_path / name)
        assert TelemetryStore.open(tmp_path / name).row_counts() == {"logs": 2, "spans": 2}


def test_ingested_store_gives_window_scoped_telemetry(tmp_path):
    ingest([write(tmp_path / "logs.csv", LOGS_CSV)], tmp_path / "tel")
    window = TimeWindow(start=NOON + timedelta(seconds=30), end=NOON + timedelta(minutes=5))
    telemetry = TelemetryStore.open(tmp_path / "tel").source().open(window)
    assert telemetry.sql("select message from logs").column("message") == ["ok"]


def test_table_option_overrides_the_file_name(tmp_path):
    path = write(tmp_path / "export-2026-01-01.csv", LOGS_CSV)
    [report] = ingest([path], tmp_path / "tel", table="Logs")
    assert report.table == "logs"


def test_file_name_that_is_not_a_table_name_asks_for_table(tmp_path):
    path = write(tmp_path / "export-2026.csv", LOGS_CSV)
    with pytest.raises(IngestError) as error:
        ingest([path], tmp_path / "tel")
    assert str(error.value) == (
        f"{path}: table name 'export-2026' is not a plain SQL name (lower-case letters, digits "
        "and _, not starting with a digit); use 'export_2026' (the table is named after the "
        "file); rename the file or pass --table"
    )


def test_table_option_does_not_apply_to_otlp(tmp_path):
    path = write(tmp_path / "otel.json", json.dumps(OTLP_SPANS))
    with pytest.raises(IngestError, match="OTLP/JSON goes to logs, metrics and spans by content"):
        ingest([path], tmp_path / "tel", table="traces")


def test_a_directory_stands_for_its_files(tmp_path):
    folder = tmp_path / "telemetry"
    folder.mkdir()
    write(folder / "logs.csv", LOGS_CSV)
    write(folder / "otel.json", json.dumps(OTLP_SPANS))
    write(folder / "README.md", "not telemetry")
    reports = ingest([folder], tmp_path / "tel")
    assert [(Path(r.file).name, r.table) for r in reports] == [
        ("logs.csv", "logs"),
        ("otel.json", "spans"),
    ]


def test_csv_with_a_wrong_field_count_names_the_line(tmp_path):
    path = write(tmp_path / "logs.csv", LOGS_CSV + "2026-01-01T12:02:00Z,api,info,a,b,c\n")
    with pytest.raises(IngestError) as error:
        ingest([path], tmp_path / "tel")
    assert str(error.value) == (
        f"{path} line 4: expected 5 fields as in the header (ts, service, level, message, pod), "
        "found 6; quote values that contain a ','"
    )


def test_malformed_json_line_is_named(tmp_path):
    path = write(tmp_path / "events.jsonl", '{"ts": 1}\n\n{"ts": 2,}\n')
    with pytest.raises(IngestError) as error:
        ingest([path], tmp_path / "tel")
    assert str(error.value) == (
        f"{path} line 3: expected one JSON object per line, found malformed JSON "
        "(Expecting property name enclosed in double quotes at column 10)"
    )


def test_malformed_otlp_is_named(tmp_path):
    path = write(tmp_path / "otel.json", json.dumps(OTLP_SPANS) + '\n{"resourceLogs": [\n')
    with pytest.raises(
        IngestError, match=r"otel.json line 3: expected OTLP/JSON \(one object per line"
    ):
        ingest([path], tmp_path / "tel")


def test_missing_required_column_names_file_and_column(tmp_path):
    path = write(tmp_path / "logs.csv", "ts,service,message\n2026-01-01T12:00:00Z,api,boom\n")
    with pytest.raises(IngestError) as error:
        ingest([path], tmp_path / "tel")
    assert str(error.value) == (
        f"{path}: missing column level (lower-case level: debug, info, warn, error, fatal); "
        "found columns: ts, service, message; add it or rename the column that holds it"
    )


def test_unparseable_timestamp_names_the_line_it_starts_on(tmp_path):
    text = LOGS_CSV + 'soon,api,info,"two\nlines",api-3\n'
    path = write(tmp_path / "logs.csv", text)
    with pytest.raises(IngestError) as error:
        ingest([path], tmp_path / "tel")
    assert str(error.value) == (
        f"{path} line 4: column ts: expected a timestamp (ISO 8601 text, or epoch "
        "seconds/ms/us/ns), found 'soon'"
    )


def test_a_broken_file_writes_nothing_from_any_file_in_the_call(tmp_path):
    store = tmp_path / "tel"
    ingest([write(tmp_path / "logs.csv", LOGS_CSV)], store)
    before = sorted(store.rglob("*"))
    good = write(tmp_path / "otel.json", json.dumps(OTLP_SPANS))
    broken = write(tmp_path / "events.jsonl", '{"ts": 1, "kind": "deploy"\n')
    with pytest.raises(IngestError, match="events.jsonl line 1: expected one JSON object per line"):
        ingest([good, broken], store)
    assert sorted(store.rglob("*")) == before
    assert TelemetryStore.open(store).row_counts() == {"logs": 2}


def test_a_failed_first_ingest_creates_no_store(tmp_path):
    broken = write(tmp_path / "logs.csv", "ts,service\n1,a\n")
    with pytest.raises(IngestError):
        ingest([broken], tmp_path / "tel.duckdb")
    assert not (tmp_path / "tel.duckdb").exists()


def test_missing_input_file(tmp_path):
    with pytest.raises(IngestError, match="no such file: nope.csv"):
        ingest(["nope.csv"], tmp_path / "tel")


def test_cli_prints_what_it_ingested(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "logs.csv", LOGS_CSV)
    result = CliRunner().invoke(app, ["ingest", "logs.csv", "--telemetry", "tel"])
    assert result.exit_code == 0, result.output
    assert "ingested from . into tel" in result.output
    row = next(line for line in result.output.splitlines() if "logs.csv" in line)
    assert row.split("│")[1:6] == [
        " logs.csv ",
        " logs  ",
        "    2 ",
        " 2026-01-01 12:00:00 ",
        " 2026-01-01 12:01:00 ",
    ]
    assert TelemetryStore.open(tmp_path / "tel").row_counts() == {"logs": 2}


def test_cli_reads_the_store_from_the_environment(tmp_path):
    otlp = write(tmp_path / "otel.json", json.dumps(OTLP_SPANS))
    store = tmp_path / "env.duckdb"
    result = CliRunner().invoke(app, ["ingest", str(otlp)], env={"CASEBOOK_TELEMETRY": str(store)})
    assert result.exit_code == 0, result.output
    assert "spans" in result.output
    assert TelemetryStore.open(store).row_counts() == {"spans": 2}


def test_cli_reports_a_broken_file_in_one_line(tmp_path):
    path = write(tmp_path / "events.jsonl", "not json\n")
    result = CliRunner().invoke(
        app, ["ingest", str(path), "--telemetry", str(tmp_path / "tel"), "--table", "events"]
    )
    assert result.exit_code == 2
    assert "error: " in result.output
    assert "line 1: expected one JSON object per line" in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not (tmp_path / "tel").exists()
