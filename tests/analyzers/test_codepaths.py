"""Code paths: a service whose operation stopped writing a line (and started failing) is found,
and its caller, which only reacts, ranks below it."""

from datetime import timedelta

from casebook.analyzers.codepaths import code_path_change, code_path_survey
from casebook.executor.investigation import run_investigation
from casebook.executor.runtime.local import LocalRuntime
from casebook.sdk.registry import Registry
from casebook.sdk.testing import DEFAULT_START, TinyStore, log, make_alert, run, span

ONSET = DEFAULT_START
CALLS_PER_MINUTE = 4


def shop(broken: bool = True) -> TinyStore:
    """web -> checkout -> payments, 20 minutes before the onset and 5 after.

    After the onset payments stops logging "charge accepted" and most of its calls log an
    error; checkout logs an error of its own when the payment fails.
    """
    spans, logs = [], []
    for minute in range(-20, 5):
        for i in range(CALLS_PER_MINUTE):
            ts = ONSET + timedelta(minutes=minute, seconds=10 * i + 1)
            trace = f"t{minute + 100}{i}"
            failing = broken and minute >= 0
            rows = [
                ("a", "", "web", "GET /buy"),
                ("b", "a", "checkout", "Checkout.buy"),
                ("c", "b", "checkout", "HTTP POST"),
                ("d", "c", "payments", "Pay.charge"),
            ]
            for span_id, parent, service, name in rows:
                spans.append(span(trace, span_id, parent, service, name, ts, 20.0))
            lines = [("d", "payments", "info", "p.Pay#40 charging card 4242")]
            if not failing:
                lines.append(("d", "payments", "info", f"p.Pay#44 charge accepted id={i}"))
            elif i < 3:
                lines.append(("d", "payments", "error", "p.Pay#50 charge failed: bad gateway"))
                lines.append(("b", "checkout", "error", "c.Checkout#20 payment failed"))
            for span_id, service, level, message in lines:
                logs.append(log(ts, service, level, message, trace, span_id))
    return TinyStore().add("spans", spans).add("logs", logs)


def alert():
    return make_alert("CheckoutErrors", service="web", starts_at=ONSET)


def test_the_survey_places_the_service_that_changed_first_and_its_caller_below():
    outcome = run(code_path_survey, alert=alert(), store=shop())
    survey = outcome.finding
    assert survey.suspects == ["payments", "checkout"]
    payments, checkout = survey.placed
    assert payments.explained_by == [] and checkout.explained_by == ["payments"]
    best = survey.changes["payments"][0]
    assert (best.operation, best.anchor, best.kind) == ("Pay.charge", "<call>", "gone")
    assert best.mark == "log: p.Pay#44 charge accepted id=<n>"
    assert survey.category == "symptom" and survey.entities[0].name == "web"


def test_the_judge_blames_the_origin_with_a_code_finding():
    store = shop()
    survey = run(code_path_survey, alert=alert(), store=store).finding
    finding = run(
        code_path_change,
        alert=alert(),
        store=store,
        params={"service": "payments"},
        upstream={"code_path_survey": survey, "network_survey": None},
    ).finding
    assert finding.category == "code" and finding.severity == "critical"
    assert finding.title == "payments changed its code path in Pay.charge"
    assert finding.summary.startswith(
        "Pay.charge: 'log: p.Pay#44 charge accepted id=<n>' stopped (0% of 20 calls after the "
        "onset, usually 98%); none of its callees changed as much."
    )
    assert finding.evidence[0].rows[0][:4] == [
        "Pay.charge",
        "<call>",
        "log: p.Pay#44 charge accepted id=<n>",
        "gone",
    ]
    caller = run(
        code_path_change,
        alert=alert(),
        store=store,
        params={"service": "checkout"},
        upstream={"code_path_survey": survey, "network_survey": None},
    ).finding
    assert caller.severity == "warning" and caller.confidence < finding.confidence
    assert "but its callee payments changed as much or more" in caller.summary


def test_nothing_changed_nothing_found():
    assert run(code_path_survey, alert=alert(), store=shop(broken=False)).finding is None


def test_end_to_end_the_origin_is_the_top_cause():
    registry = Registry()
    registry.load("casebook.analyzers")
    record = run_investigation(
        alert(), registry=registry.checked(), source=shop().source, runtime=LocalRuntime()
    )
    top = record.causes[0]
    assert (top.entity.name, top.category) == ("payments", "code")


def test_a_path_change_behind_a_delayed_link_is_the_links_doing():
    from casebook.analyzers.network import EdgeGap, NetworkSurvey, NetworkSuspect

    store = shop()
    survey = run(code_path_survey, alert=alert(), store=store).finding
    gap = EdgeGap(
        caller="payments", callee="bank", usual_ms=2.0, after_ms=300.0, z=40.0, slowed=True
    )
    delayed = NetworkSurvey(
        title="",
        summary="",
        suspects=["bank"],
        placed=[
            NetworkSuspect(
                service="bank", slowed=1, edges=1, added_ms=298.0, strength=10.0, gaps=[gap]
            )
        ],
    )
    finding = run(
        code_path_change,
        alert=alert(),
        store=store,
        params={"service": "payments"},
        upstream={"code_path_survey": survey, "network_survey": delayed},
    ).finding
    assert finding.severity == "warning" and finding.explained_by == ["bank (network)"]
    assert finding.summary.endswith("but its callee bank (network) changed as much or more.")


def cut_short() -> TinyStore:
    """web's product page calls catalog, then prices, cart and ads, each through a client span
    of its own. From the onset catalog's reply makes web stop right after it (a wrong value
    returned); catalog's own spans look as they always did."""
    spans = []
    for minute in range(-20, 5):
        for i in range(CALLS_PER_MINUTE):
            ts = ONSET + timedelta(minutes=minute, seconds=10 * i + 1)
            trace = f"p{minute + 100}{i}"
            spans.append(span(trace, "a", "", "web", "GET /product", ts, 60.0))
            callees = ["catalog", "prices", "cart", "ads"]
            if minute >= 0 and i < 3:
                callees = callees[:1]
            for n, callee in enumerate(callees):
                start = ts + timedelta(milliseconds=1 + 12 * n)
                spans.append(span(trace, f"c{n}", "a", "web", f"call {callee}", start, 10.0))
                spans.append(span(trace, f"s{n}", f"c{n}", callee, f"serve {callee}", start,
                                  8.0))
    return TinyStore().add("spans", spans).add("logs", [])


def test_callers_cut_short_right_after_a_reply_point_at_the_service_that_replied():
    store = cut_short()
    survey = run(code_path_survey, alert=alert(), store=store).finding
    assert survey.suspects[0] == "catalog"
    web = next(s for s in survey.placed if s.service == "web")
    assert web.explained_by == ["catalog"]
    finding = run(
        code_path_change,
        alert=alert(),
        store=store,
        params={"service": "catalog"},
        upstream={"code_path_survey": survey, "network_survey": None},
    ).finding
    assert finding.category == "code" and finding.severity == "critical"
    assert finding.summary == (
        "web's GET /product now ends right after catalog answers (75% of 20 calls after the "
        "onset, usually 2%); none of its callees changed as much."
    )
    assert finding.evidence[0].rows[0][:2] == ["web: GET /product", "<call>"]


def test_callers_that_give_up_after_a_delayed_reply_are_the_delays_doing():
    from casebook.analyzers.network import EdgeGap, NetworkSurvey, NetworkSuspect

    store = cut_short()
    survey = run(code_path_survey, alert=alert(), store=store).finding
    gap = EdgeGap(caller="web", callee="catalog", usual_ms=2.0, after_ms=900.0, z=40.0,
                  slowed=True)
    delayed = NetworkSurvey(
        title="", summary="", suspects=["catalog"],
        placed=[NetworkSuspect(service="catalog", slowed=1, edges=1, added_ms=898.0,
                               strength=10.0, direction="into", gaps=[gap])],
    )
    finding = run(
        code_path_change,
        alert=alert(),
        store=store,
        params={"service": "catalog"},
        upstream={"code_path_survey": survey, "network_survey": delayed},
    ).finding
    assert finding.severity == "warning" and finding.explained_by == ["catalog (network)"]
