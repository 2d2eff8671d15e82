from datetime import timedelta

from casebook.analyzers.changes import change_event, change_keys
from casebook.sdk.testing import DEFAULT_START, TinyStore, default_window, make_alert, run, span

ALERT = make_alert("HighErrorRate", service="frontend")
T = DEFAULT_START


def canary_store(errors_on_new: bool = True) -> TinyStore:
    store = TinyStore()
    store.add("events", [
        {"ts": T - timedelta(minutes=6), "kind": "deploy", "service": "cart",
         "summary": "cart 2.4.0 to 1 of 3 pods", "attributes": {"version": "2.4.0"}},
        {"ts": T - timedelta(minutes=2), "kind": "config", "service": "search",
         "summary": "search timeout 2s"},
    ])
    rows = []
    for i in range(60):
        ts = T - timedelta(minutes=5) + timedelta(seconds=5 * i)
        version = "2.4.0" if i % 3 == 0 else "2.3.9"
        failed = errors_on_new and version == "2.4.0"
        rows.append(span(f"t{i}", f"f{i}", None, "frontend", "GET /cart", ts, 30.0))
        rows.append(span(f"t{i}", f"c{i}", f"f{i}", "cart", "GetCart", ts, 20.0,
                         "error" if failed else "ok", version=version))
    return store.add("spans", rows)


def test_every_change_in_the_window_is_a_key():
    store = canary_store()
    keys = change_keys(ALERT, store.telemetry(default_window(ALERT)))
    assert [k.split("|", 1)[1] for k in keys] == ["config|search", "deploy|cart"]


def test_a_canary_whose_new_pods_fail_has_a_version_split_and_its_callers():
    store = canary_store()
    key = change_keys(ALERT, store.telemetry(default_window(ALERT)))[1]
    finding = run(change_event, alert=ALERT, store=store, params={"change": key}).finding
    assert finding.category == "deploy"
    assert finding.callers == {"frontend": 1}
    assert finding.version == "2.4.0"
    assert finding.version_split == ("100% of requests on version 2.4.0 failed against 0% on "
                                     "the others")
    assert finding.split_strength >= 0.5
    assert finding.title == "Deploy on cart 6 min before the alert"


def test_a_canary_that_behaves_like_the_old_version_has_no_split():
    store = canary_store(errors_on_new=False)
    key = change_keys(ALERT, store.telemetry(default_window(ALERT)))[1]
    finding = run(change_event, alert=ALERT, store=store, params={"change": key}).finding
    assert finding.version_split is None
    assert finding.split_strength == 0.0


def test_a_canary_is_compared_by_the_version_label_of_cumulative_counters():
    store = TinyStore().add("events", [
        {"ts": T - timedelta(minutes=10), "kind": "deploy", "service": "cart",
         "summary": "cart 2.4.0 canary", "attributes": {"version": "2.4.0"}}])
    rows, totals = [], {}
    for minute in range(-30, 5):
        for pod, version in (("cart-a", "2.3.9"), ("cart-b", "2.3.9"), ("cart-c", "2.4.0")):
            canary = version == "2.4.0"
            if canary and minute < -10:
                continue
            requests, errors = totals.get(pod, (1000.0, 3.0))
            requests += 60
            errors += 30 if canary else 0.5
            totals[pod] = (requests, errors)
            labels = {"pod": pod, "version": version}
            ts = T + timedelta(minutes=minute)
            rows += [{"ts": ts, "name": "http_requests_total", "service": "cart",
                      "value": requests, "labels": labels},
                     {"ts": ts, "name": "http_errors_total", "service": "cart", "value": errors,
                      "labels": labels}]
    store.add("metrics", rows)
    key = change_keys(ALERT, store.telemetry(default_window(ALERT)))[0]
    finding = run(change_event, alert=ALERT, store=store, params={"change": key}).finding
    assert finding.version_split == ("50% of counted requests on version 2.4.0 failed against 1% "
                                     "on the others")
