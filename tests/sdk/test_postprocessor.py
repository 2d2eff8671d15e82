"""@postprocessor: definitions checked at decoration, runs bounded and typed, views read-only."""

import time

import pytest
from pydantic import ValidationError

from casebook.sdk import (
    AnalyzerDefinitionError,
    Annotate,
    InvestigationView,
    Notify,
    postprocessor,
)
from casebook.sdk.testing import make_alert, make_investigation, run_postprocessor

VIEW = make_investigation(
    make_alert("HighErrorRate", service="api", team="web"),
    causes=[("service:db", "capacity"), ("pod:api-1", "resource")],
    findings=[{"analyzer": "pool_exhaustion", "title": "db pool full", "category": "capacity",
               "entities": [{"kind": "service", "name": "db"}]}],
)


def test_definition_problems_are_listed_together_with_their_fix():
    with pytest.raises(AnalyzerDefinitionError) as caught:

        @postprocessor(cause={"service": "db"}, timeout_s=0)
        def two_params(investigation: InvestigationView, extra: int) -> None:
            return None

    text = str(caught.value)
    assert "3 problems in analyzer definitions" in text
    assert "it takes 2 parameters" in text
    assert "take exactly one: `investigation: InvestigationView`" in text
    assert "timeout_s=0" in text
    assert "cause= has unknown key(s) service" in text
    assert "use category, entity, kind, name" in text


def test_matchers_on_labels_causes_and_findings():
    def make(**matchers):
        @postprocessor(**matchers)
        def act(investigation: InvestigationView) -> Annotate:
            return Annotate(text="seen")

        return run_postprocessor(act, VIEW).status

    assert make(match={"team": "web"}) == "applied"
    assert make(match={"team": "payments"}) == "skipped"
    assert make(cause={"category": "resource", "entity": "pod:api-1"}) == "applied"
    assert make(cause={"category": "resource", "entity": "db"}) == "skipped"
    assert make(cause={"name": "db"}) == "applied"
    assert make(finding={"analyzer": "pool_exhaustion", "entity": "service:db"}) == "applied"
    assert make(finding={"category": "deploy"}) == "skipped"


def test_errors_wrong_returns_and_hangs_become_outcomes():
    @postprocessor
    def broken(investigation: InvestigationView) -> None:
        raise RuntimeError("no ticket system today")

    @postprocessor
    def wrong(investigation: InvestigationView):
        return "page everyone"

    @postprocessor(timeout_s=0.2)
    def hangs(investigation: InvestigationView) -> None:
        time.sleep(5)

    assert run_postprocessor(broken, VIEW).error == "RuntimeError: no ticket system today"
    assert run_postprocessor(wrong, VIEW).error == (
        "returned str; return Notify, Annotate, OpenTicket, a list of them, or None"
    )
    hung = run_postprocessor(hangs, VIEW)
    assert (hung.status, hung.error) == ("timeout", "did not return within 0.2 s")


def test_the_view_cannot_be_changed():
    @postprocessor
    def meddle(investigation: InvestigationView) -> Notify:
        investigation.causes[0].category = "deploy"  # type: ignore[misc]
        return Notify(sink="chat", text="changed")

    outcome = run_postprocessor(meddle, VIEW)
    assert outcome.status == "error"
    assert outcome.error.startswith("ValidationError")
    assert VIEW.causes[0].category == "capacity"
    with pytest.raises(ValidationError):
        Notify(sink="chat")  # type: ignore[call-arg]
