"""The demo week: replayed through the real executor, it makes a coverage report worth reading."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from casebook.examples.week import replay_week, schedule
from casebook.executor.coverage.glance import at_a_glance
from casebook.executor.coverage.report import write_coverage
from casebook.executor.errors import UserError
from casebook.sdk.models import Alert

END = datetime(2026, 3, 16, tzinfo=UTC)
START = END - timedelta(days=7)
SEED_ALERTS = {
    "nye": Alert(
        name="HTTP5xxHigh",
        labels={"service": "image-api"},
        starts_at=datetime(2025, 12, 31, 23, 34, tzinfo=UTC),
    ),
    "kv_cache": Alert(
        name="HighRequestVolume",
        labels={"service": "inference-api"},
        starts_at=datetime(2026, 3, 14, 14, 10, tzinfo=UTC),
    ),
    "capacity": Alert(
        name="HighRequestVolume",
        labels={"service": "inference-api"},
        starts_at=datetime(2026, 4, 2, 9, 8, tzinfo=UTC),
    ),
}


def test_the_schedule_mixes_incidents_noise_and_a_flapping_alert_over_two_weeks():
    firings = schedule(START, SEED_ALERTS)
    this_week = [f for f in firings if f.at >= START]
    assert all(START - timedelta(days=7) <= f.at < END for f in firings)
    assert [f.at for f in firings] == sorted(f.at for f in firings)
    counts: dict[str, int] = {}
    for firing in this_week:
        counts[firing.alert.name] = counts.get(firing.alert.name, 0) + 1
    assert counts == {
        "HTTP5xxHigh": 4,
        "HighRequestVolume": 8,
        "DiskSpaceLow": 14,
        "CertificateExpiringSoon": 7,
        "NodeMemoryPressure": 4,
        "LatencyP99High": 12,
    }
    assert len(firings) - len(this_week) == 28
    # Seed incidents keep the time their telemetry is about; noise fires when it is scheduled.
    assert {f.alert.starts_at for f in firings if f.store == "kv_cache"} == {
        SEED_ALERTS["kv_cache"].starts_at
    }
    disk = [f for f in this_week if f.alert.name == "DiskSpaceLow"]
    assert all(f.alert.starts_at == f.at and "service" not in f.alert.labels for f in disk)
    flaps = sorted(f.at for f in this_week if f.alert.name == "LatencyP99High")
    assert flaps[1] - flaps[0] == timedelta(minutes=30)


@pytest.fixture(scope="module")
def week(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("week")
    summary = replay_week(tmp / "week.duckdb", tmp / "work", end=END)
    return summary, None, tmp  # how long it takes is measured by benchmarks/week.py


def test_two_weeks_are_replayed_through_the_executor(week):
    # How long this takes is measured by benchmarks/week.py, not asserted here.
    summary, _, _ = week
    assert summary.investigations == 77
    assert summary.by_alert == {
        "HTTP5xxHigh": 5,
        "HighRequestVolume": 12,
        "DiskSpaceLow": 23,
        "CertificateExpiringSoon": 14,
        "NodeMemoryPressure": 7,
        "LatencyP99High": 16,
    }
    assert summary.feedback == 10


def test_its_coverage_report_answers_the_three_questions(week):
    summary, _, tmp = week
    report = write_coverage(
        summary.db, now=END, markdown=tmp / "coverage.md", html=tmp / "coverage.html"
    )
    assert (report.investigations, report.previous_investigations) == (49, 28)
    assert [u.name for u in report.uncovered] == [
        "DiskSpaceLow",
        "CertificateExpiringSoon",
        "NodeMemoryPressure",
    ]
    assert [a.name for a in report.unexplained] == ["LatencyP99High"]
    assert {a.name: (a.error, a.timeout) for a in report.unreliable} == {
        "heavy_route": (0, 8),
        "payment_provider_errors": (4, 0),
    }
    assert "queue_backlog" in report.never_applied  # the pack's analyzer no alert matches
    assert [(c.category, c.entity, c.top) for c in report.causes[:3]] == [
        ("cache", "service:kv-cache", 5),
        ("abuse", "service:image-api", 4),
        ("capacity", "service:inference-api", 3),
    ]
    assert all(f.change != "new" for f in report.figures)
    write_next, fix, broke = at_a_glance(report)
    assert write_next.lines[0].startswith("DiskSpaceLow: 14 firings, none covered")
    assert fix.lines[0] == "Fix heavy_route: 8 of 8 invocations failed (100%: 8 timeouts)"
    assert broke.lines[0] == "cache on service:kv-cache: top cause of 5 alerts (HighRequestVolume)"
    assert "## Alerts no analyzer covers" in (tmp / "coverage.md").read_text()


def test_the_replay_never_writes_into_an_existing_database(tmp_path):
    (tmp_path / "results.duckdb").touch()
    with pytest.raises(
        UserError, match="results.duckdb already exists; replay_week writes a new results database"
    ):
        replay_week(tmp_path / "results.duckdb", tmp_path / "work", end=END)
