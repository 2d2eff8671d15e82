from datetime import timedelta

from casebook.analyzers.selfwatch import failing_analyzer, slow_analyzer
from casebook.sdk.testing import DEFAULT_START, TinyStore, make_alert, run

ALERT = make_alert("CasebookInvestigationsSlow")


def spans(name, ms, count, status="ok"):
    start = DEFAULT_START - timedelta(minutes=2)
    return [{"trace_id": f"{name}{i}", "span_id": f"{name}{i}", "service": "casebook",
             "name": name, "start_ts": start, "duration_ms": ms, "status": status,
             "attributes": {"casebook.analyzer": name}} for i in range(count)]


def test_the_analyzer_that_dominates_the_time_is_named():
    store = TinyStore().add("spans", spans("code_path_change", 900.0, 10)
                            + spans("recent_change", 5.0, 10))
    outcome = run(slow_analyzer, alert=ALERT, store=store)
    assert outcome.finding.analyzer == "code_path_change"
    assert outcome.finding.summary == ("code_path_change spent 9000 ms over 10 invocations "
                                       "(p95 900 ms), more than 3x any other analyzer.")


def test_evenly_spread_time_is_not_a_finding_and_failures_are_counted():
    store = TinyStore().add("spans", spans("a", 500.0, 10) + spans("b", 400.0, 10, "error"))
    assert run(slow_analyzer, alert=ALERT, store=store).status == "nothing"
    assert run(failing_analyzer, alert=ALERT, store=store).finding.failures == 10
