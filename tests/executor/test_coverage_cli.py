"""`casebook coverage` and `casebook feedback`, and how the period is read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import typer
from test_coverage import REGISTRY, WEEK, day, hand_store
from typer.testing import CliRunner

from casebook.executor.cli import coverage as coverage_cli
from casebook.executor.cli import feedback as feedback_cli
from casebook.executor.coverage.model import Period
from casebook.executor.coverage.report import build_report, parse_moment, period_for
from casebook.executor.errors import UserError
from casebook.executor.results import ResultsStore

# -- periods --------------------------------------------------------------------------------------


def test_periods_default_to_the_last_seven_days_and_until_includes_its_day():
    now = datetime(2026, 3, 16, 12, tzinfo=UTC)
    assert period_for(None, None, now) == Period(now - timedelta(days=7), now)
    end = parse_moment("2026-03-15", option="--until", end=True)
    assert period_for(None, end) == WEEK
    assert parse_moment("2026-03-09T12:00", option="--since") == day(9, 12)
    with pytest.raises(
        UserError,
        match="--since 'last week' is not a date; give a day like "
        "2026-03-09 or a time like 2026-03-09T12:00",
    ):
        parse_moment("last week", option="--since")
    with pytest.raises(UserError, match="--since 2026-03-16 00:00 is not before --until"):
        period_for(WEEK.end, WEEK.start)


# -- commands -------------------------------------------------------------------------------------


def app_with(module) -> typer.Typer:
    app = typer.Typer()
    module.register(app)
    app.command("noop")(lambda: None)  # two commands keep the command name in the invocation
    return app


def test_coverage_command_writes_both_reports(tmp_path):
    db = hand_store(tmp_path / "r.duckdb")
    result = CliRunner().invoke(
        app_with(coverage_cli),
        [
            "coverage",
            "--db",
            str(db),
            "--since",
            "2026-03-09",
            "--until",
            "2026-03-15",
            "--html",
            str(tmp_path / "c.html"),
            "--markdown",
            str(tmp_path / "c.md"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Analyzer coverage, 2026-03-09 to 2026-03-15: 6 alerts investigated" in result.output
    assert "Which alerts should we write analyzers for next?" in result.output
    assert (tmp_path / "c.html").read_text().startswith("<!doctype html>")
    assert "## Top causes" in (tmp_path / "c.md").read_text()


def test_coverage_command_without_a_database_says_how_to_make_one(tmp_path):
    result = CliRunner().invoke(
        app_with(coverage_cli), ["coverage", "--db", str(tmp_path / "none.duckdb")]
    )
    assert result.exit_code == 2
    assert "no results database at" in result.output


def test_feedback_command_writes_the_record_the_report_counts(tmp_path):
    db = hand_store(tmp_path / "r.duckdb")
    app = app_with(feedback_cli)
    result = CliRunner().invoke(
        app,
        [
            "feedback",
            "A8",
            "--not-helpful",
            "--comment",
            "latency alerts need a trace analyzer",
            "--db",
            str(db),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Recorded: A8 was not helpful." in result.output
    result = CliRunner().invoke(
        app, ["feedback", "A1", "--finding", "F2", "--helpful", "--db", str(db)]
    )
    assert "Recorded: finding F2 of A1 was helpful." in result.output
    with ResultsStore(db, read_only=True) as store:
        report = build_report(store.connection, WEEK, registry=REGISTRY)
        rows = store.connection.execute(
            "select investigation_id, finding_id, helpful, comment, source from feedback "
            "where investigation_id = 'A8' or finding_id = 'F2'"
        ).fetchall()
    assert sorted(rows) == [
        ("A1", "F2", True, "", "cli"),
        ("A8", None, False, "latency alerts need a trace analyzer", "cli"),
    ]
    assert (report.feedback.helpful, report.feedback.not_helpful) == (3, 3)
    spike = next(a for a in report.analyzers if a.name == "error_spike")
    assert (spike.helpful, spike.not_helpful) == (1, 1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["A1"], "say whether it helped: add --helpful or --not-helpful"),
        (["A1", "--helpful", "--finding", "F9"], "investigation 'A1' has no finding 'F9'"),
        (["NOPE", "--helpful"], "no investigation 'NOPE' in"),
    ],
)
def test_feedback_command_explains_what_is_wrong(tmp_path, args, message):
    db = hand_store(tmp_path / "r.duckdb")
    result = CliRunner().invoke(app_with(feedback_cli), ["feedback", *args, "--db", str(db)])
    assert result.exit_code == 2
    assert message in result.output.replace("\n", " ")
