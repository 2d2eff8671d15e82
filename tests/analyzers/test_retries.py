"""Retries: the root of a retry storm is the small failing dependency, not the caller with the
most errors."""

from datetime import timedelta

from casebook.analyzers.retries import retry_storm
from casebook.sdk.testing import DEFAULT_START, TinyStore, make_alert, run, span

ONSET = DEFAULT_START
ALERT = make_alert("ApiErrors", service="api", starts_at=ONSET)


def traces() -> TinyStore:
    """api calls flags once per request; from the onset flags fails and api tries 4 times."""
    rows = []
    for i in range(-30, 10):
        for j in range(3):
            ts = ONSET + timedelta(minutes=i, seconds=10 * j)
            trace = f"t{i}-{j}"
            failing = i >= 0
            rows.append(span(trace, "a", None, "api", "GET /home", ts, 50.0,
                             "error" if failing else "ok"))
            for attempt in range(4 if failing else 1):
                rows.append(span(trace, f"f{attempt}", "a", "flags", "Evaluate", ts, 5.0,
                                 "error" if failing else "ok"))
    return TinyStore().add("spans", rows)


def counters() -> TinyStore:
    """No traces: flags serves 20 a minute, 80 from the onset, 75 of them failing."""
    rows = []
    for minute in range(-30, 10):
        ts = ONSET + timedelta(minutes=minute)
        after = minute >= 0
        for service, requests, errors in (("api", 500, 300 if after else 1),
                                          ("flags", 80 if after else 20, 75 if after else 0)):
            rows += [{"ts": ts, "name": "http_requests_total", "service": service,
                      "value": float(requests)},
                     {"ts": ts, "name": "http_errors_total", "service": service,
                      "value": float(errors)}]
    return TinyStore().add("metrics", rows)


def test_retries_in_the_traces_point_at_the_failing_dependency():
    finding = run(retry_storm, alert=ALERT, store=traces()).finding
    assert finding.title == "Retry storm on flags"
    assert finding.category == "dependency" and finding.retry_factor == 3.308
    assert finding.summary == ("flags failed 93% of its calls after 11:57 UTC and its callers "
                               "retried: 3.3x the usual calls per calling span.")


def test_without_traces_the_counters_point_at_the_failing_dependency():
    finding = run(retry_storm, alert=ALERT, store=counters()).finding
    assert finding.dependency == "flags" and finding.source == "request rate"


def test_no_retries_no_storm():
    store = TinyStore().add("spans", [span("t", "a", None, "api", "GET", ONSET, 5.0)])
    assert run(retry_storm, alert=ALERT, store=store).finding is None


def sampled(failing_callee: str | None = None) -> list[dict]:
    """api calls flags once per request (12 sampled traces before the onset, 2 after); with
    `failing_callee`, flags calls ledger, which fails from the onset, and api retries 4 times."""
    rows = []
    for i in range(-12, 2):
        ts = ONSET + timedelta(minutes=2 * i)
        trace, after = f"s{i}", i >= 0
        failing = after and failing_callee is not None
        rows.append(span(trace, "a", None, "api", "GET /home", ts, 50.0,
                         "error" if failing else "ok"))
        for attempt in range(4 if failing else 1):
            rows.append(span(trace, f"f{attempt}", "a", "flags", "Evaluate", ts, 5.0,
                             "error" if failing else "ok"))
            if failing_callee:
                rows.append(span(trace, f"l{attempt}", f"f{attempt}", failing_callee, "Read",
                                 ts, 2.0, "error" if failing else "ok"))
    return rows


def rates(flags_after: float, api_after: float = 500.0, failing: float = 0.45,
          usual: float = 0.0) -> list[dict]:
    """flags serves 20 requests a minute and fails `usual` of them; from five minutes before
    the alert `flags_after`, `failing` of them failing; api serves 500 a minute, then
    `api_after` with 30% failing."""
    rows = []
    for minute in range(-30, 10):
        ts = ONSET + timedelta(minutes=minute)
        after = minute >= -5
        for service, requests, errors in (
                ("api", api_after if after else 500.0, 0.3 * api_after if after else 1.0),
                ("flags", flags_after if after else 20.0,
                 failing * flags_after if after else usual * 20.0)):
            rows += [{"ts": ts, "name": "http_requests_total", "service": service,
                      "value": requests},
                     {"ts": ts, "name": "http_errors_total", "service": service,
                      "value": errors}]
    return rows


def test_a_request_rate_that_outgrew_its_callers_is_a_storm_below_the_jump_alone():
    store = TinyStore().add("metrics", rates(flags_after=30.0)).add("spans", sampled())
    finding = run(retry_storm, alert=ALERT, store=store).finding
    assert finding.dependency == "flags" and finding.source == "request rate"
    assert finding.retry_factor == 1.5 and finding.summary.startswith(
        "flags failed 45% of its calls after 11:55 UTC")
    # The same rise, with a caller that sent as much more, is demand.
    busy = TinyStore().add("metrics", rates(flags_after=30.0, api_after=800.0)) \
        .add("spans", sampled())
    assert run(retry_storm, alert=ALERT, store=busy).finding is None


def test_a_dependency_failing_because_its_own_callee_fails_is_not_the_root():
    store = TinyStore().add("spans", sampled(failing_callee="ledger") * 1)
    assert run(retry_storm, alert=ALERT, store=store).finding is None


def test_a_small_dependency_newly_failing_a_quarter_of_its_calls_is_a_storm():
    # A dependency failing 30% of its attempts shows 20-35% in a few requests a minute.
    store = TinyStore().add("metrics", rates(flags_after=30.0, failing=0.25)) \
        .add("spans", sampled())
    finding = run(retry_storm, alert=ALERT, store=store).finding
    assert finding.dependency == "flags" and finding.summary.startswith(
        "flags failed 25% of its calls after 11:55 UTC")
    # The same share, from a service that failed a tenth of its calls before, is its usual.
    usual = TinyStore().add("metrics", rates(flags_after=30.0, failing=0.25, usual=0.1)) \
        .add("spans", sampled())
    assert run(retry_storm, alert=ALERT, store=usual).finding is None
