import json

import pytest

from casebook.executor.alerts import AlertFormatError, detect_format, load_alerts, parse_alerts

ALERTMANAGER = {
    "version": "4", "groupKey": "{}:{alertname=\"HighErrorRate\"}", "status": "firing",
    "receiver": "casebook", "groupLabels": {"alertname": "HighErrorRate"},
    "commonLabels": {"alertname": "HighErrorRate", "team": "pay"},
    "commonAnnotations": {}, "externalURL": "http://am", "truncatedAlerts": 0,
    "alerts": [
        {"status": "firing", "labels": {"service": "checkout"},
         "annotations": {"summary": "5xx"}, "startsAt": "2026-01-01T12:00:00.123456789Z",
         "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom", "fingerprint": "abc",
         "somethingNew": True},
        {"status": "resolved", "labels": {"service": "cart"}, "annotations": {},
         "startsAt": "2026-01-01T11:00:00Z", "endsAt": "2026-01-01T11:30:00Z",
         "fingerprint": "def"},
    ],
}


def test_alertmanager_group_splits_into_alerts_with_common_labels():
    alerts = parse_alerts(ALERTMANAGER)
    assert [a.name for a in alerts] == ["HighErrorRate", "HighErrorRate"]
    first, second = alerts
    assert first.labels == {"alertname": "HighErrorRate", "team": "pay", "service": "checkout"}
    assert first.starts_at.isoformat() == "2026-01-01T12:00:00.123456+00:00"
    assert first.ends_at is None and first.fingerprint == "abc"
    assert first.source == "alertmanager"
    assert second.status == "resolved" and second.ends_at is not None


def test_grafana_and_casebook_bodies():
    grafana = {**ALERTMANAGER, "orgId": 1, "title": "[FIRING:1]", "state": "alerting"}
    assert detect_format(grafana) == "grafana"
    single = {"name": "Slow", "starts_at": "2026-01-01T00:00:00Z", "labels": {"service": "x"}}
    alert = parse_alerts(single)[0]
    assert alert.name == "Slow" and alert.labels["alertname"] == "Slow"


def test_malformed_bodies_get_errors_that_name_the_field():
    with pytest.raises(AlertFormatError) as caught:
        parse_alerts({"alerts": [{"labels": {"alertname": "X"}, "startsAt": "yesterday"}]})
    assert str(caught.value) == ("body: alerts[0].startsAt: 'yesterday' is not a time; "
                                 "expected RFC 3339, e.g. 2026-01-01T12:00:00Z")
    with pytest.raises(AlertFormatError, match=r"alerts\[0\] has no 'alertname' label"):
        parse_alerts({"alerts": [{"labels": {}, "startsAt": "2026-01-01T00:00:00Z"}]})
    with pytest.raises(AlertFormatError, match="neither an Alertmanager/Grafana webhook"):
        parse_alerts({"hello": "world"})


def test_a_file_that_is_not_json(tmp_path):
    path = tmp_path / "alert.json"
    path.write_text("{not json")
    with pytest.raises(AlertFormatError, match="is not JSON \\(line 1, column 2"):
        load_alerts(path)
    path.write_text(json.dumps(ALERTMANAGER))
    assert len(load_alerts(path)) == 2
