"""Leaks: a steady climb to the limit followed by a kill is a leak, dated where it began."""

from datetime import timedelta

from casebook.analyzers.leaks import memory_leak
from casebook.sdk.testing import DEFAULT_START, TinyStore, make_alert, run

ONSET = DEFAULT_START


def memory(leaking: bool, killed: bool = True) -> TinyStore:
    """orders-1 holds 40% of its memory; from 11:20 it climbs 2 points a minute to 98%."""
    rows, events = [], []
    for minute in range(-59, 10):
        ts = ONSET + timedelta(minutes=minute)
        value = 0.40 + 0.01 * (minute % 2)
        if leaking and -40 <= minute < -11:
            value = 0.40 + 0.02 * (minute + 40)
        if leaking and -11 <= minute < 0:
            value = 0.98
        if leaking and killed and minute >= 0:
            value = 0.35
        rows.append({"ts": ts, "name": "memory_usage_ratio", "service": "orders", "value": value,
                     "labels": {"pod": "orders-1"}})
    if leaking and killed:
        events.append({"ts": ONSET, "kind": "restart", "service": "orders",
                       "summary": "orders-1 restarted (OOMKilled)"})
    return TinyStore().add("metrics", rows).add("events", events)


def leak(store: TinyStore):
    alert = make_alert("OrdersDown", service="api", starts_at=ONSET)
    return run(memory_leak, alert=alert, store=store, params={"service": "orders"}).finding


def test_a_climb_to_the_limit_then_a_kill_is_a_leak_dated_where_it_began():
    finding = leak(memory(leaking=True))
    assert finding.title == "Memory leak in orders (orders-1)"
    assert finding.onset.strftime("%H:%M") == "11:22"
    assert finding.killed and finding.category == "resource"
    assert finding.summary == (
        "memory_usage_ratio of orders-1 climbed steadily from 0.4 to 0.98 over 24 min from "
        "11:22 UTC; 1 restart or out-of-memory record(s) followed.")


def test_flat_memory_is_no_leak():
    assert leak(memory(leaking=False)) is None


def test_a_pool_that_fills_slowly_is_exhausted_from_where_the_climb_began():
    from casebook.analyzers.leaks import pool_exhaustion

    rows = [{"ts": ONSET + timedelta(minutes=m), "name": "connection_pool_usage_ratio",
             "service": "ledger", "value": min(1.0, 0.2 + max(0, m + 35) * 0.03) if m >= -35
             else 0.2 + 0.01 * (m % 2), "labels": {"pod": "ledger-1", "pool": "postgres"}}
            for m in range(-59, 5)]
    store = TinyStore().add("metrics", rows)
    alert = make_alert("LedgerSlow", service="ledger", starts_at=ONSET)
    finding = run(pool_exhaustion, alert=alert, store=store, params={"service": "ledger"}).finding
    assert finding.title == "Connection pool of ledger exhausted (ledger-1 postgres)"
    assert finding.onset.strftime("%H:%M") == "11:27"
