from datetime import UTC, datetime, timedelta

from casebook.executor.attribution import attribute_changes
from casebook.executor.ranking import rank_causes
from casebook.executor.record import FindingRecord
from casebook.sdk.models import Entity

ONSET = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def change(fid, service, minutes_before, kind="deploy", callers=None, split=0.0, callees=None):
    at = ONSET - timedelta(minutes=minutes_before)
    return FindingRecord(
        id=fid, analyzer="change_event", invocation=fid, title=f"{kind} on {service}",
        summary=f"{kind} on {service}.", severity="info", confidence=0.2,
        category={"deploy": "deploy", "config": "config", "flag": "flag"}[kind],
        entities=[Entity.service(service)], onset=at,
        facts={"service": service, "kind": kind, "at": at.isoformat(), "attributable": True,
               "callers": callers or {}, "callees": callees or {}, "split_strength": split},
    )


def anomaly(fid, service, category, minutes_after=0.0, confidence=0.8, severity="critical"):
    return FindingRecord(
        id=fid, analyzer=f"a_{fid}", invocation=fid, title=f"{category} on {service}",
        summary="", severity=severity, confidence=confidence, category=category,
        entities=[Entity.service(service)], onset=ONSET + timedelta(minutes=minutes_after),
    )


def ranked(findings):
    attribute_changes(findings)
    return [(c.entity.name, c.category) for c in rank_causes(findings)]


def test_a_deploy_before_a_new_exception_is_the_cause_with_the_exception_as_evidence():
    findings = [change("F1", "checkout", 2, callers={"frontend": 1}),
                anomaly("F2", "checkout", "code"),
                anomaly("F3", "frontend", "symptom", minutes_after=1)]
    assert ranked(findings)[0] == ("checkout", "deploy")
    cause = rank_causes(findings)[0]
    assert set(cause.finding_ids) == {"F1", "F2", "F3"}
    assert findings[0].explains == ["F2", "F3"]
    assert "precedes and explains 2 anomalies" in findings[0].summary


def test_a_harmless_config_push_after_the_onset_is_ruled_out_and_the_deploy_wins():
    findings = [change("F1", "checkout", 10),
                change("F2", "checkout", -3, kind="config"),
                anomaly("F3", "checkout", "code", minutes_after=-8)]
    assert ranked(findings)[0] == ("checkout", "deploy")
    assert findings[1].facts["ruled_out"].startswith("it came 11 min after the onset of \"code on checkout\"")
    assert "Ruled out" in findings[1].summary


def test_a_change_on_a_quiet_service_does_not_take_its_callers_symptoms():
    findings = [change("F1", "search", 1, callers={"frontend": 1}),
                anomaly("F2", "db", "resource"),
                anomaly("F3", "frontend", "symptom", minutes_after=1)]
    assert ranked(findings)[0] == ("db", "resource")
    assert findings[0].explains == []


def test_a_version_split_ties_a_canary_to_its_callers_without_a_local_anomaly():
    findings = [change("F1", "cart", 3, callers={"frontend": 1}, split=0.8),
                anomaly("F2", "frontend", "symptom", minutes_after=0)]
    assert ranked(findings)[0] == ("cart", "deploy")


def test_an_attributed_change_is_listed_even_far_below_the_top_cause():
    findings = [change("F1", "cart", 15, kind="flag"),
                anomaly("F2", "cart", "symptom", confidence=0.3, severity="info"),
                anomaly("F3", "db", "resource", confidence=0.95)]
    causes = ranked(findings)
    assert causes[0] == ("db", "resource")
    assert ("cart", "flag") in causes


def test_a_leak_that_begins_right_after_a_release_ties_back_to_it():
    findings = [change("F1", "orders", 4, callers={"api": 1}),
                anomaly("F2", "orders", "resource", minutes_after=-2),
                anomaly("F3", "api", "symptom", minutes_after=30)]
    assert ranked(findings)[0] == ("orders", "deploy")


def test_a_change_on_a_caller_whose_callee_failed_first_does_not_explain_the_callers_errors():
    findings = [change("F1", "web", 2, kind="config", callees={"fx": 1}),
                anomaly("F2", "fx", "security", minutes_after=0),
                anomaly("F3", "web", "code", minutes_after=0.5)]
    assert ranked(findings)[0] == ("fx", "security")
    assert findings[0].explains == []


def test_a_location_only_finding_joins_the_cause_found_on_its_service():
    findings = [anomaly("F1", "pricing", "capacity", confidence=0.55),
                anomaly("F2", "pricing", "other", confidence=0.6, severity="warning"),
                anomaly("F3", "search", "other", confidence=0.7, severity="warning")]
    causes = rank_causes(findings)
    assert [(c.entity.name, c.category, c.finding_ids) for c in causes][:2] == [
        ("pricing", "capacity", ["F1", "F2"]), ("search", "other", ["F3"])]


def test_a_finding_claimed_by_several_supports_only_the_claim_on_its_own_service():
    hot = anomaly("F3", "feed", "resource", confidence=0.95)
    findings = [anomaly("F1", "feed", "capacity", confidence=0.55),
                anomaly("F2", "locale", "capacity", confidence=0.55), hot]
    findings[0].explains = ["F3"]
    findings[1].explains = ["F3"]
    causes = rank_causes(findings)
    assert (causes[0].entity.name, causes[0].finding_ids) == ("feed", ["F1", "F3"])
    assert next(c for c in causes if c.entity.name == "locale").finding_ids == ["F2"]


def test_a_change_on_a_client_does_not_take_the_errors_an_expired_certificate_explains():
    """auth's certificate expired; payment (which calls auth) had a flag push 6 minutes
    earlier, and its x509 errors are the certificate's, not the flag's."""
    cert = anomaly("F2", "auth", "security", confidence=0.9)
    errors = anomaly("F3", "payment", "code", minutes_after=0.5, confidence=0.6,
                     severity="warning")
    cert.explains = ["F3"]
    findings = [change("F1", "payment", 6, kind="flag"), cert, errors]
    assert ranked(findings)[0] == ("auth", "security")
    assert findings[0].explains == []


def test_a_change_on_a_callee_does_not_take_the_retry_storm_of_its_caller():
    """report fails by itself and its callers retry it (a retry storm, `dependency`); a deploy
    on identity, which report calls, does not explain that."""
    findings = [change("F1", "identity", 4, callers={"report": 1, "edge": 2}),
                anomaly("F2", "identity", "other", minutes_after=0.5, confidence=0.5,
                        severity="warning"),
                anomaly("F3", "report", "dependency", confidence=0.85)]
    assert ranked(findings)[0] == ("report", "dependency")
    assert "F3" not in findings[0].explains


def test_two_findings_of_one_cause_that_claim_the_same_finding_both_count():
    """A route surge and the traffic surge on the same service both explain a database's CPU
    shortage: one cause claims it, so it supports that cause."""
    route = anomaly("F1", "orders", "capacity", confidence=0.6, severity="warning")
    traffic = anomaly("F2", "orders", "capacity", confidence=0.5, severity="warning")
    cpu = anomaly("F3", "orders-db", "resource", minutes_after=1, confidence=0.95)
    route.explains = traffic.explains = ["F3"]
    causes = rank_causes([route, traffic, cpu])
    assert (causes[0].entity.name, causes[0].category) == ("orders", "capacity")
    assert "F3" in causes[0].finding_ids
