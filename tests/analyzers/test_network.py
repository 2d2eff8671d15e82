"""Network: delay on one service's link widens the client-server gaps of its own edges; its
peers, which see only the edge to it, are not blamed."""

from datetime import timedelta

import pytest

from casebook.analyzers.network import network_delay, network_survey
from casebook.analyzers.resources import ResourceShortage
from casebook.sdk.testing import DEFAULT_START, TinyStore, make_alert, run, span

ONSET = DEFAULT_START


def traffic(delay_ms: float = 100.0, per_minute: int = 4, minutes: int = 8,
            after: int = 4, minutes_after: int = 4) -> TinyStore:
    """web -> api -> db and web -> auth, `minutes` before the onset and `after` a minute for
    `minutes_after` after; from the onset every packet to or from api waits `delay_ms` more."""
    spans = []
    for minute in range(-minutes, minutes_after):
        for i in range(per_minute if minute < 0 else after):
            ts = ONSET + timedelta(minutes=minute, seconds=10 * i + 1)
            trace = f"t{minute + 100}{i}"
            extra = delay_ms if minute >= 0 else 0.0
            wire = 2.0 + 0.1 * (i % 2)
            rows = [
                ("a", "", "web", "GET /", 400.0),
                ("b", "a", "web", "HTTP GET", 150.0 + 20.0 + wire * 2 + extra * 2),
                ("c", "b", "api", "GET /items", 150.0 + 20.0 + wire + extra),
                ("d", "c", "api", "HTTP GET", 20.0 + wire + extra),
                ("e", "d", "db", "SELECT items", 20.0),
                ("f", "a", "web", "HTTP POST", 30.0 + wire),
                ("g", "f", "auth", "POST /check", 30.0),
            ]
            for span_id, parent, service, name, duration in rows:
                spans.append(span(trace, span_id, parent, service, name, ts, duration))
    return TinyStore().add("spans", spans)


def alert():
    return make_alert("FrontendSlow", service="web", starts_at=ONSET)


def test_the_delayed_service_is_the_one_whose_edges_all_slowed():
    survey = run(network_survey, alert=alert(), store=traffic()).finding
    # web saw one edge of two slow down, db its only edge: both lead to api, which has more.
    assert survey.suspects == ["api"]
    api = survey.placed[0]
    assert (api.slowed, api.edges, api.added_ms) == (2, 2, 100.0)
    assert survey.title == "Calls to and from api spend longer on the network"


def test_the_judge_names_the_delay_and_a_starved_cpu_lowers_it():
    store = traffic()
    survey = run(network_survey, alert=alert(), store=store).finding
    finding = run(
        network_delay,
        alert=alert(),
        store=store,
        params={"service": "api"},
        upstream={"network_survey": survey, "cpu_contention": None},
    ).finding
    assert finding.category == "network" and finding.severity == "critical"
    assert finding.summary == (
        "2 of 2 edges into or out of api spend a median 100 ms more between client and server "
        "since the onset, while the servers' own time did not grow by as much."
    )
    starved = ResourceShortage(
        title="api short of CPU",
        summary="",
        service="api",
        pod="api-1",
        metric="cpu_usage_rate_percent",
        usual=1.0,
        peak=99.0,
        ratio=90.0,
    )
    lowered = run(
        network_delay,
        alert=alert(),
        store=store,
        params={"service": "api"},
        upstream={"network_survey": survey, "cpu_contention": starved},
    ).finding
    assert lowered.severity == "warning"
    assert lowered.confidence == pytest.approx(finding.confidence * 0.5, abs=1e-3)
    assert lowered.summary.endswith("; api is also short of CPU, which slows its network I/O too.")


def test_small_or_no_widening_is_not_a_delay():
    assert run(network_survey, alert=alert(), store=traffic(delay_ms=0.0)).finding is None
    assert run(network_survey, alert=alert(), store=traffic(delay_ms=3.0)).finding is None


def sequential_calls(first_ms_after: float) -> TinyStore:
    """web calls cart, then (when cart answers) pricing; from the onset cart itself is slow."""
    spans = []
    for minute in range(-8, 4):
        for i in range(4):
            ts = ONSET + timedelta(minutes=minute, seconds=10 * i + 1)
            first = first_ms_after if minute >= 0 else 20.0
            wire = 2.0 + 0.1 * (i % 2)
            second_start = ts + timedelta(milliseconds=first + 2 * wire)
            trace = f"s{minute + 100}{i}"
            spans += [
                span(trace, "a", "", "web", "GET /", ts, first + 30.0 + 4 * wire),
                span(trace, "b", "a", "cart", "GetCart", ts + timedelta(milliseconds=wire),
                     first),
                span(trace, "c", "a", "pricing", "Quote",
                     second_start + timedelta(milliseconds=wire), 30.0),
            ]
    return TinyStore().add("spans", spans)


def test_a_slow_first_call_is_not_network_delay_on_the_sibling_called_after_it():
    assert run(network_survey, alert=alert(), store=sequential_calls(400.0)).finding is None


def one_way(delayed: str) -> TinyStore:
    """web calls api, auth, cart and search (one client span each, the server span inside it);
    api calls db. From the onset `delayed`'s own replies (`replies`) or web's requests
    (`requests`) wait 200 ms more on the wire, as shaping one port or one direction does."""
    spans = []
    callees = ["api", "auth", "cart", "search"]
    for minute in range(-8, 4):
        for i in range(4):
            ts = ONSET + timedelta(minutes=minute, seconds=10 * i + 1)
            trace = f"w{minute + 100}{i}"
            late = minute >= 0
            wire = 2.0 + 0.1 * (i % 2)
            spans.append(span(trace, "root", "", "web", "GET /", ts, 900.0))
            for n, callee in enumerate(callees):
                reply = 200.0 if late and delayed == "replies" and callee == "api" else 0.0
                request = 200.0 if late and delayed == "requests" else 0.0
                work = 30.0 if callee == "api" else 10.0
                start = ts + timedelta(milliseconds=1 + 220 * n)
                spans.append(span(trace, f"c{n}", "root", "web", f"call {callee}", start,
                                  work + 2 * wire + reply + request))
                spans.append(span(trace, f"s{n}", f"c{n}", callee, f"serve {callee}",
                                  start + timedelta(milliseconds=wire + request), work))
                if callee == "api":
                    spans.append(span(trace, "d", f"s{n}", "api", "query db",
                                      start + timedelta(milliseconds=wire + 2), 10.0 + wire))
                    spans.append(span(trace, "e", "d", "db", "SELECT",
                                      start + timedelta(milliseconds=2 * wire + 2), 10.0))
    return TinyStore().add("spans", spans)


def test_delay_on_a_services_replies_only_is_found_on_its_incoming_edges():
    survey = run(network_survey, alert=alert(), store=one_way("replies")).finding
    # Only web -> api widened; api's own call to db did not (its requests go out on time).
    # web's three other calls stayed as they were, which pins the delay to api's side.
    assert survey.suspects == ["api"]
    api = survey.placed[0]
    assert (api.direction, api.slowed, api.edges, api.added_ms) == ("into", 1, 1, 200.0)
    assert survey.summary.startswith(
        "1 of 1 service-to-service edges into api widened by a median 200 ms"
    )
    finding = run(
        network_delay,
        alert=alert(),
        store=one_way("replies"),
        params={"service": "api"},
        upstream={"network_survey": survey, "cpu_contention": None},
    ).finding
    assert finding.summary.startswith("1 of 1 edges into api spend a median 200 ms more")


def test_delay_on_a_callers_requests_is_the_caller_not_each_callee():
    survey = run(network_survey, alert=alert(), store=one_way("requests")).finding
    # Every call web makes widened; each callee sees only its one edge from web.
    assert survey.suspects == ["web"]
    assert (survey.placed[0].direction, survey.placed[0].slowed) == ("out of", 4)


def test_sampled_traces_with_a_call_a_minute_still_show_the_delay():
    # One kept trace a minute: no minute has the three calls a per-minute median needs.
    survey = run(network_survey, alert=alert(), store=traffic(per_minute=1, minutes=20)).finding
    assert survey.suspects == ["api"]
    assert run(network_survey, alert=alert(),
               store=traffic(per_minute=1, minutes=6)).finding is None  # too few to know


def test_one_sampled_call_after_the_onset_shows_a_delay_that_stands_out():
    # A small service in sampled traces: a single call since the onset, 100 ms on the wire
    # where it used to be 2.
    one = traffic(per_minute=1, minutes=20, after=1, minutes_after=1)
    assert run(network_survey, alert=alert(), store=one).finding.suspects == ["api"]


def test_the_split_is_where_the_alerted_latency_rose_not_the_alert():
    # The alert fires four minutes after the delay began, when no sampled call has come since.
    late = make_alert("FrontendSlow", service="web", starts_at=ONSET + timedelta(minutes=4))
    p95 = [{"ts": ONSET + timedelta(minutes=m), "name": "latency_p95_ms", "service": "web",
            "value": 300.0 if m >= 0 else 100.0 + m % 3} for m in range(-40, 8)]
    assert run(network_survey, alert=late, store=traffic(per_minute=1, minutes=20)) \
        .finding is None
    store = traffic(per_minute=1, minutes=20).add("metrics", p95)
    survey = run(network_survey, alert=late, store=store).finding
    assert survey.suspects == ["api"] and survey.onset == ONSET


def test_two_slow_calls_on_a_single_edge_are_not_yet_a_delayed_link():
    # web -> auth once a minute; since the onset two calls waited 120 ms on the wire: a queue
    # or a pause at either end as much as a link, and nothing else of auth's to confirm it.
    spans = []
    for minute in range(-20, 2):
        ts = ONSET + timedelta(minutes=minute, seconds=1)
        wire = 120.0 if minute >= 0 else 2.0
        spans += [span(f"t{minute}", "a", "", "web", "GET /", ts, 400.0),
                  span(f"t{minute}", "f", "a", "web", "HTTP POST", ts, 30.0 + wire),
                  span(f"t{minute}", "g", "f", "auth", "POST /check", ts, 30.0)]
    assert run(network_survey, alert=alert(), store=TinyStore().add("spans", spans)) \
        .finding is None
