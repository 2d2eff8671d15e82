"""`casebook datasets convert`: public data sets become case directories a backtest can replay."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from casebook.executor.cli import datasets as datasets_cli
from casebook.executor.datasets import DatasetLayoutError, convert
from casebook.executor.datasets.casedir import slice_name, snake_case, write_case
from casebook.executor.datasets.nezha import metric_name, service_of
from casebook.executor.errors import UserError
from casebook.sdk.models import Alert

FIXTURES = Path(__file__).parents[1] / "fixtures" / "datasets"
SHARED_DATA = Path(__file__).parents[2] / ".." / "shared" / "data"


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def rows(path: Path, query: str) -> list[tuple]:
    """Rows of a query over one Parquet file, named `t` in the query."""
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        con.execute(f"create view t as select * from read_parquet('{path}')")
        return con.execute(query).fetchall()


def cli(*args: str):
    app = typer.Typer()
    datasets_cli.register(app)
    return CliRunner().invoke(app, ["datasets", *args])


# --- names -------------------------------------------------------------------------------------


def test_names_follow_the_conventions():
    assert service_of("ts-food-service-f5756978c-k8vqf") == "ts-food-service"
    assert service_of("ts-station-food-service-dc4d75dd-fw6ft") == "ts-station-food-service"
    assert metric_name("CpuUsageRate(%)") == "cpu_usage_rate_percent"
    assert metric_name("PodClientLatencyP90(s)") == "pod_client_latency_p90_seconds"
    assert metric_name("MemoryUsage(Mi)") == "memory_usage_mib"
    assert metric_name("NetworkReceiveBytes") == "network_receive_bytes"
    assert snake_case("Sum") == "sum"
    assert slice_name({"p2p": 1, "bitrate": 2000}) == "bitrate=2000&p2p=1"


# --- Nezha -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nezha_cases(tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("nezha")
    return out, convert("nezha", FIXTURES / "nezha", out)


def test_nezha_writes_one_case_per_fault(nezha_cases):
    out, summary = nezha_cases
    assert summary.cases == [
        "nezha-2023-01-29-01-ts-contacts-service-return",
        "nezha-2023-01-29-02-ts-contacts-service-cpu_contention",
    ]
    for name in summary.cases:
        case = out / name
        assert sorted(p.name for p in case.iterdir()) == [
            "alert.json",
            "case.json",
            "expected.json",
            "telemetry",
        ]
        assert sorted(p.name for p in (case / "telemetry").iterdir()) == [
            "logs.parquet",
            "metrics.parquet",
            "spans.parquet",
        ]


def test_nezha_alert_is_the_front_end_and_names_no_culprit(nezha_cases):
    out, _ = nezha_cases
    case = out / "nezha-2023-01-29-01-ts-contacts-service-return"
    alert = Alert.model_validate(read_json(case / "alert.json"))
    assert alert.name == "FrontendDegraded"
    assert alert.labels == {
        "alertname": "FrontendDegraded",
        "service": "ts-gateway-service",
        "severity": "warning",
        "system": "trainticket",
    }
    assert alert.starts_at.isoformat() == "2023-01-29T08:43:04+00:00"
    assert "contacts" not in (case / "alert.json").read_text()
    assert read_json(case / "expected.json") == {
        "causes": [
            {"entity": {"kind": "service", "name": "ts-contacts-service"}, "category": "code"}
        ]
    }
    cpu = out / "nezha-2023-01-29-02-ts-contacts-service-cpu_contention"
    assert read_json(cpu / "expected.json")["causes"][0]["category"] == "resource"


def test_nezha_case_json_keeps_the_ground_truth_and_what_was_skipped(nezha_cases):
    out, summary = nezha_cases
    meta = read_json(out / "nezha-2023-01-29-01-ts-contacts-service-return" / "case.json")
    assert meta["inject_pod"] == "ts-contacts-service-866bd68c97-xcqfx"
    assert meta["inner_root_cause"] == "c.s.ContactsServiceImpl#31_c.s.ContactsServiceImpl#34"
    assert meta["window"] == {
        "start": "2023-01-29T08:13:04+00:00",
        "end": "2023-01-29T08:47:04+00:00",
    }
    assert meta["fault_free_history_included"] is False
    skipped = "skipped 1 malformed CSV row(s) in rca_data-2023-01-29/log/10_06_log.csv.gz"
    assert skipped in summary.notes
    assert skipped in meta["notes"]


def test_nezha_metrics_are_rows_per_column_named_by_service(nezha_cases):
    out, _ = nezha_cases
    metrics = (
        out / "nezha-2023-01-29-01-ts-contacts-service-return" / "telemetry" / "metrics.parquet"
    )
    found = rows(
        metrics,
        "select distinct service, name, labels['pod'] from t "
        "where name in ('cpu_usage_rate_percent', 'latency_p90_seconds') "
        "order by all",
    )
    assert found == [
        ("frontend", "latency_p90_seconds", None),
        ("ts-contacts-service", "cpu_usage_rate_percent", "ts-contacts-service-866bd68c97-xcqfx"),
        ("ts-gateway-service", "cpu_usage_rate_percent", "ts-gateway-service-6f6cfc45b-h5m2n"),
    ]
    assert rows(metrics, "select min(ts), max(ts) from t") == [
        (datetime(2023, 1, 29, 8, 41, 9), datetime(2023, 1, 29, 8, 46, 9))
    ]
    # NaN samples (no traffic) are absent, not zero
    assert rows(metrics, "select count(*) from t where isnan(value)") == [(0,)]


def test_nezha_logs_and_spans_carry_levels_parents_and_error_status(nezha_cases):
    out, _ = nezha_cases
    telemetry = out / "nezha-2023-01-29-01-ts-contacts-service-return" / "telemetry"
    errors = rows(
        telemetry / "logs.parquet",
        "select service, message, span_id, attributes['logger'] from t where level = 'error'",
    )
    assert errors == [
        (
            "ts-execute-service",
            "e.s.ExecuteServiceImpl#51 TraceID: e88d6957ac0f7a7a98611e843b2ddab7 SpanID: "
            "99f0d2f211c57336 [ticketExecute][getOrderByIdFromOrder][ticket execute error: Order "
            "Status Wrong][orderId: e4e9bbd8-997a-4b51-b580-8efd4c107e76]",
            "99f0d2f211c57336",
            "e.s.ExecuteServiceImpl#51",
        )
    ]
    spans = telemetry / "spans.parquet"
    assert rows(spans, "select span_id, status from t where status = 'error'") == [
        ("99f0d2f211c57336", "error")
    ]
    assert rows(
        spans, "select service, name, round(duration_ms, 3) from t where parent_span_id is null"
    ) == [("ts-gateway-service", "/*", 44.442)]
    assert rows(
        spans,
        "select count(*) from t a where parent_span_id is not null and not exists "
        "(select 1 from t b where b.span_id = a.parent_span_id)",
    ) == [(0,)]


def test_nezha_fault_free_history_only_when_it_precedes_the_fault(nezha_cases):
    out, _ = nezha_cases
    early = out / "nezha-2023-01-29-01-ts-contacts-service-return" / "telemetry"
    late = out / "nezha-2023-01-29-02-ts-contacts-service-cpu_contention"
    assert rows(
        early / "spans.parquet", "select count(*) from t where start_ts >= '2023-01-29 08:48:00'"
    ) == [(0,)]
    assert rows(
        late / "telemetry" / "spans.parquet",
        "select count(*) from t where start_ts < '2023-01-29 09:00:00'",
    ) == [(12,)]
    assert read_json(late / "case.json")["fault_free_history_included"] is True


# --- PetShop -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def petshop_cases(tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("petshop")
    return out, convert("petshop", FIXTURES / "petshop", out)


def test_petshop_alert_target_and_root_cause(petshop_cases):
    out, summary = petshop_cases
    assert summary.cases == [
        "petshop-low_traffic-test-issue_0",
        "petshop-temporal_traffic1-train-issue_0",
    ]
    case = out / "petshop-low_traffic-test-issue_0"
    alert = Alert.model_validate(read_json(case / "alert.json"))
    assert alert.name == "PetShopLatencyHigh"
    assert alert.labels["service"] == "PetSite" and alert.labels["metric"] == "latency"
    assert alert.starts_at.isoformat() == "2023-04-18T22:40:05+00:00"
    assert "petInfo" not in (case / "alert.json").read_text()
    assert read_json(case / "expected.json") == {
        "causes": [{"entity": {"kind": "service", "name": "petInfo_AWS::DynamoDB::Table"}}]
    }
    meta = read_json(case / "case.json")
    assert (meta["scenario"], meta["metric"], meta["split"]) == ("low_traffic", "latency", "test")


def test_petshop_metrics_and_calls(petshop_cases):
    out, _ = petshop_cases
    telemetry = out / "petshop-low_traffic-test-issue_0" / "telemetry"
    names = rows(telemetry / "metrics.parquet", "select distinct name from t order by 1")
    assert [n for (n,) in names] == [
        "availability_average",
        "latency_average",
        "latency_p50",
        "latency_p90",
        "latency_p95",
        "latency_p99",
        "requests_sum",
    ]
    calls = rows(telemetry / "calls.parquet", "select caller, callee from t order by all")
    assert calls == [
        ("PetSearch_AWS::ECS::Fargate", "S3_AWS::S3"),
        ("PetSearch_AWS::ECS::Fargate", "petInfo_AWS::DynamoDB::Table"),
        ("PetSite", "PetSearch_AWS::ECS::Fargate"),
    ]


def test_petshop_baseline_is_moved_to_end_one_sample_before_the_issue(petshop_cases):
    out, _ = petshop_cases
    case = out / "petshop-low_traffic-test-issue_0"
    stamps = [
        ts
        for (ts,) in rows(
            case / "telemetry" / "metrics.parquet", "select distinct ts from t order by 1"
        )
    ]
    issue_first = datetime(2023, 4, 18, 22, 32)
    assert stamps[:4] == [issue_first - timedelta(minutes=5 * k) for k in (4, 3, 2, 1)]
    assert len(stamps) == 9
    baseline = read_json(case / "case.json")["baseline"]
    assert baseline["included"] is True
    assert baseline["range"]["last"] == "2023-04-18T22:27:00+00:00"
    assert baseline["shifted_by_seconds"] == int(
        (datetime(2023, 4, 18, 22, 27) - datetime(2023, 8, 23, 10, 0)).total_seconds()
    )
    temporal = read_json(out / "petshop-temporal_traffic1-train-issue_0" / "case.json")
    assert temporal["baseline"] == {
        "included": False,
        "reason": "temporal_traffic1 has no noissue/metrics.csv in this copy",
    }


# --- RS ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rs_cases(tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("rs")
    return out, convert("rs", FIXTURES / "rs", out)


def test_rs_one_cause_per_slice_sorted_by_dimension(rs_cases):
    out, summary = rs_cases
    assert summary.cases == [
        "rs-case1_0821_1741394221",
        "rs-case58_0218_1272997391",
        "rs-case69_0320_2276840736",
    ]
    causes = {
        name: [c["entity"]["name"] for c in read_json(out / name / "expected.json")["causes"]]
        for name in summary.cases
    }
    assert causes == {
        "rs-case1_0821_1741394221": ["bitrate=2000&p2p=1"],
        "rs-case58_0218_1272997391": ["bitrate=2500&cdn=5&isp=联通"],
        "rs-case69_0320_2276840736": ["bitrate=500&cdn=5&p2p=0", "bitrate=2500&cdn=5&p2p=0"],
    }


def test_rs_kpi_table_and_alert(rs_cases):
    out, _ = rs_cases
    case = out / "rs-case1_0821_1741394221"
    schema = pq.read_schema(case / "telemetry" / "kpi.parquet")
    assert [(f.name, str(f.type)) for f in schema] == [
        ("ts", "timestamp[us]"),
        ("cdn", "string"),
        ("bitrate", "string"),
        ("device", "string"),
        ("p2p", "string"),
        ("value", "double"),
        ("cnt", "double"),
    ]
    alert = Alert.model_validate(read_json(case / "alert.json"))
    assert alert.name == "KpiTotalAnomaly"
    assert alert.labels == {
        "alertname": "KpiTotalAnomaly",
        "kpi": "(cnt - value) / cnt",
        "dataset": "rs",
        "severity": "warning",
    }
    assert alert.starts_at.isoformat() == "2019-08-21T14:30:00+00:00"
    per_minute = rows(
        case / "telemetry" / "kpi.parquet", "select ts, count(*) from t group by ts order by ts"
    )
    assert per_minute == [
        (datetime(2019, 8, 21, 14, 28), 4),
        (datetime(2019, 8, 21, 14, 29), 4),
        (datetime(2019, 8, 21, 14, 30), 4),
    ]


# --- command line and errors -------------------------------------------------------------------


def test_cli_reports_cases_and_rows(tmp_path):
    result = cli("convert", "rs", str(FIXTURES / "rs"), str(tmp_path / "cases"))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"Wrote 3 rs cases (36 telemetry rows) to {tmp_path / 'cases'}",
        "  kpi: 36 rows",
    ]


def test_cli_names_the_missing_file_and_the_layout(tmp_path):
    result = cli("convert", "rs", str(FIXTURES / "petshop"), str(tmp_path / "cases"))
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert (
        f"error: {FIXTURES / 'petshop' / 'anomaly.yaml'} not found: expected the list of "
        "labelled anomalies. Expected the RS layout: SRC/anomaly.yaml" in message
    )


def test_layout_errors_name_what_is_missing(tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"no rca_data-<date>/ folder in .*Nezha"):
        convert("nezha", tmp_path, tmp_path / "out")
    with pytest.raises(DatasetLayoutError, match=r"no <scenario>/graph.csv under"):
        convert("petshop", tmp_path, tmp_path / "out")
    with pytest.raises(DatasetLayoutError, match=r"is not a folder"):
        convert("rs", tmp_path / "absent", tmp_path / "out")


def test_converting_again_replaces_cases_but_never_other_folders(tmp_path):
    convert("rs", FIXTURES / "rs", tmp_path)
    stale = tmp_path / "rs-case1_0821_1741394221" / "telemetry" / "stale.parquet"
    stale.write_bytes(b"old")
    convert("rs", FIXTURES / "rs", tmp_path)
    assert not stale.exists()
    other = tmp_path / "other"
    (other / "keep.txt").parent.mkdir()
    (other / "keep.txt").write_text("mine")
    from casebook.executor.datasets.rs import cases

    case = next(iter(cases(FIXTURES / "rs").cases))
    case.name = "other"
    with pytest.raises(UserError, match="exists and is not a case directory"):
        write_case(tmp_path, case)
    assert (other / "keep.txt").read_text() == "mine"


# --- the real data sets ------------------------------------------------------------------------

real_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"{SHARED_DATA} is absent")


def first_cases(dataset: str, folder: str, count: int, out: Path) -> list[Path]:
    from importlib import import_module

    module = import_module(f"casebook.executor.datasets.{dataset}")
    conversion = module.cases(SHARED_DATA / folder)
    return [write_case(out, case) for case in itertools.islice(conversion.cases, count)]


@pytest.mark.data
@real_data
def test_real_nezha_cases(tmp_path):
    first, second = first_cases("nezha", "nezha-trainticket", 2, tmp_path)
    assert first.name == "nezha-2023-01-29-01-ts-contacts-service-return"
    assert read_json(second / "alert.json")["starts_at"] == "2023-01-29T08:52:06Z"
    counts = read_json(second / "case.json")["rows"]
    assert min(counts["metrics"], counts["logs"], counts["spans"]) > 10_000
    assert (
        rows(second / "telemetry" / "spans.parquet", "select count(distinct service) from t")[0][0]
        > 20
    )
    services = rows(
        second / "telemetry" / "metrics.parquet", "select count(distinct service) from t"
    )[0][0]
    assert services == 47  # 46 pods and the front end


@pytest.mark.data
@real_data
def test_real_petshop_and_rs_cases(tmp_path):
    petshop = first_cases("petshop", "petshop", 1, tmp_path)[0]
    meta = read_json(petshop / "case.json")
    assert meta["baseline"]["included"] is True and meta["rows"]["metrics"] > 100_000
    rs = first_cases("rs", "rs", 2, tmp_path)
    assert [read_json(p / "expected.json")["causes"][0]["entity"]["name"] for p in rs] == [
        "bitrate=2000&p2p=1",
        "bitrate=1200&p2p=1",
    ]


def test_nezha_skips_call_graph_files_among_the_metrics_with_a_note(tmp_path):
    import gzip
    import shutil

    src = tmp_path / "src"
    shutil.copytree(FIXTURES / "nezha", src)
    with gzip.open(src / "rca_data-2023-01-29" / "metric" / "dependency.csv.gz", "wt") as f:
        f.write("Source,Target,Weight\nfrontend,cartservice,3\n")
    summary = convert("nezha", src, tmp_path / "out")
    assert len(summary.cases) == 2
    assert ("skipped dependency.csv.gz: no PodName or ServiceName column, not a pod's metrics"
            in summary.notes)


def test_nezha_names_the_system_by_its_folder_and_says_what_a_window_lacks(tmp_path):
    import shutil

    src = tmp_path / "nezha-onlineboutique"
    shutil.copytree(FIXTURES / "nezha", src)
    day = src / "rca_data-2023-01-29"
    (day / "log" / "13_32_log.csv.gz").unlink()
    (day / "trace" / "13_32_trace.csv.gz").unlink()  # the minutes after the second fault
    (src / "ABSENT.txt").write_text(
        "Files the snapshot did not hold.\nrca_data-2023-01-29/log/13_32_log.csv\n"
        "rca_data-2023-01-29/trace/13_32_trace.csv\n"
    )
    summary = convert("nezha", src, tmp_path / "out")
    assert "2 file(s) of the source are absent (ABSENT.txt); cases use what is there" in (
        summary.notes
    )
    first, second = (tmp_path / "out" / name for name in summary.cases)
    alert = read_json(first / "alert.json")
    assert alert["labels"]["system"] == "onlineboutique"
    assert alert["annotations"]["summary"] == (
        "OnlineBoutique requests through ts-gateway-service are degraded"
    )
    meta = read_json(second / "case.json")
    assert (meta["dataset"], meta["scenario"]) == ("nezha-onlineboutique",
                                                   "onlineboutique-2023-01-29")
    lacking = "no spans after the injection in the source (its files for those minutes are absent)"
    assert lacking in meta["notes"]
    assert lacking not in read_json(first / "case.json")["notes"]
