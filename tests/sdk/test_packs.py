from datetime import timedelta

import pytest
from pydantic import ValidationError

from casebook.sdk import AnalyzerDefinitionError, Finding, Pack, Telemetry, analyzer
from casebook.sdk.testing import DEFAULT_START, TinyStore, make_alert, run


def test_a_typo_in_a_findings_category_is_an_error():
    with pytest.raises(ValidationError) as raised:
        Finding(title="t", summary="s", category="capacty")
    assert "unknown category 'capacty'; did you mean 'capacity'?" in str(raised.value)


def test_a_typo_in_an_analyzers_category_is_a_definition_error():
    with pytest.raises(AnalyzerDefinitionError) as raised:
        @analyzer(category="disk")
        def disk_full(telemetry: Telemetry) -> Finding | None: ...
    text = str(raised.value)
    assert "unknown category 'disk'" in text
    assert "PACK = Pack(categories=['disk'])" in text


def test_a_pack_extends_the_categories_explicitly():
    Pack(owner="storage-sre", categories=["ledger"])
    assert Finding(title="t", summary="s", category="ledger").category == "ledger"

    @analyzer(category="ledger", owner="payments-sre")
    def ledger_drift(telemetry: Telemetry) -> Finding | None: ...

    assert ledger_drift.__casebook_analyzer__.owner == "payments-sre"


def test_reads_must_name_tables_metrics_or_columns():
    with pytest.raises(AnalyzerDefinitionError) as raised:
        @analyzer(reads=["metrics:cpu", "select * from logs"])
        def bad_reads(telemetry: Telemetry) -> Finding | None: ...
    assert "reads entry 'select * from logs' is not a table or a `kind:name` declaration" in (
        str(raised.value))


@analyzer(reads=["metrics:disk_usage_ratio"])
def disk_nearly_full(telemetry: Telemetry, service: str) -> Finding | None:
    """A disk above 90%."""
    peak = telemetry.sql("select max(value) from metrics where name = 'disk_usage_ratio' "
                         "and service = ?", [service]).scalar()
    if peak is None or peak < 0.9:
        return None
    return Finding(title=f"disk of {service} at {peak:.0%}", summary="full", category="resource")


def test_an_invocation_without_the_declared_data_is_skipped_with_what_is_missing():
    outcome = run(disk_nearly_full, alert=make_alert("DiskFull", service="db"), store=TinyStore())
    assert outcome.status == "skipped"
    assert outcome.error == (
        "missing data: metric 'disk_usage_ratio' (declared in reads=); send that telemetry, "
        "or fix the analyzer's reads=")


def test_an_invocation_with_the_declared_data_runs():
    store = TinyStore().add("metrics", [{"ts": DEFAULT_START - timedelta(minutes=2),
                                         "name": "disk_usage_ratio", "service": "db",
                                         "value": 0.97}])
    outcome = run(disk_nearly_full, alert=make_alert("DiskFull", service="db"), store=store)
    assert outcome.status == "found"
    assert outcome.finding.title == "disk of db at 97%"
