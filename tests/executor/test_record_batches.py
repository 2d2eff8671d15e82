"""Invocation records made many at once read exactly as records made one by one."""

from __future__ import annotations

from casebook.executor.record import InvocationRecord, invocation_records

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
