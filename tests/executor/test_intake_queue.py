"""The durable alert queue: what is accepted survives, re-sent alerts are dropped, a full queue
refuses, and a crash puts running alerts back under the same investigation id."""

from datetime import UTC, datetime, timedelta

import pytest

from casebook.executor.intake.queue import MAX_ATTEMPTS, AlertQueue, QueueFull
from casebook.sdk.models import Alert

T0 = datetime(2026, 3, 14, 14, 10, tzinfo=UTC)


def alert(fingerprint="fp1", status="firing", minutes=0, name="HighRequestVolume",
          **extra) -> Alert:
    return Alert(
        name=name,
        status=status,
        labels={"service": "api"},
        starts_at=T0 + timedelta(minutes=minutes),
        fingerprint=fingerprint,
        **extra,
    )


def test_accepted_alerts_are_on_disk_when_accept_returns(tmp_path):
    queue = AlertQueue(tmp_path / "q.db")
    [receipt] = queue.accept([alert()], "alertmanager")
    # Another connection (as after kill -9) sees the row without any close or checkpoint.
    reopened = AlertQueue(tmp_path / "q.db")
    assert reopened.counts() == {"queued": 1, "running": 0, "done": 0, "failed": 0}
    item = reopened.claim()
    assert item.investigation_id == receipt.investigation_id
    assert item.alert == alert() and item.source == "alertmanager"
    queue.close()
    reopened.close()


def test_the_dedup_key_is_fingerprint_status_and_start(tmp_path):
    queue = AlertQueue(tmp_path / "q.db")
    first = queue.accept([alert()], "alertmanager")[0]
    again = queue.accept([alert(annotations={"summary": "changed text"})], "alertmanager")[0]
    assert again.duplicate and again.investigation_id == first.investigation_id
    other = queue.accept(
        [alert("fp2"), alert(minutes=30), alert(status="resolved")], "alertmanager"
    )
    assert [r.duplicate for r in other] == [False, False, False]
    assert [r.action for r in other] == ["investigate", "investigate", "resolve"]
    assert other[2].investigation_id == first.investigation_id  # recorded against it
    assert queue.depth() == 4


def test_a_full_queue_refuses_the_whole_request_and_keeps_nothing(tmp_path):
    queue = AlertQueue(tmp_path / "q.db", capacity=2)
    queue.accept([alert("a")], "alertmanager")
    with pytest.raises(QueueFull) as refused:
        queue.accept([alert("b"), alert("c")], "alertmanager")
    assert str(refused.value) == (
        "the alert queue is full: 1 alerts are waiting and this request adds 2, over the "
        "capacity of 2; nothing from it was kept, send it again later (Alertmanager retries "
        "on its own)"
    )
    assert queue.depth() == 1
    # Re-sent alerts take no room, so a repeat of a queued group is still answered.
    queue.accept([alert("b")], "alertmanager")
    assert queue.accept([alert("a"), alert("b")], "alertmanager")[1].duplicate


def test_the_worker_takes_alerts_in_arrival_order(tmp_path):
    queue = AlertQueue(tmp_path / "q.db")
    queue.accept([alert("a"), alert("b")], "alertmanager")
    queue.accept([alert("c")], "grafana")
    taken = [queue.claim() for _ in range(4)]
    assert [t.alert.fingerprint for t in taken[:3]] == ["a", "b", "c"] and taken[3] is None
    queue.finish(taken[0].id, "done")
    queue.finish(taken[1].id, "failed", failed=True, error="boom")
    assert queue.counts() == {"queued": 0, "running": 1, "done": 1, "failed": 1}


def test_after_a_crash_running_alerts_run_again_under_the_same_id(tmp_path):
    queue = AlertQueue(tmp_path / "q.db")
    queue.accept([alert("a"), alert("b")], "alertmanager")
    running = queue.claim()
    # the process dies here; a new one opens the same file
    restarted = AlertQueue(tmp_path / "q.db")
    assert restarted.recover() == (1, 0)
    again = restarted.claim()
    assert (again.id, again.investigation_id, again.attempts) == (
        running.id,
        running.investigation_id,
        2,
    )


def test_an_alert_that_keeps_killing_the_service_is_given_up(tmp_path):
    queue = AlertQueue(tmp_path / "q.db")
    queue.accept([alert()], "alertmanager")
    for _ in range(MAX_ATTEMPTS):
        assert queue.claim() is not None
        queue = AlertQueue(tmp_path / "q.db")
        requeued, given_up = queue.recover()
    assert (requeued, given_up) == (0, 1)
    assert queue.counts()["failed"] == 1 and queue.claim() is None


def test_a_flapping_alert_is_recorded_against_the_recent_investigation(tmp_path):
    queue = AlertQueue(tmp_path / "q.db")
    first = queue.accept([alert()], "alertmanager", cooldown_s=600)[0]
    resolved = queue.accept([alert(status="resolved")], "alertmanager", cooldown_s=600)[0]
    flap = queue.accept([alert(minutes=4)], "alertmanager", cooldown_s=600)[0]
    later = queue.accept([alert(minutes=15)], "alertmanager", cooldown_s=600)[0]
    assert (resolved.action, resolved.investigation_id) == ("resolve", first.investigation_id)
    assert (flap.action, flap.investigation_id) == ("cooldown", first.investigation_id)
    assert later.action == "investigate" and later.investigation_id != first.investigation_id


def test_manual_requests_are_never_deduplicated(tmp_path):
    queue = AlertQueue(tmp_path / "q.db")
    webhook = queue.accept([alert()], "alertmanager", cooldown_s=600)[0]
    one = queue.accept([alert()], "manual", manual=True, cooldown_s=600)[0]
    two = queue.accept([alert()], "manual", manual=True, cooldown_s=600)[0]
    assert not one.duplicate and not two.duplicate
    assert len({webhook.investigation_id, one.investigation_id, two.investigation_id}) == 3
    assert one.action == two.action == "investigate"


def test_finished_rows_are_forgotten_after_the_retention(tmp_path):
    queue = AlertQueue(tmp_path / "q.db")
    queue.accept([alert("a"), alert("b")], "alertmanager")
    queue.finish(queue.claim().id, "done")
    assert queue.prune(older_than_s=3600) == 0
    assert queue.prune(older_than_s=-1) == 1
    assert queue.counts() == {"queued": 1, "running": 0, "done": 0, "failed": 0}


def test_an_unreadable_queue_file_names_itself_and_the_fix(tmp_path):
    path = tmp_path / "q.db"
    path.write_bytes(b"this is not a database, just some bytes " * 200)
    with pytest.raises(
        Exception,
        match=f"cannot open the alert queue {path}: .*; move the file "
        "away to start with an empty queue",
    ):
        AlertQueue(path)


def test_a_busy_alert_group_yields_to_the_oldest_alert_of_another_group(tmp_path):
    queue = AlertQueue(tmp_path / "q.db")
    queue.accept([alert("a"), alert("b")], "alertmanager")
    queue.accept([alert("c", name="DiskFull")], "alertmanager")
    first = queue.claim()
    second = queue.claim(busy=[first.alert.name])
    third = queue.claim(busy=[first.alert.name, second.alert.name])
    assert [first.alert.fingerprint, second.alert.fingerprint, third.alert.fingerprint] == [
        "a", "c", "b"]  # every group busy: the oldest alert is taken anyway
    assert queue.claim(busy=["HighRequestVolume"]) is None
