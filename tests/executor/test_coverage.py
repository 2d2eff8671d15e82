"""The coverage report: every figure checked against a small store computed by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from casebook.executor.coverage.html import render_html
from casebook.executor.coverage.markdown import render_markdown
from casebook.executor.coverage.model import Period
from casebook.executor.coverage.report import (
    build_report,
    write_coverage,
)
from casebook.executor.errors import UserError
from casebook.executor.record import (
    CauseRecord,
    FindingRecord,
    InvestigationRecord,
    InvocationRecord,
    NarrativeRecord,
)
from casebook.executor.results import ResultsStore
from casebook.sdk import Entity, Finding, Telemetry, TimeWindow, analyzer
from casebook.sdk.analyzer import spec_of
from casebook.sdk.models import Alert
from casebook.sdk.registry import Registry

WEEK = Period(datetime(2026, 3, 9, tzinfo=UTC), datetime(2026, 3, 16, tzinfo=UTC))
SKIP_SERVICE = (
    "no value for parameter 'service': the alert has no label 'service' and nothing fanned out "
    "over it; add the label to the alert rule, give the parameter a default, or declare "
    "fan_out={'service': ...}"
)


# -- the analyzers that "exist" for this store ------------------------------------------------


@analyzer(match={"alertname": "HTTP5xxHigh"})
def deploy_diff(telemetry: Telemetry, service: str) -> Finding | None:
    """A deploy on the service just before the alert."""


@analyzer(match={"alertname": "HTTP5xxHigh"})
def slow_query(telemetry: Telemetry, service: str) -> Finding | None:
    """A database query of the service got slower."""


@analyzer
def error_spike(telemetry: Telemetry) -> Finding | None:
    """Any error class that multiplied (runs on every alert)."""


@analyzer
def capacity_check(telemetry: Telemetry, service: str) -> Finding | None:
    """The service ran out of CPU (needs a service label)."""


@analyzer(match={"alertname": "DiskFull"})
def disk_growth(telemetry: Telemetry) -> Finding | None:
    """Which directory grew (its alert never fires)."""


REGISTRY = Registry(
    spec_of(f) for f in (deploy_diff, slow_query, error_spike, capacity_check, disk_growth)
)


# -- the store ----------------------------------------------------------------------------------


def investigation(
    iid: str,
    name: str,
    at: datetime,
    calls: list[tuple[str, str, float, float]],
    *,
    labels: dict[str, str] | None = None,
    found: tuple[str, ...] = (),
    causes: tuple[tuple[str, str, str], ...] = (),
    narrator: str = "deterministic",
    status: str = "firing",
) -> InvestigationRecord:
    """calls: (analyzer, status, started_ms, duration_ms); found: analyzers with a finding."""
    alert = Alert(name=name, status=status, labels=labels or {"service": "api"}, starts_at=at)
    record = InvestigationRecord(
        id=iid,
        alert=alert,
        window=TimeWindow.around(at, timedelta(hours=1), timedelta(minutes=15)),
        status="done",
        created_at=at,
        finished_at=at + timedelta(seconds=1),
    )
    record.invocations = [
        InvocationRecord(
            key=a,
            analyzer=a,
            status=s,
            started_ms=start,
            duration_ms=took,
            error={"error": "boom", "skipped": SKIP_SERVICE}.get(s),
        )
        for a, s, start, took in calls
    ]
    record.findings = [
        FindingRecord(
            id=f"F{i}",
            analyzer=a,
            invocation=a,
            title=f"{a} found it",
            summary="s",
            severity="warning",
            confidence=0.6,
            category="code",
        )
        for i, a in enumerate(found, start=1)
    ]
    record.causes = [
        CauseRecord(
            rank=rank,
            entity=Entity(kind=kind, name=entity),
            category=category,
            score=0.5,
            finding_ids=["F1"],
        )
        for rank, (category, kind, entity) in enumerate(causes, start=1)
    ]
    claude = narrator != "deterministic"
    record.narrative = NarrativeRecord(
        narrator=narrator,
        text="t",
        model="claude-sonnet-4-5" if claude else None,
        tokens_in=1200 if claude else 0,
        tokens_out=300 if claude else 0,
        cost_usd=0.05 if claude else 0.0,
    )
    return record


def day(d: int, hour: int = 10) -> datetime:
    return datetime(2026, 3, d, hour, tzinfo=UTC)


def hand_store(path: Path) -> Path:
    """Six firing alerts this week (one resolved, one after it), two the week before."""
    disk = {"instance": "db-1:9100", "mountpoint": "/var"}
    with ResultsStore(path) as store:
        for record in (
            investigation(
                "A1",
                "HTTP5xxHigh",
                day(9),
                [
                    ("deploy_diff", "found", 0, 40),
                    ("slow_query", "nothing", 40, 100),
                    ("error_spike", "found", 140, 10),
                    ("capacity_check", "nothing", 150, 20),
                ],
                found=("deploy_diff", "error_spike"),
                causes=(("deploy", "service", "api"), ("code", "service", "api")),
            ),
            investigation(
                "A2",
                "HTTP5xxHigh",
                day(10),
                [
                    ("deploy_diff", "nothing", 0, 60),
                    ("slow_query", "error", 60, 5),
                    ("error_spike", "nothing", 65, 10),
                    ("capacity_check", "nothing", 75, 30),
                ],
            ),
            investigation(
                "A3",
                "HTTP5xxHigh",
                day(12),
                [
                    ("deploy_diff", "found", 0, 30),
                    ("slow_query", "timeout", 30, 300),
                    ("error_spike", "nothing", 330, 10),
                    ("capacity_check", "nothing", 340, 40),
                ],
                found=("deploy_diff",),
                causes=(("deploy", "service", "api"),),
                narrator="claude",
            ),
            investigation(
                "A4",
                "DiskSpaceLow",
                day(13),
                [("error_spike", "nothing", 0, 5), ("capacity_check", "skipped", 0, 0)],
                labels=disk,
            ),
            investigation(
                "A5",
                "DiskSpaceLow",
                day(14),
                [("error_spike", "found", 0, 8), ("capacity_check", "skipped", 0, 0)],
                labels=disk,
                found=("error_spike",),
                causes=(("code", "host", "db-1"),),
            ),
            investigation("A6", "HTTP5xxHigh", day(14, 11), [], status="resolved"),
            investigation(
                "A8",
                "LatencyHigh",
                day(15, 23),
                [("capacity_check", "nothing", 0, 50), ("error_spike", "nothing", 50, 10)],
                labels={"service": "checkout"},
            ),
            investigation(
                "A9",
                "HTTP5xxHigh",
                day(16, 1),
                [("deploy_diff", "found", 0, 1)],
                found=("deploy_diff",),
            ),
            investigation(
                "P1",
                "HTTP5xxHigh",
                day(5),
                [
                    ("deploy_diff", "nothing", 0, 10),
                    ("slow_query", "nothing", 10, 10),
                    ("error_spike", "nothing", 20, 10),
                    ("capacity_check", "nothing", 30, 10),
                ],
            ),
            investigation(
                "P2",
                "DiskSpaceLow",
                day(6),
                [("error_spike", "nothing", 0, 5), ("capacity_check", "skipped", 0, 0)],
                labels=disk,
            ),
        ):
            store.save(record)
        store.add_feedback("A1", True, finding_id="F1", comment="right deploy")
        store.add_feedback("A2", False, comment="nothing useful")
        store.add_feedback("A3", True, finding_id="F1")
        store.add_feedback("A5", False, finding_id="F1", comment="disk alerts are not errors")
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    db = hand_store(tmp_path_factory.mktemp("coverage") / "results.duckdb")
    with ResultsStore(db, read_only=True) as store:
        return build_report(store.connection, WEEK, registry=REGISTRY, database=str(db))


def figures(report) -> dict[str, tuple[str, str]]:
    return {f.label: (f.text, f.change) for f in report.figures}


# -- figures --------------------------------------------------------------------------------------


def test_headline_figures_and_their_week_over_week_change(report):
    assert (report.investigations, report.previous_investigations) == (6, 2)
    assert figures(report) == {
        "Alerts investigated": ("6", "+4"),
        "Alert names": ("3", "+1"),
        "Covered by an analyzer written for them": ("67%", "+17 pts"),
        "With a finding": ("50%", "+50 pts"),
        "Median time to first finding": ("30 ms", "new"),
        "Alerts no analyzer covers": ("2", "+1"),
        "Analyzer invocations": ("18", "+12"),
        "Errors and timeouts (share of invocations run)": ("12%", "+12 pts"),
        "Feedback marked helpful": ("50%", "new"),
        "Narration cost": ("$0.05", "+$0.05"),
    }
    tones = {f.label: f.tone for f in report.figures}
    assert tones["Alerts no analyzer covers"] == "bad"
    assert tones["Covered by an analyzer written for them"] == "good"
    assert tones["Alerts investigated"] == "neutral"


def test_per_alert_volume_coverage_findings_and_time_to_first_finding(report):
    rows = [
        (a.name, a.volume, a.previous_volume, a.covered, a.with_finding, a.median_first_finding_ms)
        for a in report.alerts
    ]
    assert rows == [
        ("HTTP5xxHigh", 3, 1, 3, 2, 35.0),
        ("DiskSpaceLow", 2, 1, 0, 1, 8.0),
        ("LatencyHigh", 1, 0, 1, 0, None),
    ]


def test_per_analyzer_counts_durations_and_feedback(report):
    rows = {
        a.name: (
            a.applicable,
            a.ran,
            a.found_in,
            a.invocations,
            a.found,
            a.nothing,
            a.skipped,
            a.error,
            a.timeout,
            a.helpful,
            a.not_helpful,
        )
        for a in report.analyzers
    }
    assert list(rows) == ["capacity_check", "error_spike", "deploy_diff", "slow_query"]
    assert rows == {
        "capacity_check": (6, 4, 0, 6, 0, 4, 2, 0, 0, 0, 0),
        "error_spike": (6, 6, 2, 6, 2, 4, 0, 0, 0, 0, 1),
        "deploy_diff": (3, 3, 2, 3, 2, 1, 0, 0, 0, 2, 0),
        "slow_query": (3, 3, 0, 3, 0, 1, 0, 1, 1, 0, 0),
    }
    slow = next(a for a in report.analyzers if a.name == "slow_query")
    assert (slow.p50_ms, slow.p95_ms) == pytest.approx((100.0, 280.0))
    assert [a.name for a in report.analyzers if a.catch_all] == ["error_spike"]


def test_analyzers_to_fix_or_delete(report):
    assert report.never_applied == ("disk_growth",)
    assert [a.name for a in report.never_found] == ["capacity_check", "slow_query"]
    assert [(a.name, round(a.failure_share, 3)) for a in report.unreliable] == [
        ("slow_query", 0.667)
    ]
    assert [a.name for a in report.analyzers if a.disliked] == ["error_spike"]


def test_uncovered_alerts_ranked_with_their_labels_and_the_reason(report):
    [disk] = report.uncovered
    assert (disk.name, disk.uncovered, disk.volume) == ("DiskSpaceLow", 2, 2)
    assert disk.label_keys == ("instance", "mountpoint")
    assert disk.reason == (
        "no value for parameter 'service': the alert has no label 'service' "
        "and nothing fanned out over it"
    )
    assert [a.name for a in report.unexplained] == ["LatencyHigh"]


def test_top_causes_by_category_and_entity(report):
    assert [(c.category, c.entity, c.top, c.top3, c.alerts) for c in report.causes] == [
        ("deploy", "service:api", 2, 2, ("HTTP5xxHigh",)),
        ("code", "host:db-1", 1, 1, ("DiskSpaceLow",)),
        ("code", "service:api", 0, 1, ("HTTP5xxHigh",)),
    ]
    assert report.categories == (("deploy", 2), ("code", 1))


def test_days_feedback_and_narration_spend(report):
    assert [(d.day.day, d.volume, d.covered) for d in report.days] == [
        (9, 1, 1),
        (10, 1, 1),
        (11, 0, 0),
        (12, 1, 1),
        (13, 1, 0),
        (14, 1, 0),
        (15, 1, 1),
    ]
    fb = report.feedback
    assert (fb.helpful, fb.not_helpful, fb.on_findings) == (2, 2, 3)
    assert {(c.investigation_id, c.analyzer, c.comment) for c in fb.comments} == {
        ("A1", "deploy_diff", "right deploy"),
        ("A2", None, "nothing useful"),
        ("A5", "error_spike", "disk alerts are not errors"),
    }
    assert [
        (n.narrator, n.narratives, n.tokens_in, n.tokens_out, n.cost_usd) for n in report.narration
    ] == [("deterministic", 5, 0, 0, 0.0), ("claude", 1, 1200, 300, 0.05)]
    assert report.claude_used


# -- rendering ------------------------------------------------------------------------------------


def test_markdown_answers_the_three_questions_first(report):
    text = render_markdown(report)
    assert text.startswith("# Analyzer coverage, 2026-03-09 to 2026-03-15\n")
    glance = text[text.index("## At a glance") : text.index("## Headline figures")]
    assert (
        "- DiskSpaceLow: 2 firings, none covered by an analyzer written for it; labels: "
        "instance, mountpoint" in glance
    )
    assert "- LatencyHigh: 1 firing, analyzers ran but never found anything" in glance
    assert "- Fix slow_query: 2 of 3 invocations failed (67%: 1 error, 1 timeout)" in glance
    assert "- Rework error_spike: 1 not helpful against 0 helpful" in glance
    assert "- Never applied (delete, or fix their matchers): disk_growth" in glance
    assert "- Ran but never found anything: capacity_check" in glance
    assert "- deploy on service:api: top cause of 2 alerts (HTTP5xxHigh)" in glance
    assert "| HTTP5xxHigh | 3 | +2 | 100% | 67% | 35 ms |" in text
    assert "| Median time to first finding | 30 ms | - | new |" in text
    assert "| slow_query | 3 | 3 | 0 | 0 | 1 | 0 | 1 | 1 | 100 ms | 280 ms | 0 | 0 |" in text
    assert "| error_spike (any alert) |" in text
    assert "| claude | claude-sonnet-4-5 | 1 | 1,200 | 300 | $0.05 | 0 |" in text
    for heading in (
        "## Headline figures",
        "## Alerts",
        "## Alerts no analyzer covers",
        "## Analyzers",
        "## Top causes",
        "## Feedback",
        "## Narration spend",
        "## How these figures are counted",
    ):
        assert f"\n{heading}\n" in text


def test_html_is_self_contained_with_a_chart_per_section(report):
    page = render_html(report)
    for forbidden in ("http://", "https://", "<script", "<link", "src="):
        assert forbidden not in page
    assert page.count("<svg") == 4  # alerts per day, per alert, analyzer outcomes, causes
    for section in (
        "glance",
        "figures",
        "alerts",
        "uncovered",
        "analyzers",
        "causes",
        "feedback",
        "narration",
        "definitions",
    ):
        assert f'id="{section}"' in page
    assert "Which alerts should we write analyzers for next?" in page


# -- empty, one-day and odd databases ------------------------------------------------------------


def test_an_empty_database_gives_a_clear_report(tmp_path):
    db = tmp_path / "empty.duckdb"
    ResultsStore(db).close()
    report = write_coverage(
        db,
        html=tmp_path / "c.html",
        markdown=tmp_path / "c.md",
        now=datetime(2026, 3, 16, tzinfo=UTC),
    )
    assert report.empty
    assert report.notes == (
        "The results database holds no investigations yet: run `casebook "
        "investigate ALERT.json --db DB` or `casebook serve --db DB`, or "
        "`casebook demo` for an example week.",
    )
    assert "Nothing to report for this period." in (tmp_path / "c.md").read_text()
    assert "Nothing to report for this period" in (tmp_path / "c.html").read_text()


def test_a_period_without_investigations_says_where_they_are(tmp_path):
    db = hand_store(tmp_path / "r.duckdb")
    report = write_coverage(
        db, since=datetime(2026, 4, 1, tzinfo=UTC), until=datetime(2026, 4, 8, tzinfo=UTC)
    )
    assert report.notes[-1] == (
        "No investigations in this period. The database holds "
        "investigations from 2026-03-05 to 2026-03-16; try "
        "`--since 2026-03-10 --until 2026-03-16`."
    )


def test_a_one_day_store_reads_new_instead_of_a_change(tmp_path):
    db = tmp_path / "one.duckdb"
    with ResultsStore(db) as store:
        store.save(
            investigation(
                "X1",
                "HTTP5xxHigh",
                day(12, 9),
                [("deploy_diff", "found", 0, 20)],
                found=("deploy_diff",),
            )
        )
        store.save(
            investigation("X2", "HTTP5xxHigh", day(12, 15), [("deploy_diff", "nothing", 0, 20)])
        )
    report = write_coverage(
        db,
        markdown=tmp_path / "one.md",
        html=tmp_path / "one.html",
        now=datetime(2026, 3, 13, tzinfo=UTC),
    )
    assert report.notes == (
        "All 2 investigations of this period are from 2026-03-12: the figures describe less "
        "than a day.",
        "No investigations in the previous period (2026-02-27 to 2026-03-05), so the "
        "week-over-week changes read 'new'.",
    )
    assert figures(report)["Alerts investigated"] == ("2", "new")
    assert figures(report)["Median time to first finding"] == ("20 ms", "new")
    assert "| Alerts investigated | 2 | - | new |" in (tmp_path / "one.md").read_text()


def test_a_database_from_before_start_offsets_still_reports(tmp_path):
    db = tmp_path / "old.duckdb"
    hand_store(db)
    with duckdb.connect(str(db)) as con:
        con.execute("alter table invocations drop column started_ms")
    with ResultsStore(db, read_only=True) as store:
        report = build_report(store.connection, WEEK, registry=REGISTRY)
    assert report.alerts[0].median_first_finding_ms is None
    assert report.investigations == 6


def test_a_database_that_is_not_a_results_database_is_refused(tmp_path):
    db = tmp_path / "other.duckdb"
    duckdb.connect(str(db)).close()
    with pytest.raises(
        UserError,
        match="is not a casebook results database \\(it has no "
        "causes, feedback, findings, investigations",
    ):
        write_coverage(db)


def test_the_docs_print_the_same_definitions_as_the_report():
    from casebook.executor.coverage.model import DEFINITIONS

    docs = (Path(__file__).parents[2] / "docs" / "coverage.md").read_text()
    block = "\n".join(f"- **{term}**: {meaning}" for term, meaning in DEFINITIONS)
    assert f"## How the figures are counted\n\n{block}\n" in docs
