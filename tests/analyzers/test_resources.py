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


def series(cpu: dict[int, float], first: int = -30) -> TinyStore:
    """One pod's CPU (percent of its limit), a sample a minute from `first` to 3 after the
    onset: 1-3% except at the minutes given."""
    rows = [
        {
            "ts": ONSET + timedelta(minutes=minute),
            "name": "cpu_usage_rate_percent",
            "service": "db",
            "value": cpu.get(minute, 1.0 + minute % 3),
            "labels": {"pod": "db-5c4b-y2"},
        }
        for minute in range(first, 4)
    ]
    return TinyStore().add("metrics", rows)


def contention(store: TinyStore):
    return run(cpu_contention, alert=alert(), store=store, params={"service": "db"}).finding


def test_an_earlier_episode_in_the_history_does_not_hide_the_same_trouble_again():
    # The same pod ran at its limit for five minutes a quarter of an hour earlier.
    earlier = {m: 96.0 for m in range(-20, -15)}
    finding = contention(series({**earlier, 1: 95.0, 2: 97.0, 3: 96.0}))
    assert finding is not None
    assert finding.summary == (
        "cpu_usage_rate_percent of db-5c4b-y2 rose from a usual 2 to 97 (97% of its limit) "
        "after 12:00 UTC, 32x its usual high."
    )
    # A history that is at its limit half the time is simply busy.
    busy = {m: 96.0 for m in range(-30, 0, 2)}
    assert contention(series({**busy, 1: 95.0, 2: 97.0, 3: 96.0})) is None


def test_one_stray_sample_after_the_onset_is_not_a_shortage():
    assert contention(series({2: 99.0})) is None


def test_a_short_history_is_compared_at_its_highest():
    finding = contention(series({-2: 10.0, -1: 12.0, 0: 11.0, 1: 90.0, 2: 88.0, 3: 91.0}, -2))
    assert finding is not None and finding.confidence == round((0.5 + 0.45 * 0.91) * 0.8, 4)
    assert contention(series({-2: 40.0, -1: 45.0, 0: 41.0, 1: 90.0, 2: 88.0, 3: 91.0}, -2)) is None


def test_a_shortage_over_before_the_window_ends_counts_for_less():
    lasting = contention(series({m: 96.0 for m in range(-6, 4)}))
    over = contention(series({m: 96.0 for m in range(-6, 1)}))
    assert over.confidence == round(lasting.confidence * 0.5, 4)
    assert over.summary.endswith("its usual high; it was back to 1 by 12:03.")
