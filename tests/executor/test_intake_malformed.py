"""`casebook serve` against malformed bodies: every one is answered 4xx naming what is wrong,
the service stays up, and every alert it accepted is investigated, never lost."""

import json
from pathlib import Path

import pytest
from test_intake_app import (
    KV_LABELS,
    am_alert,
    build_kv_store,
    drain,
    metric_values,
    post,
    serving,
    webhook,
)

AM = "/webhook/alertmanager"
GRAFANA = "/webhook/grafana"
MANUAL = "/api/investigations"
GOOD_START = "2026-03-14T14:10:00Z"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return build_kv_store(tmp_path_factory.mktemp("kv_cache"))


def alert_with(**fields):
    item = am_alert("bad")
    item.update(fields)
    return item


def grafana(*alerts, **fields):
    return {**webhook(*alerts), "orgId": 1, "state": "alerting", "title": "[FIRING:1]", **fields}


def legacy(**fields):
    return {"ruleName": "HighLatency", "state": "alerting", "message": "p99 above 2 s",
            "tags": {"service": "inference-api"}, "startsAt": GOOD_START, **fields}


def manual(**fields):
    return {"name": "HighRequestVolume", "labels": KV_LABELS, "starts_at": GOOD_START, **fields}


def nested(depth: int, key: str | None = None) -> bytes:
    inner = b"[" * depth + b"]" * depth
    return inner if key is None else b'{"%s": %s}' % (key.encode(), inner)


def window(name: str, value: str) -> dict:
    return alert_with(annotations={"summary": "x", name: value})


LOOKBACK = "casebook_lookback_minutes"
LOOKAHEAD = "casebook_lookahead_minutes"

# (path, body) pairs; a body is an object to send as JSON or raw bytes.
MALFORMED = {
    # labels and annotations of the wrong kind
    "labels string": (AM, webhook(alert_with(labels="alertname=X"))),
    "labels list": (AM, webhook(alert_with(labels=["alertname", "X"]))),
    "labels number": (AM, webhook(alert_with(labels=7))),
    "label value object": (AM, webhook(alert_with(labels={"alertname": {"x": 1}}))),
    "label value list": (AM, webhook(alert_with(labels={"alertname": "X", "pod": ["a"]}))),
    "label value null": (AM, webhook(alert_with(labels={"alertname": "X", "pod": None}))),
    "annotations list": (AM, webhook(alert_with(annotations=["summary"]))),
    "annotations string": (AM, webhook(alert_with(annotations="summary"))),
    "commonLabels list": (AM, {**webhook(am_alert("bad")), "commonLabels": ["alertname"]}),
    "commonLabels string": (AM, {**webhook(am_alert("bad")), "commonLabels": "x"}),
    "commonAnnotations list": (AM, {**webhook(am_alert("bad")), "commonAnnotations": [1]}),
    "groupLabels list": (AM, {**webhook(am_alert("bad")), "groupLabels": ["a"]}),
    # the group itself
    "alerts object": (AM, {**webhook(), "alerts": {"0": am_alert("bad")}}),
    "alerts string": (AM, {**webhook(), "alerts": "none"}),
    "alert is a string": (AM, webhook("alert")),
    "alert is a list": (AM, webhook([am_alert("bad")])),
    "alert is null": (AM, webhook(None)),
    "no alertname": (AM, {**webhook(alert_with(labels={"service": "x"})), "commonLabels": {}}),
    "no startsAt": (AM, webhook(alert_with(startsAt=None))),
    "status unknown": (AM, webhook(alert_with(status="burning"))),
    "status a list": (AM, webhook(alert_with(status=["firing"]))),
    "fingerprint object": (AM, webhook(alert_with(fingerprint={"a": 1}))),
    "generatorURL list": (AM, webhook(alert_with(generatorURL=["http://x"]))),
    "truncatedAlerts negative": (AM, {**webhook(am_alert("bad")), "truncatedAlerts": -1}),
    "truncatedAlerts text": (AM, {**webhook(am_alert("bad")), "truncatedAlerts": "many"}),
    # times
    "startsAt year 1 +14:00": (AM, webhook(alert_with(startsAt="0001-01-01T00:00:00+14:00"))),
    "startsAt year 1 -14:00": (AM, webhook(alert_with(startsAt="0001-01-01T00:00:00-14:00"))),
    "startsAt 9999 -14:00": (AM, webhook(alert_with(startsAt="9999-12-31T23:59:59-14:00"))),
    "startsAt 9999 -00:01": (AM, webhook(alert_with(startsAt="9999-12-31T23:59:59-00:01"))),
    "startsAt 1969": (AM, webhook(alert_with(startsAt="1969-12-31T23:59:59Z"))),
    "startsAt year 10000": (AM, webhook(alert_with(startsAt="10000-01-01T00:00:00Z"))),
    "startsAt words": (AM, webhook(alert_with(startsAt="yesterday"))),
    "startsAt list": (AM, webhook(alert_with(startsAt=[2026, 1, 1]))),
    "startsAt huge epoch": (AM, webhook(alert_with(startsAt=1e300))),
    "startsAt negative epoch": (AM, webhook(alert_with(startsAt=-5))),
    "startsAt true": (AM, webhook(alert_with(startsAt=True))),
    "endsAt 9999 -14:00": (AM, webhook(alert_with(endsAt="9999-12-31T23:00:00-14:00"))),
    "endsAt object": (AM, webhook(alert_with(endsAt={"t": 1}))),
    # the investigation window an alert asks for
    "lookback inf": (AM, webhook(window(LOOKBACK, "inf"))),
    "lookback 1e300": (AM, webhook(window(LOOKBACK, "1e300"))),
    "lookback 1e8": (AM, webhook(window(LOOKBACK, "1e8"))),
    "lookback negative": (AM, webhook(window(LOOKBACK, "-30"))),
    "lookback NaN": (AM, webhook(window(LOOKBACK, "NaN"))),
    "lookback words": (AM, webhook(window(LOOKBACK, "an hour"))),
    "lookahead -inf": (AM, webhook(window(LOOKAHEAD, "-inf"))),
    "lookahead past a week": (AM, webhook(window(LOOKAHEAD, "10081"))),
    "window under a minute": (
        AM, webhook(alert_with(annotations={LOOKBACK: "1e-180", LOOKAHEAD: "0"}))),
    # JSON itself
    "nested 50,000": (AM, nested(50_000)),
    "nested 100,000 in alerts": (AM, nested(100_000, "alerts")),
    "nested 65": (AM, nested(65, "alerts")),
    "NaN number": (AM, b'{"alerts": [], "truncatedAlerts": NaN}'),
    "Infinity number": (AM, b'{"alerts": [], "truncatedAlerts": Infinity}'),
    "number past float": (AM, b'{"alerts": [], "truncatedAlerts": 1e400}'),
    "integer of 5000 digits": (AM, b'{"alerts": [], "truncatedAlerts": ' + b"9" * 5000 + b"}"),
    "not UTF-8": (AM, b'{"alerts": [], "receiver": "\xff\xfe"}'),
    "not JSON": (AM, b"{alerts: []}"),
    "empty body": (AM, b""),
    "a list": (AM, b"[]"),
    "a string": (AM, b'"alerts"'),
    "an unknown object": (AM, {"hello": "world"}),
    # Grafana, unified and legacy
    "grafana labels list": (GRAFANA, grafana(alert_with(labels=["a"]))),
    "grafana startsAt 9999 -14:00": (
        GRAFANA, grafana(alert_with(startsAt="9999-12-31T23:59:59-14:00"))),
    "grafana orgId text": (GRAFANA, grafana(am_alert("bad"), orgId="one")),
    "grafana nested 80,000": (GRAFANA, nested(80_000)),
    "legacy tags list": (GRAFANA, legacy(tags=["service:inference-api"])),
    "legacy tags string": (GRAFANA, legacy(tags="service=inference-api")),
    "legacy no time": (GRAFANA, legacy(startsAt=None)),
    "legacy time year 1": (GRAFANA, legacy(startsAt="0001-01-01T00:00:00+14:00")),
    "legacy evalMatches object": (GRAFANA, legacy(evalMatches={"value": 1})),
    # manual investigations
    "manual name empty": (MANUAL, manual(name="")),
    "manual name object": (MANUAL, manual(name={"n": 1})),
    "manual labels list": (MANUAL, manual(labels=["a"])),
    "manual starts_at 1969": (MANUAL, manual(starts_at="1969-07-20T20:17:00Z")),
    "manual status": (MANUAL, manual(status="maybe")),
    "manual lookback inf": (MANUAL, manual(annotations={LOOKBACK: "inf"})),
    "manual nested 60,000": (MANUAL, nested(60_000)),
}


def test_the_corpus_is_large():
    assert len(MALFORMED) >= 55


def test_every_malformed_body_is_refused_with_4xx_and_the_service_stays_up(tmp_path, store):
    answers = {}
    with serving(tmp_path, store) as (client, service):
        for name, (path, body) in MALFORMED.items():
            answer = post(client, path, body)
            answers[name] = (answer.status_code, answer.json().get("error", answer.text))
        assert client.get("/healthz").status_code == 200
        queued = service.queue.depth()
        refused = metric_values(client.get("/metrics").text)
    wrong = {name: a for name, a in answers.items() if a[0] not in (400, 413, 422)}
    assert wrong == {}
    assert queued == 0
    assert refused["casebook_requests_rejected_total{reason=invalid}"] == len(MALFORMED)
    # the answers name the field, what was expected and what came
    assert answers["labels list"] == (
        422,
        "the alertmanager body: alerts[0].labels: expected an object of string values, got a list",
    )
    assert answers["label value object"][1].endswith(
        "alerts[0].labels: expected an object of string values, got an object at key 'alertname'"
    )
    assert answers["commonLabels list"][1] == (
        "the alertmanager body: commonLabels: expected an object of string values, got a list"
    )
    assert answers["alert is a string"][1] == (
        "the alertmanager body: alerts[0]: expected an alert object, got a string"
    )
    assert answers["startsAt year 1 +14:00"] == (
        422,
        "the alertmanager body: alerts[0].startsAt: '0001-01-01T00:00:00+14:00' is outside "
        "1970-01-01 to 9999-12-31 (UTC, after its offset); send the time the alert started",
    )
    assert answers["legacy tags list"] == (
        422, "the grafana body: tags: expected an object of string values, got a list"
    )
    assert answers["lookback inf"] == (
        422,
        "the alertmanager body: alerts[0].annotations: casebook_lookback_minutes is 'inf'; "
        "expected a number of minutes from 0 to 10080 (7 days)",
    )
    assert answers["lookback 1e8"][1].endswith(
        "casebook_lookback_minutes is '1e8'; expected a number of minutes from 0 to 10080 (7 days)"
    )
    assert answers["manual lookback inf"][1] == (
        "the manual body: annotations: casebook_lookback_minutes is 'inf'; expected a number "
        "of minutes from 0 to 10080 (7 days)"
    )
    assert answers["nested 100,000 in alerts"] == (
        400,
        "the body nests arrays and objects 100001 levels deep; at most 64 are accepted",
    )
    assert answers["NaN number"] == (
        400, "the body holds NaN, which is not a JSON number; send a finite number or a string"
    )
    assert answers["number past float"][1] == (
        "the body holds the number 1e400, which is too large to be finite; send a smaller number"
    )
    assert answers["not UTF-8"][1] == "the body is not UTF-8 text (byte 28: b'\\xff')"


EDGES = {
    "earliest time": am_alert("e1", starts="1970-01-01T00:00:00Z"),
    "latest time after its offset": am_alert("e2", starts="9999-12-31T23:59:59+14:00"),
    "nanoseconds and an offset": am_alert("e3", starts="2026-03-14T16:10:00.123456789+02:00"),
    "widest window": {**am_alert("e4"), "annotations": {LOOKBACK: "10080", LOOKAHEAD: "0"}},
    "narrowest window": {**am_alert("e5"), "annotations": {LOOKBACK: "0", LOOKAHEAD: "1"}},
    "epoch milliseconds": {**am_alert("e6"), "startsAt": 1773497400000},
}


def test_every_accepted_alert_is_investigated_even_at_the_edges_of_what_is_allowed(
    tmp_path, store
):
    with serving(tmp_path, store) as (client, service):
        answer = post(client, AM, webhook(*EDGES.values()))
        assert answer.status_code == 202 and answer.json()["accepted"] == len(EDGES)
        accepted = [a["investigation_id"] for a in answer.json()["alerts"]]
        assert drain(service) == len(EDGES)
        listed = client.get("/api/investigations").json()
        stored = {row["id"]: row["status"] for row in listed["investigations"]}
        assert listed["pending"] == []
        assert {ident: stored.get(ident) for ident in accepted} == dict.fromkeys(accepted, "done")
        for ident in accepted:
            assert client.get(f"/api/investigations/{ident}").status_code == 200


def test_a_feedback_body_nested_30000_deep_is_refused(tmp_path, store):
    with serving(tmp_path, store) as (client, service):
        [receipt] = post(client, AM, webhook(am_alert())).json()["alerts"]
        drain(service)
        url = f"/api/investigations/{receipt['investigation_id']}/feedback"
        deep = post(client, url, b'{"helpful": true, "comment": ' + nested(30_000) + b"}")
        assert (deep.status_code, deep.json()["error"]) == (
            400, "the body nests arrays and objects 30001 levels deep; at most 4 are accepted"
        )
        listed = post(client, url, [True])
        assert (listed.status_code, listed.json()["error"]) == (
            422,
            'expected an object, got a list; expected {"helpful": true|false, "finding_id": '
            '"F1" (optional), "comment": "..." (optional)}, as JSON or as a form',
        )
        assert post(client, url, {"helpful": True}).status_code == 201


def test_a_refusal_for_a_full_queue_is_counted_once(tmp_path, store):
    with serving(tmp_path, store, queue_capacity=1) as (client, _):
        full = post(client, AM, webhook(am_alert("a"), am_alert("b")))
        assert full.status_code == 503
        counted = metric_values(client.get("/metrics").text)
    assert counted["casebook_requests_rejected_total{reason=queue_full}"] == 1
    assert counted[
        "casebook_alerts_received_total{outcome=rejected_queue_full,source=alertmanager}"
    ] == 2


def test_the_cli_refuses_a_bad_alert_file_in_one_red_line(tmp_path, store):
    from typer.testing import CliRunner

    from casebook.executor.cli import app as cli

    path = tmp_path / "alert.json"
    path.write_text(json.dumps(webhook(window(LOOKBACK, "1e300"))))
    result = CliRunner().invoke(
        cli, ["investigate", str(path), "--telemetry", str(store), "--local",
              "--db", str(tmp_path / "r.duckdb")],
    )
    assert result.exit_code != 0
    assert result.output.strip() == (
        f"error: {path}: alerts[0].annotations: casebook_lookback_minutes is '1e300'; "
        "expected a number of minutes from 0 to 10080 (7 days)"
    )
    path.write_bytes(nested(100_000, "alerts"))
    result = CliRunner().invoke(
        cli, ["investigate", str(path), "--telemetry", str(store), "--local",
              "--db", str(tmp_path / "r.duckdb")],
    )
    assert result.exit_code != 0
    assert result.output.strip() == (
        f"error: {path} nests arrays and objects 100001 levels deep; at most 64 are accepted; "
        "expected an Alertmanager or Grafana webhook body, or a casebook alert object"
    )


@pytest.mark.slow
def test_a_real_server_answers_the_corpus_with_4xx_and_no_traceback(tmp_path, store):
    from urllib.error import HTTPError
    from urllib.request import Request, urlopen

    from test_intake_end_to_end import Served, call, wait_for

    served = Served(tmp_path, store)
    try:
        statuses = {}
        for name, (path, body) in MALFORMED.items():
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            request = Request(f"{served.url}{path}", data=raw, method="POST",
                              headers={"Content-Type": "application/json"})
            try:
                with urlopen(request, timeout=10) as answer:
                    statuses[name] = answer.status
            except HTTPError as error:
                statuses[name] = error.code
        assert {n: s for n, s in statuses.items() if s not in (400, 413, 422)} == {}
        assert call("GET", f"{served.url}/healthz")[0] == 200
        status, answer = call("POST", f"{served.url}{AM}", webhook(*EDGES.values()))
        assert status == 202 and answer["accepted"] == len(EDGES)
        accepted = {a["investigation_id"] for a in answer["alerts"]}

        def finished():
            listed = call("GET", f"{served.url}/api/investigations")[1]
            done = {r["id"] for r in listed["investigations"] if r["status"] == "done"}
            return accepted <= done

        wait_for(finished, 120, "every accepted alert investigated")
    finally:
        served.stop()
    log = Path(served.log.name).read_text()
    assert "Traceback" not in log and "Exception in ASGI application" not in log
