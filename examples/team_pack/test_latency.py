from datetime import timedelta

from casebook.examples.team_pack.latency import slow_operation
from casebook.sdk.testing import DEFAULT_START, TinyStore, make_alert, run


def spans(name, ms, minutes_before):
    start = DEFAULT_START - timedelta(minutes=minutes_before)
    return [{"trace_id": f"t{i}", "span_id": f"s{i}", "service": "cart", "name": name,
             "start_ts": start, "duration_ms": ms, "status": "ok"} for i in range(20)]


def test_finds_the_operation_that_got_slow():
    store = TinyStore().add("spans", spans("checkout", 900, 5) + spans("checkout", 100, 90)
                            + spans("browse", 50, 5) + spans("browse", 50, 90))
    outcome = run(slow_operation, alert=make_alert("LatencyHigh", service="cart"), store=store)
    assert outcome.finding.operation == "checkout"
    assert outcome.finding.title == "cart checkout is 9.0x slower"
