"""Resources: a pod pinned at its CPU limit is found; a busier but unsaturated pod is not."""

from datetime import timedelta

from casebook.analyzers.resources import cpu_contention, cpu_services, memory_pressure
from casebook.sdk.testing import DEFAULT_START, TinyStore, default_window, make_alert, run

ONSET = DEFAULT_START


def pods(after: dict[str, float], since: int = 0) -> TinyStore:
    """cpu and memory per pod, one sample a minute, 30 minutes before the onset and 4 after."""
    rows = []
    for minute in range(-30, 4):
        ts = ONSET + timedelta(minutes=minute)
        for pod, service in (("api-7d9f-x1", "api"), ("db-5c4b-y2", "db")):
            cpu = after.get(pod, 1.0) if minute >= since else 1.0 + 0.1 * (minute % 3)
            rows += [
                {
                    "ts": ts,
                    "name": "cpu_usage_rate_percent",
                    "service": service,
                    "value": cpu,
                    "labels": {"pod": pod},
                },
                {
                    "ts": ts,
                    "name": "node_cpu_usage_rate_percent",
                    "service": service,
                    "value": 99.0 if minute >= 0 else 40.0,
                    "labels": {"pod": pod},
                },
                {
                    "ts": ts,
                    "name": "memory_usage_rate_percent",
                    "service": service,
                    "value": 30.0,
                    "labels": {"pod": pod},
                },
            ]
    return TinyStore().add("metrics", rows)


def alert():
    return make_alert("FrontendDegraded", service="web", starts_at=ONSET)


def test_a_pod_at_its_cpu_limit_is_short_of_cpu():
    store = pods({"db-5c4b-y2": 99.5})
    finding = run(cpu_contention, alert=alert(), store=store, params={"service": "db"}).finding
    assert finding.category == "resource" and finding.severity == "critical"
    assert finding.title == "db short of CPU (db-5c4b-y2)"
    assert finding.summary == (
        "cpu_usage_rate_percent of db-5c4b-y2 rose from a usual 1.1 to 99.5 (100% of its limit) "
        "after 12:00 UTC, 83x its usual high."
    )
    assert [str(e) for e in finding.entities] == ["service:db", "pod:db-5c4b-y2"]
    assert finding.confidence == 0.9477
    assert (
        run(cpu_contention, alert=alert(), store=store, params={"service": "api"}).finding is None
    )


def test_busy_but_far_from_the_limit_is_not_a_shortage():
    store = pods({"api-7d9f-x1": 20.0})
    assert (
        run(cpu_contention, alert=alert(), store=store, params={"service": "api"}).finding is None
    )


def test_node_metrics_are_not_the_service_and_memory_stayed_flat():
    store = pods({})
    # node_cpu_usage_rate_percent jumped to 99 but describes the machine, not the service.
    assert run(cpu_contention, alert=alert(), store=store, params={"service": "db"}).finding is None
    assert (
        run(memory_pressure, alert=alert(), store=store, params={"service": "db"}).finding is None
    )
    telemetry = store.telemetry(default_window(alert()))
    assert cpu_services(telemetry) == ["api", "db"]


def test_a_cpu_jump_that_began_before_the_alert_does_not_set_its_own_usual():
    store = pods({"db-5c4b-y2": 99.5}, since=-7)
    finding = run(cpu_contention, alert=alert(), store=store, params={"service": "db"}).finding
    assert finding is not None
    assert finding.summary.endswith("after 11:53 UTC, 83x its usual high.")
