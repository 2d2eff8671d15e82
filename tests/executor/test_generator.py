"""`casebook datasets generate`: generated incidents are deterministic, ingestible, follow
docs/telemetry.md, and hold what each class promises (the cause in the telemetry, the fault
before the alert, innocent changes beside it)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from casebook.executor.backtest import CaseResult, summarize
from casebook.executor.cli import datasets as datasets_cli
from casebook.executor.datasets.generator import CLASSES, generate
from casebook.executor.ingest import ingest
from casebook.executor.telemetry_store import TelemetryStore
from casebook.sdk.models import CATEGORIES
from casebook.sdk.schema import CORE_TABLES

# one seed per class a test below relies on: seed % 13 picks the class
SEEDS = {"change_regression": 1001, "network_delay": 1004, "memory_leak": 1005,
         "cert_expiry": 1007, "noisy_neighbour": 1008}


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("generated")
    return {klass: generate(out, seed=seed, cases=1)[0] for klass, seed in SEEDS.items()}


def read(case: Path, name: str) -> dict:
    return json.loads((case / name).read_text(encoding="utf-8"))


def query(case: Path, table: str, sql: str) -> list[tuple]:
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        con.execute(f"create view t as select * from read_parquet('{case}/telemetry/{table}.parquet')")
        return con.execute(sql).fetchall()


def test_the_seed_picks_the_class_and_every_class_appears_in_13_seeds():
    assert {CLASSES[s % len(CLASSES)] for s in range(1000, 1013)} == set(CLASSES)
    assert {CLASSES[s % len(CLASSES)] for s in range(5000, 5013)} == set(CLASSES)


def test_expected_names_a_cause_with_a_known_category_and_the_class(cases):
    for klass, case in cases.items():
        expected = read(case, "expected.json")
        assert expected["class"] == klass
        [cause] = expected["causes"]
        assert cause["entity"]["kind"] == "service"
        assert cause["category"] in CATEGORIES
    assert read(cases["memory_leak"], "expected.json")["causes"][0]["category"] == "resource"
    assert read(cases["change_regression"], "expected.json")["causes"][0]["category"] in (
        "deploy", "flag", "config")


def test_every_case_ingests_with_the_documented_schema(cases, tmp_path):
    for klass, case in cases.items():
        files = sorted((case / "telemetry").iterdir())
        assert [f.name for f in files] == ["accounts.parquet", "events.parquet", "logs.parquet",
                                           "metrics.parquet", "requests.parquet",
                                           "spans.parquet"]
        store = TelemetryStore.open(tmp_path / klass, create=True)
        ingest(files, store)
        counts = store.row_counts()
        written = read(case, "case.json")["rows"]
        assert counts == written
        for table in CORE_TABLES:
            assert pq.read_schema(case / "telemetry" / f"{table}.parquet").names == list(
                CORE_TABLES[table].column_names)


def test_the_cause_exists_in_the_telemetry_and_the_alert_names_a_service_that_does(cases):
    for case in cases.values():
        cause = read(case, "expected.json")["causes"][0]["entity"]["name"]
        alerting = read(case, "alert.json")["labels"]["service"]
        services = {s for (s,) in query(case, "metrics", "select distinct service from t")}
        assert cause in services
        assert alerting in services


def test_the_fault_starts_before_the_alert_and_data_covers_both(cases):
    for case in cases.values():
        about = read(case, "case.json")
        assert about["onset"] < about["alert_at"]
        [(first, last)] = query(case, "metrics", "select min(ts), max(ts) from t")
        assert first.isoformat() < about["onset"][:19]
        assert last.isoformat() > about["alert_at"][:19]


def test_innocent_changes_and_an_error_blip_surround_the_fault(cases):
    for case in cases.values():
        cause = read(case, "expected.json")["causes"][0]["entity"]["name"]
        about = read(case, "case.json")
        assert about["innocent_changes"] >= 2 and about["blips"] >= 1
        others = query(case, "events", "select count(*) from t where service <> ? and kind in "
                       "('deploy', 'config', 'flag', 'scale')".replace("?", f"'{cause}'"))
        assert others[0][0] >= 1


def test_a_change_regression_is_preceded_by_its_change(cases):
    case = cases["change_regression"]
    cause = read(case, "expected.json")["causes"][0]
    about = read(case, "case.json")
    [(ts,)] = query(case, "events", f"select min(ts) from t where service = '{cause['entity']['name']}'"
                    f" and kind = '{cause['category']}'")
    assert ts.isoformat() <= about["onset"][:26]


def test_a_memory_leak_ends_in_oom_kills_with_the_documented_signals(cases):
    case = cases["memory_leak"]
    service = read(case, "expected.json")["causes"][0]["entity"]["name"]
    [(restarts,)] = query(case, "metrics", "select max(value) from t where name = "
                          f"'kube_pod_container_status_restarts_total' and service = '{service}'")
    assert restarts >= 1
    [(reason,)] = query(case, "metrics", "select any_value(labels['reason']) from t where name = "
                        "'kube_pod_container_status_last_terminated_reason' and service = "
                        f"'{service}'")
    assert reason == "OOMKilled"
    [(high,)] = query(case, "metrics", "select max(value) from t where name = "
                      f"'memory_usage_ratio' and service = '{service}'")
    assert high > 0.95


def test_a_noisy_neighbour_shares_a_node_with_its_victim(cases):
    case = cases["noisy_neighbour"]
    job = read(case, "expected.json")["causes"][0]["entity"]["name"]
    victim = read(case, "case.json")["victim"]
    shared = query(case, "metrics", f"""
        select count(*) from (select distinct labels['node'] as node from t
                              where name = 'kube_pod_info' and service = '{job}') j
        join (select distinct labels['node'] as node from t
              where name = 'kube_pod_info' and service = '{victim}') v using (node)""")
    assert shared[0][0] >= 1
    [(kind,)] = query(case, "metrics", "select any_value(labels['created_by_kind']) from t where "
                      f"name = 'kube_pod_info' and service = '{job}'")
    assert kind == "Job"


def test_a_delayed_service_has_a_sequential_sibling_that_starts_late(cases):
    case = cases["network_delay"]
    service = read(case, "expected.json")["causes"][0]["entity"]["name"]
    onset = read(case, "case.json")["onset"][:19]
    delay = read(case, "case.json")["delay_ms"]
    offsets = dict(query(case, "spans", f"""
        select a.start_ts >= timestamp '{onset}', median(epoch_ms(b.start_ts) - epoch_ms(a.start_ts))
        from t a join t b on b.parent_span_id = a.parent_span_id
        where a.attributes['peer.service'] = '{service}' and b.attributes['span.kind'] = 'client'
          and epoch_ms(b.start_ts) >= epoch_ms(a.start_ts) + a.duration_ms
        group by 1"""))
    # the next call waits for the delayed one: it starts later by at least the delay
    assert offsets[True] - offsets[False] > 0.8 * delay


def test_an_expired_certificate_fails_handshakes_without_server_spans(cases):
    case = cases["cert_expiry"]
    service = read(case, "expected.json")["causes"][0]["entity"]["name"]
    onset = read(case, "case.json")["onset"][:19]
    after = dict(query(case, "spans", f"""
        select attributes['span.kind'], count(*) from t
        where start_ts >= timestamp '{onset}' + interval 1 second
          and (service = '{service}' and attributes['span.kind'] = 'server'
               or attributes['peer.service'] = '{service}') group by 1"""))
    assert "server" not in after and after["client"] > 0
    [(left,)] = query(case, "metrics", "select arg_max(value, ts) from t where name = "
                      f"'ssl_certificate_expiry_seconds' and service = '{service}'")
    assert left <= 0
    lines = query(case, "logs", "select count(*) from t where message like '%x509: certificate "
                  "has expired or is not yet valid%'")
    assert lines[0][0] > 0


def test_spans_are_sampled_whole_traces_with_client_and_server_sides(cases):
    case = cases["change_regression"]
    [(orphans,)] = query(case, "spans", """
        select count(*) from t c where parent_span_id is not null
        and not exists (select 1 from t p where p.span_id = c.parent_span_id)""")
    assert orphans == 0
    kinds = dict(query(case, "spans", "select attributes['span.kind'], count(*) from t group by 1"))
    assert set(kinds) == {"client", "server"}


def test_cli_writes_the_same_case_for_the_same_seed(cases, tmp_path):
    app = typer.Typer()
    datasets_cli.register(app)
    result = CliRunner().invoke(app, ["datasets", "generate", str(tmp_path / "out"),
                                      "--seed", "1001", "--cases", "1"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"Wrote 1 generated cases (seeds 1001-1001) to {tmp_path / 'out'}",
        "  gen-1001-change_regression",
    ]
    again, first = tmp_path / "out" / "gen-1001-change_regression", cases["change_regression"]
    for name in ("alert.json", "expected.json", "case.json"):
        assert read(again, name) == read(first, name)
    for table in sorted((first / "telemetry").iterdir()):
        assert pq.read_table(again / "telemetry" / table.name).equals(pq.read_table(table))


def test_backtest_reports_per_class_only_when_cases_declare_one():
    def result(klass, top1):
        return CaseResult(case="c", dataset="generated", expected=[], ranked=[], top1=top1,
                          top3=top1, categories=["deploy"], klass=klass)

    summary = summarize([result("cpu_hog", True), result("cpu_hog", False),
                         result("disk_full", True)])
    assert summary["per_class"] == {"cpu_hog": {"cases": 2, "top1": 0.5, "top3": 0.5},
                                    "disk_full": {"cases": 1, "top1": 1.0, "top3": 1.0}}
    assert summary["per_case"][0]["class"] == "cpu_hog"
    assert "per_class" not in summarize([result(None, True)])


def test_cli_refuses_a_file_as_out(tmp_path):
    target = tmp_path / "cases.txt"
    target.write_text("not a folder")
    app = typer.Typer()
    datasets_cli.register(app)
    result = CliRunner().invoke(app, ["datasets", "generate", str(target), "--cases", "1"])
    assert result.exit_code != 0
    assert f"{target} is a file; give a folder to write the generated cases into" in " ".join(
        result.output.split())
