"""Sinks and the outbox in one process: real SQLite outbox, real DuckDB results, real HTTP
receivers. What is sent, to whom, how often, and what the delivery log says."""

import hashlib
import hmac
import json
import socket
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "fakes"))

from investigation_records import PLANTED_LOG, investigation  # noqa: E402
from receiver import Receiver  # noqa: E402

from casebook.executor.config.schema import CasebookFile  # noqa: E402
from casebook.executor.delivery import Backoff, Dispatcher, Outbox  # noqa: E402
from casebook.executor.delivery.routing import sinks_for  # noqa: E402
from casebook.executor.narration import narrate_deterministic  # noqa: E402
from casebook.executor.postprocessing import find_postprocessors  # noqa: E402
from casebook.executor.results import ResultsStore  # noqa: E402
from casebook.sdk.postprocessor import postprocessor_spec  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def receiver():
    started = Receiver(free_port()).start()
    yield started
    started.stop()


@pytest.fixture
def results(tmp_path):
    with ResultsStore(tmp_path / "results.duckdb") as store:
        yield store


def settings(**sections) -> CasebookFile:
    return CasebookFile.model_validate(sections)


def record(ident="inv-1", created=None, **labels):
    made = investigation()
    made.id = ident
    made.alert = made.alert.model_copy(update={"labels": {**made.alert.labels, **labels}})
    made.narrative = narrate_deterministic(made)
    if created is not None:
        made.created_at = created
    return made


def test_the_outbox_keeps_one_message_per_key_and_backs_off(tmp_path):
    outbox = Outbox(tmp_path / "outbox.db", Backoff(base_s=10, cap_s=25, attempts=4))
    put = dict(sink="hook", kind="investigation", body=b"{}", content_type="application/json",
               investigation_id="inv-1", now=1000.0)
    assert outbox.put("inv-1:hook", **put) is True
    assert outbox.put("inv-1:hook", **{**put, "body": b"changed"}) is False
    [due] = outbox.due(now=1000.0)
    assert (due.key, due.body) == ("inv-1:hook", b"{}")
    waits = []
    for _ in range(4):
        state = outbox.failed(due.id, "HTTP 503", now=2000.0)
        waits.append(outbox.next_due_in(now=2000.0))
    assert waits[:3] == [10.0, 20.0, 25.0]  # doubling, capped
    assert state == "failed" and outbox.due(now=1e12) == []
    [entry] = outbox.log_for("inv-1")
    assert (entry["state"], entry["attempts"], entry["last_error"]) == ("failed", 4, "HTTP 503")
    assert [a["outcome"] for a in entry["log"]] == ["retry", "retry", "retry", "failed"]
    outbox.close()
    reopened = Outbox(tmp_path / "outbox.db")  # durable: the file holds it all
    assert reopened.counts() == {"pending": 0, "delivered": 0, "failed": 1}
    reopened.put("inv-2:hook", **{**put, "investigation_id": "inv-2"})
    assert reopened.prune(older_than_s=100, now=1050.0) == 0
    assert reopened.prune(older_than_s=100, now=1200.0) == 1  # the pending one stays
    assert reopened.counts() == {"pending": 1, "delivered": 0, "failed": 0}


def test_routes_choose_sinks_like_alertmanager():
    config = settings(
        sinks=[{"name": n, "type": "webhook", "url": f"https://{n}.example"} for n in "abcd"]
        + [{"name": "e", "type": "webhook", "url": "https://e.example", "match": {"env": "prod"}}],
        routes=[
            {"severity": ["page"], "team": ["web"], "sinks": ["a"], "continue": True},
            {"category": ["cache"], "match_re": {"service": "check.*"}, "sinks": ["b", "e"]},
            {"sinks": ["c"]},
        ],
    )
    names = lambda rec: [s.name for s in sinks_for(config, rec)]  # noqa: E731
    assert names(record(team="web")) == ["a", "b"]  # e wants env=prod
    assert names(record(team="web", env="prod")) == ["a", "b", "e"]
    assert names(record(team="db")) == ["b"]
    assert names(record(service="payments")) == ["c"]
    assert [s.name for s in sinks_for(settings(sinks=config.sinks[:2]), record())] == ["a", "b"]


def test_webhook_slack_pagerduty_and_markdown_deliveries(tmp_path, receiver, results):
    config = settings(
        sinks=[
            {"name": "hook", "type": "webhook", "url": f"{receiver.url}/hook", "secret": "s3"},
            {"name": "chat", "type": "slack", "url": f"{receiver.url}/slack"},
            {"name": "pager", "type": "pagerduty", "routing_key": "R1",
             "url": f"{receiver.url}/pd"},
            {"name": "notes", "type": "markdown", "directory": str(tmp_path / "md")},
        ],
        links={"service": "https://grafana.example/d/s?var-service={service}"},
    )
    outbox = Outbox(tmp_path / "outbox.db")
    dispatcher = Dispatcher(config, outbox, results, public_url="https://cb.example")
    rec = record()
    results.save(rec)
    assert dispatcher.enqueue_investigation(rec) == ["hook", "chat", "pager", "notes"]
    assert dispatcher.enqueue_investigation(rec) == ["hook", "chat", "pager", "notes"]
    assert dispatcher.deliver_due() == 4
    assert dispatcher.deliver_due(now=time.time() + 3600) == 0  # delivered means done
    by_path = {r.path: r for r in receiver.received}
    assert sorted(by_path) == ["/hook", "/pd", "/slack"]

    hook = by_path["/hook"]
    assert hook.headers["X-Casebook-Signature"] == "sha256=" + hmac.new(
        b"s3", hook.body, hashlib.sha256).hexdigest()
    assert hook.headers["Idempotency-Key"] == "inv-1:hook"
    body = hook.json
    assert set(body) >= {"id", "alert", "causes", "narrative", "report_url", "seen_before"}
    assert body["report_url"] == "https://cb.example/investigations/inv-1"
    assert body["causes"][0]["entity"] == {"kind": "service", "name": "sessions-cache"}
    assert "https://grafana.example/d/s?var-service=sessions-cache" in [
        link["url"] for link in body["links"]]

    pd = by_path["/pd"].json
    assert (pd["routing_key"], pd["event_action"], pd["dedup_key"]) == (
        "R1", "trigger", rec.alert.fingerprint)
    assert pd["payload"]["severity"] == "critical"  # severity=page
    assert pd["payload"]["component"] == "service:sessions-cache"
    assert pd["client_url"] == body["report_url"]

    slack = by_path["/slack"].json
    assert slack["blocks"][-1]["elements"][0]["url"] == body["report_url"]
    markdown = (tmp_path / "md" / "inv-1.md").read_text()
    assert markdown.startswith("# CheckoutErrors")
    assert "[Service sessions-cache]" not in markdown  # labels come from the link kind
    assert "[service sessions-cache](https://grafana.example/d/s?var-service=sessions-cache)" \
        in markdown
    every = b"".join(r.body for r in receiver.received) + markdown.encode()
    assert b"sk-ant-api03" not in every and PLANTED_LOG.encode() not in every
    assert {d["state"] for d in outbox.log_for("inv-1")} == {"delivered"}


def test_a_refusing_receiver_is_retried_and_a_bad_request_is_not(tmp_path, receiver, results):
    config = settings(sinks=[{"name": "hook", "type": "webhook", "url": receiver.url}],
                      delivery={"backoff_s": 0.01, "max_attempts": 5})
    outbox = Outbox(tmp_path / "outbox.db", Backoff(base_s=0.01, attempts=5))
    dispatcher = Dispatcher(config, outbox, results)
    receiver.status = 503
    dispatcher.enqueue_investigation(record("inv-a"))
    assert dispatcher.deliver_due() == 0
    receiver.status = 200
    assert dispatcher.deliver_due(now=time.time() + 1) == 1
    [entry] = outbox.log_for("inv-a")
    assert [a["outcome"] for a in entry["log"]] == ["retry", "delivered"]
    assert entry["log"][0]["detail"] == f"HTTP 503 from {receiver.url}: refused"

    receiver.status = 400
    dispatcher.enqueue_investigation(record("inv-b"))
    assert dispatcher.deliver_due() == 0
    [entry] = outbox.log_for("inv-b")
    assert (entry["state"], entry["attempts"]) == ("failed", 1)
    assert len(receiver.received) == 3


def test_seen_before_lists_the_same_alert_and_top_cause_within_30_days(results):
    now = datetime.now(UTC)
    for ident, days in (("inv-old", 40), ("inv-2w", 14), ("inv-1d", 1)):
        results.save(record(ident, created=now - timedelta(days=days)))
    other = record("inv-other", created=now - timedelta(days=2))
    other.causes = other.causes[1:]  # another top cause
    results.save(other)
    results.add_feedback("inv-2w", True)
    results.add_feedback("inv-2w", False)
    current = record("inv-now", created=now)
    seen = results.seen_before(current)
    assert [e["id"] for e in seen] == ["inv-1d", "inv-2w"]
    assert [e["feedback"] for e in seen] == ["no feedback", "1 helpful, 1 not helpful"]
    assert seen[0]["report_url"] == "/investigations/inv-1d"
    assert seen[0]["cause"] == {"entity": {"kind": "service", "name": "sessions-cache"},
                                "category": "cache"}


def test_the_weekly_report_reaches_its_sink_once_per_period(tmp_path, receiver, results):
    results.save(record("inv-week", created=datetime(2026, 3, 4, 10, tzinfo=UTC)))
    config = settings(
        sinks=[{"name": "chat", "type": "slack", "url": receiver.url},
               {"name": "hook", "type": "webhook", "url": receiver.url}],
        coverage={"every": "week", "at": "mon 09:00", "sinks": ["chat", "hook"]},
    )
    clock = {"now": datetime(2026, 3, 9, 8, 59, tzinfo=UTC)}  # a Monday, a minute early

    def start() -> Dispatcher:
        return Dispatcher(config, Outbox(tmp_path / "outbox.db"), results,
                          public_url="https://cb.example", clock=lambda: clock["now"])

    def tick(dispatcher: Dispatcher, moment: datetime) -> int:
        clock["now"] = moment
        dispatcher.schedule_coverage()
        return dispatcher.deliver_due()

    first = start()
    assert tick(first, datetime(2026, 3, 9, 8, 59, tzinfo=UTC)) == 2  # last week's, at once
    assert tick(first, datetime(2026, 3, 9, 9, 0, tzinfo=UTC)) == 2  # this Monday's
    assert tick(first, datetime(2026, 3, 9, 12, 0, tzinfo=UTC)) == 0
    restarted = start()  # a restart within the period sends nothing again
    assert tick(restarted, datetime(2026, 3, 12, 9, 0, tzinfo=UTC)) == 0
    assert tick(restarted, datetime(2026, 3, 16, 9, 5, tzinfo=UTC)) == 2
    hooks = [r.json for r in receiver.received if "blocks" not in r.json]
    assert [h["period"]["until"] for h in hooks] == [
        "2026-03-02T09:00:00+00:00", "2026-03-09T09:00:00+00:00", "2026-03-16T09:00:00+00:00"]
    week = hooks[1]
    assert week["investigations"] == 1
    assert week["report_url"] == (
        "https://cb.example/api/coverage?since=2026-03-02T09%3A00%3A00%2B00%3A00&until="
        "2026-03-09T09%3A00%3A00%2B00%3A00&format=html")
    assert week["markdown"].startswith("# Analyzer coverage, 2026-03-02 09:00 to 2026-03-09")
    keys = [r.headers["Idempotency-Key"] for r in receiver.received]
    assert len(keys) == len(set(keys)) == 6
    assert "coverage-2026-03-09T0900Z:chat" in keys


def test_post_processor_actions_become_notes_and_messages(tmp_path, results):
    import casebook.examples.team_pack.followups as followups

    assert {s.name for s in find_postprocessors(["casebook.examples.team_pack"])} == {
        "cache_ticket", "slow_operation_owners"}
    config = settings(sinks=[{"name": "cache-tickets", "type": "markdown",
                              "directory": str(tmp_path / "tickets")}])
    dispatcher = Dispatcher(config, Outbox(tmp_path / "outbox.db"), results,
                            public_url="https://cb.example",
                            postprocessors=[postprocessor_spec(followups.cache_ticket)])
    rec = record(team="inference")
    results.save(rec)
    dispatcher.investigation_finished(rec)
    dispatcher.investigation_finished(rec)  # redone after a crash: nothing twice
    assert dispatcher.deliver_due() == 2  # with no routes, the investigation goes there too
    assert (tmp_path / "tickets" / "inv-1.md").exists()
    stored = results.get("inv-1")
    assert stored.notes.count(
        "cache_ticket: sessions-cache is owned by the cache team (#cache-oncall).") == 1
    ticket = (tmp_path / "tickets" / "inv-1-cache_ticket-2.md").read_text()
    assert ticket.startswith("# sessions-cache: cache collapse behind CheckoutErrors\n")
    assert "- sessions-cache hit ratio collapsed" in ticket
    assert "[The investigation](https://cb.example/investigations/inv-1)" in ticket
    log = json.loads(json.dumps(dispatcher.outbox.log_for("inv-1")))
    assert [(d["kind"], d["state"]) for d in log] == [("ticket", "delivered"),
                                                       ("investigation", "delivered")]
