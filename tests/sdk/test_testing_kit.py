from datetime import timedelta

from casebook.sdk import Entity, Finding, Telemetry, analyzer
from casebook.sdk.testing import DEFAULT_START, TinyStore, make_alert, run


class Burst(Finding):
    errors: int


class Blame(Finding):
    culprit: str


@analyzer(match={"alertname": "Errors"})
def error_burst(telemetry: Telemetry, service: str) -> Burst | None:
    n = telemetry.sql("select count(*) from logs where service = ? and level = 'error'",
                      [service]).scalar()
    if n < 3:
        return None
    return Burst(title="errors", summary=f"{n} errors on {service}",
                 entities=[Entity.service(service)], errors=n)


@analyzer
def blame(error_burst: Burst, service: str) -> Blame | None:
    return Blame(title="blame", summary=f"{service} after {error_burst.errors}", culprit=service)


@analyzer
def raises(telemetry: Telemetry) -> Burst | None:
    raise RuntimeError("disk on fire")


@analyzer
def wrong_type(telemetry: Telemetry) -> Burst | None:
    return {"title": "not a finding"}  # type: ignore[return-value]


@analyzer(timeout_s=0.2)
def slow_sql(telemetry: Telemetry) -> Burst | None:
    telemetry.sql("select count(*) from range(1000000000) a, range(1000) b")
    return None


def errors(n):
    return [{"ts": DEFAULT_START - timedelta(minutes=1), "service": "api", "level": "error",
             "message": "x"}] * n


def test_runner_fills_labels_and_returns_the_finding():
    outcome = run(error_burst, alert=make_alert("Errors", service="api"),
                  store=TinyStore().add("logs", errors(4)))
    assert outcome.status == "found"
    assert outcome.finding.errors == 4
    assert outcome.params == {"service": "api"}
    assert outcome.queries == 1


def test_nothing_notable_is_not_an_error():
    outcome = run(error_burst, alert=make_alert("Errors", service="api"),
                  store=TinyStore().add("logs", errors(1)))
    assert outcome.status == "nothing" and outcome.error is None


def test_stubbed_upstream_findings():
    stub = Burst(title="t", summary="s", errors=9)
    outcome = run(blame, alert=make_alert(service="api"), upstream={"error_burst": stub})
    assert outcome.finding.summary == "api after 9"
    skipped = run(blame, alert=make_alert(service="api"), upstream={"error_burst": None})
    assert skipped.status == "skipped"
    assert skipped.error == "upstream analyzer 'error_burst' found nothing"


def test_exceptions_and_wrong_return_types_are_contained():
    outcome = run(raises)
    assert outcome.status == "error"
    assert outcome.error.startswith("RuntimeError: disk on fire")
    wrong = run(wrong_type)
    assert wrong.status == "error"
    assert wrong.error == ("returned dict, expected Burst or None; return Burst(...) when "
                           "something is notable, None otherwise")


def test_slow_sql_is_interrupted_at_the_timeout():
    outcome = run(slow_sql)
    assert outcome.status == "timeout"
    assert outcome.duration_ms < 5000
    assert "timed out after 0.2 s" in outcome.error


def test_missing_parameter_names_the_label_and_the_fixes():
    import pytest

    from casebook.sdk.invocation import ParameterError

    with pytest.raises(ParameterError) as caught:
        run(error_burst, alert=make_alert("Errors"))
    assert str(caught.value) == (
        "no value for parameter 'service': the alert has no label 'service' and nothing fanned "
        "out over it; add the label to the alert rule, give the parameter a default, or declare "
        "fan_out={'service': ...}")
