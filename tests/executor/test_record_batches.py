"""Records made many at once, and from findings shipped back by workers, read exactly as records
made one by one from the findings themselves."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

from casebook.executor.planner import Task
from casebook.executor.record import FindingRecord, InvocationRecord, invocation_records
from casebook.executor.shipped import (
    ResultColumns,
    confidence_of,
    followups_of,
    found,
    model_of,
    record_fields,
)
from casebook.sdk import Entity, Finding
from casebook.sdk.invocation import Outcome, Status
from casebook.sdk.models import Evidence, FollowUp, Mitigation

SECRET = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"


def rows() -> list[dict]:
    return [
        {"key": f'probe{{"service":"svc-{i}","token":"{SECRET}"}}', "analyzer": "probe",
         "params": {"service": f"svc-{i}", "token": SECRET, "limit": i, "ratio": 0.5,
                    "nested": {"note": f"charge with {SECRET}"}},
         "status": "error" if i % 2 else "found", "duration_ms": 1.25 * i,
         "error": f"failed with {SECRET}" if i % 2 else None, "depth": i % 3,
         "parent": f'walk{{"service":"{SECRET}"}}' if i else None, "queries": i,
         "rows_read": 10 * i, "wave": 1, "started_ms": 0.5 * i}
        for i in range(5)
    ]


def test_batch_records_match_validated_records_byte_for_byte():
    made = invocation_records(rows())
    one_by_one = [InvocationRecord(**row) for row in rows()]
    assert [r.model_dump_json() for r in made] == [r.model_dump_json() for r in one_by_one]
    assert all(SECRET not in r.model_dump_json() for r in made)
    assert made[1].error == "failed with [redacted stripe-key]"
    assert made[1].params["nested"] == {"note": "charge with [redacted stripe-key]"}


def test_batch_records_accept_a_later_change_of_a_field():
    record = invocation_records(rows())[0]
    record.status = "timeout"
    assert record.status == "timeout"
    assert "status" in record.model_fields_set


class Probe(Finding):
    service: str


class Leak(Finding):
    service: str
    growth_mb: float
    samples: list[int]


def leak() -> Leak:
    onset = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    return Leak(
        title=f"checkout leaks memory ({SECRET})", summary="heap grows 40 MB a minute",
        severity="critical", confidence=0.7, category="resource",
        entities=[Entity.service("checkout"), Entity(kind="pod", name="checkout-1")],
        evidence=[Evidence(query="select 1", params=[onset, 3], columns=["a"], rows=[[1]],
                           series={"heap": [(onset, 1.5)]}, note="sample")],
        mitigations=[Mitigation(action="restart checkout", risk="low")],
        followups=[FollowUp(analyzer="heap_dump", params={"service": "checkout"})],
        onset=onset, explains=["latency"], service="checkout", growth_mb=40.0, samples=[1, 2],
    )


def test_a_shipped_finding_makes_the_same_record_as_the_model():
    direct = Outcome("leak", "leak", {}, Status.FOUND, finding=leak())
    columns = pickle.loads(pickle.dumps(ResultColumns.of([direct])))
    task = Task("leak", "leak", {}, {}, 5.0)
    (shipped,) = columns.outcomes([task])
    assert model_of(shipped) == leak()  # what an analyzer reading it upstream receives

    def record(outcome) -> str:
        fields = record_fields(outcome)
        fields.pop("explains")
        return FindingRecord(id="F1", analyzer="leak", invocation="leak", **fields).model_dump_json()

    made = record(shipped)
    assert made == record(direct)
    assert SECRET not in made
    assert followups_of(shipped) == followups_of(direct) == [("heap_dump", {"service": "checkout"})]
    assert found(shipped) and confidence_of(shipped) == 0.7


def test_only_findings_another_analyzer_reads_travel_with_their_model():
    read = Outcome("leak", "leak", {}, Status.FOUND, finding=leak())
    unread = Outcome("leak2", "leak_twin", {}, Status.FOUND, finding=leak())
    columns = pickle.loads(pickle.dumps(ResultColumns.of([read, unread], read={"leak"})))
    kept, dropped = columns.outcomes([Task("leak", "leak", {}, {}, 5.0),
                                      Task("leak2", "leak_twin", {}, {}, 5.0)])
    assert model_of(kept) == leak()
    assert followups_of(dropped) == [("heap_dump", {"service": "checkout"})]
    assert record_fields(dropped) == record_fields(kept)
    try:
        model_of(dropped)
    except LookupError as exc:
        assert "no analyzer of the registry reads its analyzer" in str(exc)
    else:
        raise AssertionError("a finding sent without its model gave one")


def test_a_secret_in_an_argument_is_redacted_in_the_stored_key_and_everywhere_it_goes():
    """Keys are redacted pair by pair; a secret passed as a parameter still never leaves."""
    from casebook.executor.investigation import run_investigation
    from casebook.executor.runtime.local import LocalRuntime
    from casebook.sdk import analyzer
    from casebook.sdk.analyzer import spec_of
    from casebook.sdk.registry import Registry
    from casebook.sdk.testing import TinyStore, make_alert

    @analyzer(name="token_probe")
    def token_probe(service: str, token: str) -> Probe:
        """Finds something for the service, with the token it was given."""
        return Probe(title=f"{service} probed", summary="probed", category="code",
                     confidence=0.5, entities=[Entity.service(service)], service=service)

    @analyzer(name="dsn_probe")
    def dsn_probe(service: str, dsn: str) -> Probe | None:
        """Nothing, for a data source name with a password in it."""
        return None

    registry = Registry()
    registry.add(spec_of(token_probe))
    registry.add(spec_of(dsn_probe))
    dsn = "postgres://orders:pg-Sup3rSecret@db.internal:5432/orders"
    alert = make_alert("Errors", service="api", token=SECRET, dsn=dsn)
    record = run_investigation(alert, registry=registry, source=TinyStore().source,
                               runtime=LocalRuntime())
    stored = record.model_dump_json()
    assert SECRET not in stored and "pg-Sup3rSecret" not in stored
    keys = sorted(i.key for i in record.invocations)
    assert keys == [
        'dsn_probe{"dsn":"postgres://orders:[redacted password]@db.internal:5432/orders",'
        '"service":"api"}',
        'token_probe{"service":"api","token":"[redacted stripe-key]"}',
    ]
    (finding,) = record.findings
    assert finding.invocation == keys[1]  # the finding still names its invocation's record


def test_findings_made_many_at_once_match_findings_made_one_by_one():
    from casebook.executor.record import finding_maker

    fields = record_fields(Outcome("leak", "leak", {}, Status.FOUND, finding=leak()))
    fields.pop("explains")
    data = dict(id="F1", analyzer="leak", invocation=f'leak{{"token":"{SECRET}"}}', **fields,
                led_from=["F0"], explains=[], owner="payments")
    make = finding_maker()
    made = [make(**data), make(**data)]
    alone = FindingRecord(**data)
    assert [m.model_dump_json() for m in made] == [alone.model_dump_json()] * 2
    assert SECRET not in made[0].model_dump_json()
    assert made[0].title == "checkout leaks memory ([redacted stripe-key])"
