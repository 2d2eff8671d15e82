"""Links kept from intake and made from templates; only http(s) ever becomes a link."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "fakes"))

from investigation_records import investigation  # noqa: E402

from casebook.executor.alerts import parse_alerts  # noqa: E402
from casebook.executor.links import investigation_links  # noqa: E402
from casebook.executor.reports.context import ReportContext  # noqa: E402
from casebook.executor.reports.html import render_html  # noqa: E402
from casebook.executor.reports.markdown import render_markdown  # noqa: E402
from casebook.sdk import Entity  # noqa: E402

GRAFANA = {
    "receiver": "casebook", "status": "firing", "orgId": 1, "title": "[FIRING:1] CPU",
    "state": "alerting",
    "alerts": [{
        "status": "firing", "labels": {"alertname": "CPU", "service": "api"},
        "annotations": {"runbook_url": "javascript:alert(1)"},
        "startsAt": "2026-03-14T14:10:00Z", "fingerprint": "g1",
        "generatorURL": "https://grafana.example/alerting/grafana/abc/view",
        "dashboardURL": "https://grafana.example/d/dash", "panelURL":
        "https://grafana.example/d/dash?viewPanel=2",
        "silenceURL": "https://grafana.example/alerting/silence/new?matcher=alertname%3DCPU",
        "values": {"B": 0.93, "C": "NaN", "D": "n/a"},
    }],
}


def test_grafana_links_and_values_are_kept_and_only_http_becomes_a_link():
    [alert] = parse_alerts(GRAFANA)
    assert alert.dashboard_url == "https://grafana.example/d/dash"
    assert alert.panel_url.endswith("viewPanel=2")
    assert alert.values == {"B": 0.93}
    record = investigation()
    record.alert = alert
    links = investigation_links(record)
    assert [(link.kind, link.label) for link in links] == [
        ("generator", "Alert rule (source)"), ("dashboard", "Dashboard"), ("panel", "Panel"),
        ("silence", "Silence this alert")]
    page = render_html(record)
    assert 'href="https://grafana.example/d/dash"' in page
    assert "javascript:" not in page
    assert '<span class="chip value"><b>B</b> = 0.93</span>' in page
    assert "Values: B = 0.93" in render_markdown(record)


def test_templates_link_services_and_traces_with_quoted_names():
    record = investigation()
    record.findings[2].entities.append(Entity(kind="trace", name="4bf92f3577b34da6"))
    record.findings[2].facts["trace_ids"] = ["4bf92f3577b34da6", "a&b"]
    templates = {"trace": "https://tempo.example/explore?traceId={trace_id}",
                 "service": "https://grafana.example/d/svc?var-service={name}"}
    links = [(link.kind, link.url) for link in investigation_links(record, templates)]
    assert links == [
        ("service", "https://grafana.example/d/svc?var-service=sessions-cache"),
        ("service", "https://grafana.example/d/svc?var-service=checkout"),
        ("trace", "https://tempo.example/explore?traceId=4bf92f3577b34da6"),
        ("trace", "https://tempo.example/explore?traceId=a%26b"),
    ]
    context = ReportContext(links=investigation_links(record, templates), seen_before=[])
    markdown = render_markdown(record, context)
    assert "[Trace a&b](https://tempo.example/explore?traceId=a%26b)" in markdown
    assert ("Not seen before: no investigation of CheckoutErrors in the 30 days before this "
            "one had the same top cause.") in markdown
