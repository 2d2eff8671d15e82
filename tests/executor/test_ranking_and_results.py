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
