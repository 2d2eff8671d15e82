"""SLIs: a latency rise that starts in a database is blamed on it, not on its callers; failures
that start in a service with healthy dependencies are blamed on that service."""

from datetime import timedelta

from casebook.analyzers.slis import (
    LATENCY,
    availability_survey,
    failure_origin,
    indicator_metric,
    latency_origin,
    latency_survey,
)
from casebook.sdk.testing import DEFAULT_START, TinyStore, default_window, make_alert, run

ONSET = DEFAULT_START
USUAL = {"web": 0.100, "api": 0.050, "db": 0.010, "cache": 0.005}
EDGES = [("web", "api"), ("api", "db"), ("web", "cache")]


def nodes(
    after: dict[str, float],
    *,
    name: str = "latency_average",
    history: int = 60,
    usual: dict[str, float] = USUAL,
    noise: float = 0.02,
) -> TinyStore:
    """One sample per node every 5 minutes: `history` before the onset, 3 from it on."""
    rows = []
    for step in range(-history, 3):
        ts = ONSET + timedelta(minutes=5 * step)
        for node, value in usual.items():
            if step >= 0 and node in after:
                value = after[node]
            elif step < 0:
                value = value * (1 + noise * (step % 3))
            rows.append({"ts": ts, "name": name, "service": node, "value": value})
    rows += [{"ts": ONSET, "name": "latency_p99", "service": n, "value": 1.0} for n in USUAL]
    calls = [{"caller": a, "callee": b} for a, b in EDGES]
    return TinyStore().add("metrics", rows).add("calls", calls)


def alert(metric: str = "latency"):
    return make_alert("LatencyHigh", service="web", metric=metric, starts_at=ONSET)


def test_a_slow_database_accounts_for_its_callers():
    store = nodes({"db": 0.200, "api": 0.240, "web": 0.290})
    survey = run(latency_survey, alert=alert(), store=store).finding
    assert survey.metric == "latency_average" and survey.suspects[0] == "db"
    db = survey.placed[0]
    assert db.explained_by == [] and db.accounts_for == ["api", "web"]
    assert {s.service: s.explained_by for s in survey.placed[1:]} == {"api": ["db"], "web": ["api"]}
    finding = run(
        latency_origin,
        alert=alert(),
        store=store,
        params={"service": "db"},
        upstream={"latency_survey": survey},
    ).finding
    assert finding.title == "Latency change starts in db"
    assert finding.summary == (
        "latency_average of db rose from a usual 0.0102 to 0.2, as bad as 1.6% of its history; "
        "it calls nothing that is measured; it accounts for api, web."
    )
    caller = run(
        latency_origin,
        alert=alert(),
        store=store,
        params={"service": "web"},
        upstream={"latency_survey": survey},
    ).finding
    assert caller.severity == "info" and caller.confidence < finding.confidence


def test_failures_starting_in_a_service_with_healthy_dependencies():
    usual = {node: 100.0 for node in USUAL}
    store = nodes(
        {"api": 90.0, "web": 93.0}, name="availability_average", usual=usual, noise=-0.002
    )
    survey = run(availability_survey, alert=alert("availability"), store=store).finding
    assert survey.suspects[0] == "api"
    assert survey.placed[0].confirmed  # it calls db, and db is fine
    finding = run(
        failure_origin,
        alert=alert("availability"),
        store=store,
        params={"service": "api"},
        upstream={"availability_survey": survey},
    ).finding
    assert finding.summary.startswith(
        "availability_average of api fell from a usual 99.8 to 90, as bad as 1.6% of its "
        "history; none of its callees changed as much; it accounts for web."
    )
    # The alert is about availability, so the latency view of the same incident counts less.
    assert finding.category == "other" and finding.severity == "warning"


def test_a_short_recording_compares_with_the_samples_just_before():
    store = nodes({"db": 0.200, "api": 0.240, "web": 0.290}, history=2)
    survey = run(latency_survey, alert=alert(), store=store).finding
    assert survey.short_history and survey.suspects[0] == "db"
    finding = run(
        latency_origin,
        alert=alert(),
        store=store,
        params={"service": "db"},
        upstream={"latency_survey": survey},
    ).finding
    assert "(history too short for a tail test: compared with the samples just before)" in (
        finding.summary
    )


def test_the_indicator_metric_prefers_the_alerts_series_then_the_average():
    store = nodes({})
    telemetry = store.telemetry(default_window(alert()))
    assert indicator_metric(telemetry, alert(), LATENCY) == "latency_average"
    named = make_alert("X", annotations={"series": "latency_p99"}, starts_at=ONSET)
    assert indicator_metric(telemetry, named, LATENCY) == "latency_p99"


def test_no_change_no_survey():
    assert run(latency_survey, alert=alert(), store=nodes({})).finding is None


def test_a_short_history_of_24_samples_still_fires_when_worse_than_all_of_it():
    store = nodes({"db": 0.200, "api": 0.240, "web": 0.290}, history=24)
    survey = run(latency_survey, alert=alert(), store=store).finding
    assert survey is not None and survey.suspects[0] == "db"
    assert survey.changes["db"].rarity == round(1 / 25, 5)
