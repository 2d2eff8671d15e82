"""An investigation whose every runnable invocation failed is `failed`, says why, and exits 1."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from casebook.executor.cli import app
from casebook.executor.record import InvocationRecord
from casebook.executor.results import ResultsStore
from casebook.executor.telemetry_store import TelemetryStore
from casebook.executor.verdict import failure_of, skipped_note
from casebook.sdk.testing import DEFAULT_START

DEADLINE_FAILURE = (
    "every invocation failed: not finished: the investigation deadline of 1e-06 s was reached"
)


def invocation(status: str, error: str | None = None, key: str = "a") -> InvocationRecord:
    return InvocationRecord(key=key, analyzer=key, status=status, error=error)


def test_one_answer_is_enough_and_no_invocation_is_not_a_failure():
    assert failure_of([invocation("error", "boom"), invocation("nothing", key="b")]) is None
    assert failure_of([invocation("found"), invocation("timeout", "slow", key="b")]) is None
    assert failure_of([]) is None


def test_the_common_reason_is_named_once_with_its_first_line():
    failed = [
        invocation("error", f"UserError: no telemetry store at /data/store\nTraceback {n}", f"k{n}")
        for n in range(3)
    ]
    assert failure_of(failed) == "every invocation failed: UserError: no telemetry store at /data/store"


def test_mixed_failures_give_a_tally_and_the_most_common_reason():
    failed = [
        invocation("error", "ConnectionError: refused", "a"),
        invocation("error", "ConnectionError: refused", "b"),
        invocation("crashed", "its worker died", "c"),
    ]
    assert failure_of(failed) == (
        "every invocation failed (1 crashed, 2 error); the most common reason, 2 of 3: "
        "ConnectionError: refused"
    )


def test_skipped_invocations_are_not_runnable():
    # A chained analyzer skipped because its upstream failed does not hide that failure ...
    chain = [invocation("error", "boom"),
             invocation("skipped", "upstream analyzer 'a' found nothing", "b")]
    assert failure_of(chain) == "every invocation failed: boom"
    # ... and an investigation of only skipped invocations ran correctly: done, with a note.
    skipped = [invocation("skipped", "missing data: logs (declared in reads=)", k) for k in "ab"]
    assert failure_of(skipped) is None
    assert skipped_note(skipped) == (
        "No analyzer ran: all 2 applicable invocations were skipped (most often: missing data: "
        "logs (declared in reads=))"
    )
    assert skipped_note(chain) is None


def test_a_store_workers_cannot_open_points_at_the_cluster_requirement():
    failed = [invocation("error", "the worker could not open the investigation: UserError: no "
                                  "telemetry store at /home/me/store")]
    assert failure_of(failed) == (
        "every invocation failed: the worker could not open the investigation: UserError: no "
        "telemetry store at /home/me/store (on a Ray cluster every node must read the telemetry "
        "store at the same path, or from s3://; see docs/scale.md)"
    )


@pytest.fixture
def case(tmp_path: Path) -> Path:
    store = TelemetryStore.open(tmp_path / "store", create=True)
    store.append("logs", pa.Table.from_pylist([
        {"ts": DEFAULT_START - timedelta(minutes=5), "service": "api", "level": "error",
         "message": "boom"}
    ]))
    (tmp_path / "alert.json").write_text(json.dumps({
        "name": "Boom", "labels": {"alertname": "Boom"}, "starts_at": DEFAULT_START.isoformat(),
    }))
    return tmp_path


def test_investigate_exits_1_stores_failed_and_every_report_says_why(case: Path):
    # A deadline nothing can meet: every invocation that would have run ends `timeout`.
    result = CliRunner().invoke(app, [
        "investigate", str(case / "alert.json"), "--telemetry", str(case / "store"),
        "--db", str(case / "results.duckdb"), "--local", "--deadline", "0.000001",
        "--markdown", str(case / "report.md"), "--html", str(case / "report.html"),
    ])

    assert result.exit_code == 1
    said = " ".join(result.output.split())
    assert f"Investigation failed: {DEADLINE_FAILURE}" in said
    assert "error: investigation inv-" in said and f"of Boom failed: {DEADLINE_FAILURE}" in said
    with ResultsStore(case / "results.duckdb") as results:
        [listed] = results.list()
        record = results.get(listed["id"])
    assert record.status == "failed"
    assert record.notes[0] == f"The investigation failed: {DEADLINE_FAILURE}"
    assert record.narrative.sentences[0].text == (
        "The investigation of Boom failed: no analyzer that ran could answer, so it says "
        "nothing about the cause."
    )
    markdown = (case / "report.md").read_text()
    assert f"> **Investigation failed:** {DEADLINE_FAILURE}" in markdown
    assert "No probable cause: every invocation failed (above)." in markdown
    html = (case / "report.html").read_text()
    assert (f'<div class="banner failed" role="alert"><b>Investigation failed:</b> '
            f"{DEADLINE_FAILURE}</div>") in html


def test_intake_marks_the_queue_row_failed_with_the_reason(case: Path):
    from casebook.executor.intake.config import IntakeConfig
    from casebook.executor.intake.service import IntakeService

    config = IntakeConfig(telemetry=case / "store", db=case / "results.duckdb", local=True,
                          deadline_s=0.000001)
    service = IntakeService.open(config)
    try:
        [receipt] = service.accept(json.loads((case / "alert.json").read_text()), "api")
        assert service.worker.run_once()
        assert service.queue.state_of(receipt.investigation_id) == "failed"
        record = service.results.get(receipt.investigation_id)
        assert record.status == "failed"
        assert record.notes[0] == f"The investigation failed: {DEADLINE_FAILURE}"
    finally:
        service.close()
