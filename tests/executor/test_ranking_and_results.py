from datetime import UTC, datetime

from casebook.executor.narration import narrate_deterministic
from casebook.executor.ranking import rank_causes
from casebook.executor.record import FindingRecord, InvestigationRecord, InvocationRecord
from casebook.executor.results import ResultsStore
from casebook.sdk import Entity, TimeWindow
from casebook.sdk.testing import make_alert


def finding(fid, category, service, confidence=0.8, severity="critical", explains=(),
            minute=0):
    return FindingRecord(id=fid, analyzer=f"a_{fid}", invocation=fid, title=f"t{fid}",
                         summary=f"s{fid}", severity=severity, confidence=confidence,
                         category=category, entities=[Entity.service(service)],
                         onset=datetime(2026, 1, 1, 12, minute, tzinfo=UTC),
                         explains=list(explains))


def test_explained_symptom_ranks_below_its_cause_and_supports_it():
    surge = finding("F1", "capacity", "api", confidence=0.9)
    cache = finding("F2", "cache", "kv", confidence=0.7, explains=["F1"])
    causes = rank_causes([surge, cache])
    assert [(c.category, c.finding_ids) for c in causes][0] == ("cache", ["F2", "F1"])
    assert causes[0].score > rank_causes([cache])[0].score
    assert all(c.category != "capacity" or c.rank > 1 for c in causes)


def test_contributing_causes_stand_together_and_corroboration_adds_up():
    causes = rank_causes([finding("F1", "deploy", "api", 0.6), finding("F2", "deploy", "api", 0.6),
                          finding("F3", "config", "db", 0.7)])
    assert [(c.rank, c.category, c.finding_ids) for c in causes] == [
        (1, "deploy", ["F1", "F2"]), (2, "config", ["F3"])]
    assert causes[0].score > causes[1].score


def test_on_a_tie_the_earlier_onset_wins():
    causes = rank_causes([finding("F1", "capacity", "api", minute=5),
                          finding("F2", "cache", "kv", minute=1)])
    assert causes[0].category == "cache"


def test_what_began_well_before_a_finding_is_not_explained_by_it():
    # A route surge from 12:14 cannot have caused errors from 12:08; the deploy at 12:00 did.
    errors = finding("F1", "code", "auth", confidence=0.6, severity="warning", minute=8)
    deploy = finding("F2", "deploy", "auth", confidence=0.5, explains=["F1"], minute=0)
    surge = finding("F3", "capacity", "auth", confidence=0.6, explains=["F1"], minute=14)
    causes = rank_causes([errors, deploy, surge])
    assert [(c.category, c.finding_ids) for c in causes][:2] == [
        ("deploy", ["F2", "F1"]), ("capacity", ["F3"])]
    # Within three minutes (onsets are a minute or so coarse) the claim stands.
    near = finding("F3", "capacity", "auth", confidence=0.6, explains=["F1"], minute=10)
    assert "F1" in next(c for c in rank_causes([errors, deploy, near])
                        if c.category == "capacity").finding_ids


def test_results_store_round_trip(tmp_path):
    alert = make_alert("Errors", service="api")
    record = InvestigationRecord(
        id="inv-1", alert=alert, window=TimeWindow(start=datetime(2026, 1, 1, 11, tzinfo=UTC),
                                                   end=datetime(2026, 1, 1, 12, tzinfo=UTC)),
        status="done",
        invocations=[InvocationRecord(key="a_F1", analyzer="a_F1", status="found",
                                      duration_ms=1.5)],
        findings=[finding("F1", "code", "api")])
    record.causes = rank_causes(record.findings)
    record.narrative = narrate_deterministic(record)
    with ResultsStore(tmp_path / "r.duckdb") as store:
        store.save(record)
        store.save(record)  # saving again replaces, never duplicates
        again = store.get("inv-1")
        assert again.contract_json() == record.contract_json()
        assert [row["id"] for row in store.list()] == ["inv-1"]
        assert store.get("nope") is None
