"""Neighbours: a job that starts on the victim's nodes and saturates them is the cause."""

from datetime import timedelta

from casebook.analyzers.neighbours import noisy_neighbour
from casebook.sdk.testing import DEFAULT_START, TinyStore, make_alert, run

ONSET = DEFAULT_START
ALERT = make_alert("SearchSlow", service="search", starts_at=ONSET)


def cluster(job_node: str) -> TinyStore:
    """search runs on n1 and n2, cart on n3, nothing on n4; a report job starts on `job_node`
    at the onset."""
    rows = []
    for minute in range(-40, 8):
        ts = ONSET + timedelta(minutes=minute)
        running = minute >= 0
        for node in ("n1", "n2", "n3", "n4"):
            busy = 0.97 if running and node == job_node else 0.35 + 0.01 * (minute % 3)
            rows.append({"ts": ts, "name": "node_cpu_usage_ratio", "service": "kubelet",
                         "value": busy, "labels": {"node": node}})
        for pod, service, node in (("search-1", "search", "n1"), ("search-2", "search", "n2"),
                                   ("cart-1", "cart", "n3")):
            rows.append({"ts": ts, "name": "cpu_usage_ratio", "service": service, "value": 0.3,
                         "labels": {"pod": pod, "node": node}})
        if running:
            rows.append({"ts": ts, "name": "cpu_usage_ratio", "service": "report-cron",
                         "value": 0.9, "labels": {"pod": "report-cron-x", "node": job_node}})
    return TinyStore().add("metrics", rows)


def test_a_job_that_starts_on_the_victims_node_and_saturates_it_is_the_neighbour():
    finding = run(noisy_neighbour, alert=ALERT, store=cluster("n2")).finding
    assert finding.title == "report-cron saturated the nodes search runs on"
    assert finding.summary == ("Node(s) n2 under search's pods ran at or near full CPU from "
                               "12:00 UTC; report-cron started on them.")
    assert [str(e) for e in finding.entities] == ["service:report-cron", "node:n2"]


def test_the_victim_is_whoever_shares_the_node_and_a_job_alone_is_nobodys_neighbour():
    assert run(noisy_neighbour, alert=ALERT, store=cluster("n3")).finding.victim == "cart"
    assert run(noisy_neighbour, alert=ALERT, store=cluster("n4")).finding is None
