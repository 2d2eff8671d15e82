"""The coverage report says which team should act, and names missing data as its own reason."""

from datetime import UTC, datetime, timedelta

from casebook.executor.coverage.glance import at_a_glance
from casebook.executor.coverage.markdown import render_markdown
from casebook.executor.coverage.model import Period
from casebook.executor.coverage.report import build_report
from casebook.executor.record import InvestigationRecord, InvocationRecord
from casebook.executor.results import ResultsStore
from casebook.sdk import Finding, Telemetry, TimeWindow, analyzer
from casebook.sdk.analyzer import spec_of
from casebook.sdk.models import Alert
from casebook.sdk.registry import Registry

WEEK = Period(datetime(2026, 3, 9, tzinfo=UTC), datetime(2026, 3, 16, tzinfo=UTC))
MISSING = ("missing data: metric 'disk_usage_ratio' (declared in reads=); send that telemetry, "
           "or fix the analyzer's reads=")


@analyzer(match={"alertname": "DiskFull"}, owner="storage-sre",
          reads=["metrics:disk_usage_ratio"])
def disk_nearly_full(telemetry: Telemetry) -> Finding | None:
    """A disk above 90%."""


@analyzer(match={"alertname": "DiskFull"}, owner="storage-sre")
def inode_exhaustion(telemetry: Telemetry) -> Finding | None:
    """Inodes, not bytes (never fires here)."""


@analyzer(match={"alertname": "HTTP5xxHigh"}, owner="payments-sre")
def ledger_lag(telemetry: Telemetry) -> Finding | None:
    """Ledger replication lag (errors)."""


@analyzer(match={"alertname": "Never"})
def orphan(telemetry: Telemetry) -> Finding | None:
    """Nobody owns this one."""


REGISTRY = Registry(spec_of(f) for f in (disk_nearly_full, inode_exhaustion, ledger_lag, orphan))


def record(iid: str, name: str, at: datetime, calls: list[tuple[str, str, str | None]]):
    alert = Alert(name=name, labels={"service": "db"}, starts_at=at)
    rec = InvestigationRecord(id=iid, alert=alert, status="done", created_at=at,
                              window=TimeWindow.around(at, timedelta(hours=1),
                                                       timedelta(minutes=15)))
    rec.invocations = [InvocationRecord(key=a, analyzer=a, status=s, error=e, duration_ms=5.0,
                                        started_ms=0.0) for a, s, e in calls]
    return rec


def test_to_do_lists_are_grouped_by_owner_and_missing_data_is_a_reason(tmp_path):
    db = tmp_path / "results.duckdb"
    with ResultsStore(db) as store:
        for day in (10, 11):
            store.save(record(f"D{day}", "DiskFull", datetime(2026, 3, day, tzinfo=UTC),
                              [("disk_nearly_full", "skipped", MISSING),
                               ("inode_exhaustion", "nothing", None)]))
        store.save(record("H1", "HTTP5xxHigh", datetime(2026, 3, 12, tzinfo=UTC),
                          [("ledger_lag", "error", "KeyError: 'lag'")]))
    with ResultsStore(db, read_only=True) as store:
        report = build_report(store.connection, WEEK, registry=REGISTRY, database=str(db))
    disk = next(a for a in report.analyzers if a.name == "disk_nearly_full")
    assert (disk.owner, disk.missing_data, disk.missing_reason) == (
        "storage-sre", 2, "metric 'disk_usage_ratio'")
    assert report.always_skipped == ()  # missing data is its own reason, not "always skipped"
    todo = next(a for a in at_a_glance(report) if a.question.endswith("fix or delete?")).lines
    assert todo == (
        "payments-sre: Fix ledger_lag: 1 of 1 invocations failed (100%: 1 error)",
        "storage-sre: Could not run disk_nearly_full 2 times: metric 'disk_usage_ratio' "
        "missing (send that telemetry, or fix its reads=)",
        "storage-sre: Ran but never found anything: inode_exhaustion",
        "no owner: Never applied (delete, or fix their matchers): orphan",
    )
    markdown = render_markdown(report)
    assert ("**Could not run: data missing:** disk_nearly_full (metric 'disk_usage_ratio' "
            "missing).") in markdown
