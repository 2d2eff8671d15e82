"""Real Alertmanager bodies (tests/fixtures/alertmanager, MIT, see its README) through the
parser and the deduplication key the intake queue uses."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from casebook.executor.alerts import AlertFormatError, detect_format, parse_alerts
from casebook.executor.intake.dedup import Action, action_for, dedup_key
from casebook.executor.intake.queue import AlertQueue

FIXTURES = Path(__file__).parents[1] / "fixtures" / "alertmanager"


def body(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def test_a_one_alert_group_keeps_its_labels_annotations_and_time_zone():
    [alert] = parse_alerts(body("prom_post_request.json"))
    assert alert.name == "high_memory_load"
    assert alert.status == "firing" and alert.source == "alertmanager"
    assert alert.labels == {
        "alertname": "high_memory_load",
        "instance": "instance-with-hyphen_and_underscore",
        "job": "docker_nodes",
        "monitor": "master",
        "severity": "warning",
    }
    assert alert.annotations["description"] == "10.80.40.11 reported high memory usage with 23.28%."
    # 06:33:21.873077559-05:00, nanoseconds cut to microseconds, kept as UTC
    assert alert.starts_at == datetime(2018, 3, 7, 11, 33, 21, 873077, tzinfo=UTC)
    assert alert.ends_at is None  # Alertmanager's zero time means "still firing"
    assert alert.service == "docker_nodes"


def test_a_group_splits_into_alerts_whose_own_labels_win_over_common_ones():
    alerts = parse_alerts(body("prom_post_request_12_alerts.json"))
    assert [a.name for a in alerts] == ["high_memory_load"] + [
        f"high_memory_load{i}" for i in range(2, 13)
    ]
    assert all(a.labels["monitor"] == "master" for a in alerts)
    assert len({dedup_key(a) for a in alerts}) == 12


def test_the_large_group_has_nineteen_distinct_alerts_at_two_onsets():
    alerts = parse_alerts(body("large_prom_post_request.json"))
    assert len(alerts) == 19 and {a.name for a in alerts} == {"NodeEvent"}
    assert len({dedup_key(a) for a in alerts}) == 19
    assert sorted({a.starts_at.isoformat() for a in alerts}) == [
        "2019-01-09T15:20:40.341301+00:00",
        "2019-01-10T02:58:40.360642+00:00",
    ]


def test_fields_the_parser_does_not_know_are_ignored():
    known = parse_alerts(body("prom_post_request_2_alerts.json"))
    extended = body("prom_post_request_2_alerts.json")
    extended["truncatedAlerts"] = 0
    extended["someFutureField"] = {"nested": [1, 2]}
    for item in extended["alerts"]:
        item["fingerprint"] = ""
        item["silencedBy"] = []
    assert parse_alerts(extended) == known


def test_the_fingerprint_is_stable_without_one_in_the_body():
    first = parse_alerts(body("prom_post_request.json"))[0]
    again = parse_alerts(body("prom_post_request.json"))[0]
    assert first.fingerprint == again.fingerprint and len(first.fingerprint) == 16
    assert dedup_key(first) == dedup_key(again)
    assert dedup_key(first).starts_at == "2018-03-07T11:33:21.873077+00:00"


def test_a_resent_real_group_is_recognised_alert_by_alert(tmp_path):
    queue = AlertQueue(tmp_path / "q.db")
    first = queue.accept(parse_alerts(body("prom_post_request_2_alerts.json")), "alertmanager")
    # Alertmanager re-sends the group with one more alert every group_interval.
    grown = queue.accept(parse_alerts(body("prom_post_request_12_alerts.json")), "alertmanager")
    assert [r.duplicate for r in first] == [False, False]
    assert [r.duplicate for r in grown] == [True, True] + [False] * 10
    assert [r.investigation_id for r in grown[:2]] == [r.investigation_id for r in first]
    assert queue.counts()["queued"] == 12


def test_grafana_unified_bodies_carry_their_own_fingerprints():
    grafana = {
        "receiver": "casebook",
        "status": "firing",
        "orgId": 1,
        "state": "alerting",
        "title": "[FIRING:1] HighLatency",
        "message": "...",
        "version": "1",
        "groupKey": '{}:{alertname="HighLatency"}',
        "truncatedAlerts": 0,
        "groupLabels": {"alertname": "HighLatency"},
        "commonLabels": {"alertname": "HighLatency"},
        "commonAnnotations": {},
        "externalURL": "http://grafana:3000/",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "HighLatency", "service": "api", "grafana_folder": "apps"},
                "annotations": {"summary": "p99 above 2 s"},
                "startsAt": "2026-01-01T12:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://grafana:3000/alerting/grafana/x/view",
                "fingerprint": "4f1b6c2a3e8d9f00",
                "silenceURL": "http://grafana:3000/s",
                "dashboardURL": "",
                "panelURL": "",
                "values": {"B": 2.4, "C": 1},
                "valueString": "[ var='B' value=2.4 ]",
            }
        ],
    }
    assert detect_format(grafana) == "grafana"
    [alert] = parse_alerts(grafana)
    assert (alert.source, alert.fingerprint, alert.service) == (
        "grafana",
        "4f1b6c2a3e8d9f00",
        "api",
    )


def test_what_becomes_of_a_new_alert():
    [alert] = parse_alerts(body("prom_post_request.json"))
    later = alert.model_copy(update={"starts_at": alert.starts_at.replace(minute=40)})
    assert action_for(alert, None, cooldown_s=600) is Action.INVESTIGATE
    assert action_for(later, alert.starts_at, cooldown_s=600) is Action.COOLDOWN  # 7 min apart
    assert action_for(later, alert.starts_at, cooldown_s=300) is Action.INVESTIGATE
    assert action_for(later, alert.starts_at, cooldown_s=0) is Action.INVESTIGATE
    resolved = alert.model_copy(update={"status": "resolved"})
    assert action_for(resolved, alert.starts_at, cooldown_s=600) is Action.RESOLVE


def test_a_body_without_alerts_is_refused_with_the_reason():
    broken = body("prom_post_request.json")
    broken["alerts"] = {"not": "a list"}
    with pytest.raises(AlertFormatError, match="^body: alerts: expected a list of alert objects, got an object$"):
        parse_alerts(broken)
