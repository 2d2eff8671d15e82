"""The analyzer templates, one per shape of investigation knowledge.

Each kind is a module template, a test template and a small example incident (alert,
telemetry rows, expected cause) on which the generated analyzer finds its cause. Templates use
`string.Template` placeholders: $name, $cls, $title, $alertname.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

Rows = dict[str, list[dict[str, Any]]]


@dataclass(frozen=True)
class Kind:
    name: str
    help: str
    alertname: str
    category: str
    module: str
    test: str
    sample: Callable[[datetime, str], Rows]
    cause_service: Callable[[str], str] = lambda service: service
    analyzer: bool = True  # False: a post-processor, which runs after ranking, not as one


def _minutes(start: datetime, minutes: float) -> str:
    return (start + timedelta(minutes=minutes)).isoformat()


# --- metric-threshold -----------------------------------------------------------------------
METRIC_MODULE = '''"""$title: a metric of the alerting service went well past its usual level."""

from casebook.sdk import Entity, Finding, Severity, Telemetry, analyzer

METRIC = "cpu_utilization"


class $cls(Finding):
    metric: str
    peak: float
    usual: float


@analyzer(match={"alertname": "$alertname"}, timeout_s=10, category="resource",
          reads=["metrics:cpu_utilization"])
def $name(telemetry: Telemetry, service: str) -> $cls | None:
    """The service's metric peaked at least 1.5x above its usual high of the hour before."""
    query = ("select max(value) as peak, quantile_cont(value, 0.95) as high, count(*) as n "
             "from metrics where name = ? and service = ?")
    now = telemetry.sql(query, [METRIC, service])
    before = telemetry.baseline().sql(query, [METRIC, service]).dicts()[0]
    peak, usual = now.dicts()[0]["peak"], before["high"]
    if peak is None or usual is None or peak < 1.5 * usual + 0.05:
        return None
    return $cls(
        title=f"{METRIC} of {service} peaked at {peak:.2f}, usually under {usual:.2f}",
        summary=f"{service} reached {peak:.2f} {METRIC}; its 95th percentile the hour before "
                f"was {usual:.2f}.",
        severity=Severity.WARNING, confidence=0.6, category="resource",
        entities=[Entity.service(service)], evidence=[now.evidence()],
        metric=METRIC, peak=peak, usual=usual,
    )
'''

METRIC_TEST = '''from datetime import timedelta

from $package.$name import $name

from casebook.sdk.testing import DEFAULT_START, TinyStore, make_alert, run


def samples(value, minutes_before, count=10):
    return [{"ts": DEFAULT_START - timedelta(minutes=minutes_before + i), "name": "cpu_utilization",
             "service": "api", "value": value} for i in range(count)]


def test_${name}_finds_a_metric_far_above_its_usual_level():
    store = TinyStore().add("metrics", samples(0.95, 1) + samples(0.3, 80))
    outcome = run($name, alert=make_alert("$alertname", service="api"), store=store)
    assert outcome.status == "found"
    assert outcome.finding.peak == 0.95


def test_${name}_stays_quiet_at_the_usual_level():
    store = TinyStore().add("metrics", samples(0.3, 1) + samples(0.3, 80))
    outcome = run($name, alert=make_alert("$alertname", service="api"), store=store)
    assert outcome.status == "nothing"


def test_${name}_is_skipped_without_the_metric():
    outcome = run($name, alert=make_alert("$alertname", service="api"), store=TinyStore())
    assert outcome.status == "skipped"
    assert "metric 'cpu_utilization'" in outcome.error
'''


def _metric_sample(start: datetime, service: str) -> Rows:
    rows = [{"ts": _minutes(start, -m), "name": "cpu_utilization", "service": service,
             "value": 0.95 if m <= 10 else 0.3} for m in range(1, 121)]
    return {"metrics": rows}


# --- log-pattern ----------------------------------------------------------------------------
LOG_MODULE = '''"""$title: log lines matching a pattern jumped on the alerting service."""

from casebook.sdk import Entity, Finding, Severity, Telemetry, analyzer

PATTERN = "%timeout%"


class $cls(Finding):
    lines: int
    baseline_lines: int


@analyzer(match={"alertname": "$alertname"}, timeout_s=10, category="dependency",
          reads=["logs"])
def $name(telemetry: Telemetry, service: str) -> $cls | None:
    """Lines matching PATTERN at least tripled compared with the hour before."""
    query = "select count(*) from logs where service = ? and message ilike ?"
    now = telemetry.sql(query, [service, PATTERN])
    lines = now.scalar()
    before = telemetry.baseline().sql(query, [service, PATTERN]).scalar()
    if lines < 10 or lines < 3 * max(before, 1):
        return None
    return $cls(
        title=f"{lines} log lines like {PATTERN!r} on {service}, {before} the hour before",
        summary=f"{service} logged {lines} lines matching {PATTERN!r}; {before} the hour before.",
        severity=Severity.WARNING, confidence=0.6, category="dependency",
        entities=[Entity.service(service)], evidence=[now.evidence()],
        lines=lines, baseline_lines=before,
    )
'''

LOG_TEST = '''from datetime import timedelta

from $package.$name import $name

from casebook.sdk.testing import DEFAULT_START, TinyStore, log, make_alert, run


def lines(message, count, minutes_before):
    moment = DEFAULT_START - timedelta(minutes=minutes_before)
    return [log(moment, "api", "error", message) for _ in range(count)]


def test_${name}_finds_the_pattern_jump():
    store = TinyStore().add("logs", lines("upstream timeout after 5s", 40, 5))
    outcome = run($name, alert=make_alert("$alertname", service="api"), store=store)
    assert outcome.status == "found"
    assert outcome.finding.lines == 40


def test_${name}_ignores_other_lines():
    store = TinyStore().add("logs", lines("user not found", 40, 5))
    outcome = run($name, alert=make_alert("$alertname", service="api"), store=store)
    assert outcome.status == "nothing"
'''


def _log_sample(start: datetime, service: str) -> Rows:
    rows = [{"ts": _minutes(start, -1 - i / 10), "service": service, "level": "warn",
             "message": "upstream timeout after 5s"} for i in range(60)]
    rows += [{"ts": _minutes(start, -90 - i), "service": service, "level": "info",
              "message": "request served"} for i in range(20)]
    return {"logs": rows}


# --- change ---------------------------------------------------------------------------------
CHANGE_MODULE = '''"""$title: a change on the alerting service shortly before the alert fired."""

from casebook.sdk import Alert, Entity, Finding, Mitigation, Severity, Telemetry, analyzer

CHANGE_KINDS = ("deploy", "config", "flag")


class $cls(Finding):
    kind: str
    change: str
    minutes_before: float


@analyzer(match={"alertname": "$alertname"}, timeout_s=10, category="deploy",
          reads=["events"])
def $name(alert: Alert, telemetry: Telemetry, service: str) -> $cls | None:
    """The latest deploy, config or flag change on the service before the alert."""
    moment = alert.starts_at.replace(tzinfo=None)
    rows = telemetry.sql(
        "select ts, kind, summary from events where service = ? and kind in (?, ?, ?) "
        "and ts <= ? order by ts desc limit 1", [service, *CHANGE_KINDS, moment])
    if not rows:
        return None
    ts, kind, change = rows.rows[0]
    minutes = (moment - ts).total_seconds() / 60
    if minutes > 30:
        return None
    return $cls(
        title=f"{kind} on {service} {minutes:.0f} min before the alert: {change}",
        summary=f"{service} had a {kind} ({change}) {minutes:.0f} minutes before the alert.",
        severity=Severity.WARNING, confidence=0.7, category=kind,
        entities=[Entity.service(service)], evidence=[rows.evidence()],
        onset=ts, kind=kind, change=change, minutes_before=minutes,
        mitigations=[Mitigation(action=f"Consider rolling back the {kind} on {service}",
                                risk="medium")],
    )
'''

CHANGE_TEST = '''from datetime import timedelta

from $package.$name import $name

from casebook.sdk.testing import DEFAULT_START, TinyStore, make_alert, run


def change(kind, summary, minutes_before, service="api"):
    return {"ts": DEFAULT_START - timedelta(minutes=minutes_before), "kind": kind,
            "service": service, "summary": summary}


def test_${name}_finds_the_recent_deploy():
    store = TinyStore().add("events", [change("deploy", "api v42", 4)])
    outcome = run($name, alert=make_alert("$alertname", service="api"), store=store)
    assert outcome.status == "found"
    assert outcome.finding.change == "api v42"
    assert outcome.finding.category == "deploy"


def test_${name}_ignores_old_and_foreign_changes():
    store = TinyStore().add("events", [change("deploy", "api v41", 50),
                                       change("deploy", "db v9", 3, service="db")])
    outcome = run($name, alert=make_alert("$alertname", service="api"), store=store)
    assert outcome.status == "nothing"
'''


def _change_sample(start: datetime, service: str) -> Rows:
    return {"events": [
        {"ts": _minutes(start, -6), "kind": "deploy", "service": service,
         "summary": f"{service} v42 rolled out"},
        {"ts": _minutes(start, -50), "kind": "config", "service": "other-service",
         "summary": "raise pool size"},
    ]}


# --- fan-out --------------------------------------------------------------------------------
FANOUT_MODULE = '''"""$title: which dependency of the alerting service is failing its calls."""

from casebook.sdk import Alert, Entity, Finding, Severity, Telemetry, analyzer


def callees(alert: Alert, telemetry: Telemetry) -> list[str]:
    """The services the alerting service called in the window."""
    rows = telemetry.sql(
        "select distinct c.service from spans p join spans c "
        "on c.trace_id = p.trace_id and c.parent_span_id = p.span_id "
        "where p.service = ? and c.service <> p.service order by 1", [alert.service or ""])
    return [service for (service,) in rows]


class $cls(Finding):
    dependency: str
    error_ratio: float


@analyzer(match={"alertname": "$alertname"}, fan_out={"dependency": callees}, timeout_s=10,
          category="dependency", reads=["spans"])
def $name(telemetry: Telemetry, dependency: str) -> $cls | None:
    """One invocation per dependency; all of them share one grouped scan of the spans."""
    ratios = telemetry.shared(
        "select service, avg((status = 'error')::int) as ratio from spans group by service"
    ).by("service")
    ratio = ratios.get(dependency, {}).get("ratio", 0.0)
    if ratio < 0.2:
        return None
    return $cls(
        title=f"{dependency} fails {ratio:.0%} of its calls",
        summary=f"{ratio:.0%} of the spans of {dependency} ended in error in the window.",
        severity=Severity.CRITICAL, confidence=0.8, category="dependency",
        entities=[Entity.service(dependency)], dependency=dependency, error_ratio=ratio,
    )
'''

FANOUT_TEST = '''from datetime import timedelta

from $package.$name import $name

from casebook.sdk.testing import DEFAULT_START, TinyStore, make_alert, run, span


def calls(callee, status, count=10):
    start = DEFAULT_START - timedelta(minutes=5)
    rows = []
    for i in range(count):
        rows.append(span(f"t{callee}{i}", f"p{callee}{i}", "", "api", "GET /", start, 30, "ok"))
        rows.append(span(f"t{callee}{i}", f"c{callee}{i}", f"p{callee}{i}", callee, "query",
                         start, 20, status))
    return rows


def test_${name}_names_the_failing_dependency():
    store = TinyStore().add("spans", calls("db", "error") + calls("cache", "ok"))
    outcome = run($name, alert=make_alert("$alertname", service="api"), store=store,
                  params={"dependency": "db"})
    assert outcome.status == "found"
    assert outcome.finding.error_ratio == 1.0


def test_${name}_passes_a_healthy_dependency():
    store = TinyStore().add("spans", calls("db", "error") + calls("cache", "ok"))
    outcome = run($name, alert=make_alert("$alertname", service="api"), store=store,
                  params={"dependency": "cache"})
    assert outcome.status == "nothing"
'''


def _calls(start: datetime, caller: str, callee: str, status: str, count: int) -> list[dict]:
    rows = []
    for i in range(count):
        moment = _minutes(start, -5 - i / 10)
        trace = f"{callee}-{i:04d}"
        rows.append({"trace_id": trace, "span_id": f"p{i}", "parent_span_id": "",
                     "service": caller, "name": "GET /", "start_ts": moment,
                     "duration_ms": 30.0, "status": "ok"})
        rows.append({"trace_id": trace, "span_id": f"c{i}", "parent_span_id": f"p{i}",
                     "service": callee, "name": "call", "start_ts": moment,
                     "duration_ms": 20.0, "status": status})
    return rows


def _fanout_sample(start: datetime, service: str) -> Rows:
    return {"spans": _calls(start, service, "payments-db", "error", 20)
            + _calls(start, service, "cache", "ok", 20)}


# --- follow-up ------------------------------------------------------------------------------
FOLLOWUP_MODULE = '''"""$title: the slowest dependency, then a closer look at it as a follow-up."""

from casebook.sdk import Alert, Entity, Finding, FollowUp, Severity, Telemetry, analyzer


class $cls(Finding):
    dependency: str
    p95_ms: float


class ${cls}Detail(Finding):
    operation: str
    p95_ms: float


@analyzer(match={"alertname": "$alertname"}, timeout_s=10, category="dependency",
          reads=["spans"])
def $name(alert: Alert, telemetry: Telemetry, service: str) -> $cls | None:
    """The dependency whose calls from the service are slowest; asks for a closer look."""
    rows = telemetry.sql(
        "select c.service, quantile_cont(c.duration_ms, 0.95) as p95 from spans p "
        "join spans c on c.trace_id = p.trace_id and c.parent_span_id = p.span_id "
        "where p.service = ? and c.service <> p.service group by 1 order by 2 desc limit 1",
        [service])
    if not rows or rows.rows[0][1] < 500:
        return None
    dependency, p95 = rows.rows[0]
    return $cls(
        title=f"{dependency} answers {service} in {p95:.0f} ms (p95)",
        summary=f"Calls from {service} to {dependency} take {p95:.0f} ms at the 95th percentile.",
        severity=Severity.WARNING, confidence=0.6, category="dependency",
        entities=[Entity.service(dependency)], evidence=[rows.evidence()],
        dependency=dependency, p95_ms=p95,
        followups=[FollowUp(analyzer="${name}_detail", params={"dependency": dependency})],
    )


@analyzer(when=lambda alert: False, timeout_s=10, category="dependency", reads=["spans"])
def ${name}_detail(telemetry: Telemetry, dependency: str) -> ${cls}Detail | None:
    """Runs only as a follow-up: the dependency's own slowest operation."""
    rows = telemetry.sql(
        "select name, quantile_cont(duration_ms, 0.95) as p95 from spans where service = ? "
        "group by 1 order by 2 desc limit 1", [dependency])
    if not rows:
        return None
    operation, p95 = rows.rows[0]
    return ${cls}Detail(
        title=f"{dependency} {operation} is its slowest operation ({p95:.0f} ms p95)",
        summary=f"Inside {dependency}, {operation} takes {p95:.0f} ms at the 95th percentile.",
        severity=Severity.INFO, confidence=0.6, category="dependency",
        entities=[Entity.service(dependency)], evidence=[rows.evidence()],
        operation=operation, p95_ms=p95,
    )
'''

FOLLOWUP_TEST = '''from datetime import timedelta

from $package.$name import $name, ${name}_detail

from casebook.sdk.testing import DEFAULT_START, TinyStore, make_alert, run, span


def calls(callee, operation, ms, count=10):
    start = DEFAULT_START - timedelta(minutes=5)
    rows = []
    for i in range(count):
        rows.append(span(f"t{callee}{i}", f"p{callee}{i}", "", "api", "GET /", start, ms + 10,
                         "ok"))
        rows.append(span(f"t{callee}{i}", f"c{callee}{i}", f"p{callee}{i}", callee, operation,
                         start, ms, "ok"))
    return rows


def test_${name}_finds_the_slow_dependency_and_asks_for_a_follow_up():
    store = TinyStore().add("spans", calls("db", "select", 900) + calls("cache", "get", 5))
    outcome = run($name, alert=make_alert("$alertname", service="api"), store=store)
    assert outcome.finding.dependency == "db"
    assert [f.analyzer for f in outcome.finding.followups] == ["${name}_detail"]


def test_${name}_detail_names_the_slow_operation():
    store = TinyStore().add("spans", calls("db", "select", 900))
    outcome = run(${name}_detail, alert=make_alert("$alertname", service="api"), store=store,
                  params={"dependency": "db"})
    assert outcome.finding.operation == "select"
'''


def _followup_sample(start: datetime, service: str) -> Rows:
    rows = []
    for callee, operation, ms in (("orders-db", "select orders", 900.0), ("cache", "get", 4.0)):
        for i in range(20):
            moment = _minutes(start, -5 - i / 10)
            trace = f"{callee}-{i:04d}"
            rows.append({"trace_id": trace, "span_id": f"p{i}", "parent_span_id": "",
                         "service": service, "name": "GET /", "start_ts": moment,
                         "duration_ms": ms + 10, "status": "ok"})
            rows.append({"trace_id": trace, "span_id": f"c{i}", "parent_span_id": f"p{i}",
                         "service": callee, "name": operation, "start_ts": moment,
                         "duration_ms": ms, "status": "ok"})
    return {"spans": rows}


# --- post-processor -------------------------------------------------------------------------
POSTPROCESSOR_MODULE = '''"""$title: after ranking, tell the team's chat when a deploy is the top cause."""

from casebook.sdk import InvestigationView, Notify, postprocessor


@postprocessor(cause={"category": "deploy"}, timeout_s=5)
def $name(investigation: InvestigationView) -> Notify | None:
    """A deploy ranked first goes to the sink `team-chat` (under `sinks:` in casebook.yaml)."""
    top = investigation.top_cause
    if top is None or top.category != "deploy":
        return None  # a deploy further down the list is not worth a message
    return Notify(sink="team-chat",
                  text=f"{investigation.alert.name}: a deploy on {top.entity.name} is the top "
                       f"cause ({investigation.report_url})")
'''

POSTPROCESSOR_TEST = '''from $package.$name import $name

from casebook.sdk import Notify
from casebook.sdk.testing import make_alert, make_investigation, run_postprocessor

ALERT = make_alert("$alertname", service="checkout")


def test_${name}_notifies_when_a_deploy_is_the_top_cause():
    investigation = make_investigation(ALERT, causes=[("service:checkout", "deploy")])
    outcome = run_postprocessor($name, investigation)
    assert outcome.actions == (Notify(
        sink="team-chat", text="$alertname: a deploy on checkout is the top cause "
                               "(http://casebook.test/investigations/inv-test)"),)


def test_${name}_stays_quiet_for_other_causes():
    investigation = make_investigation(ALERT, causes=[("service:checkout", "capacity")])
    assert run_postprocessor($name, investigation).status == "skipped"
'''


KINDS: dict[str, Kind] = {
    kind.name: kind for kind in (
        Kind("metric-threshold", "a metric of the service far above its usual level",
             "HighCpu", "resource", METRIC_MODULE, METRIC_TEST, _metric_sample),
        Kind("log-pattern", "log lines matching a pattern jumped", "HighErrorRate",
             "dependency", LOG_MODULE, LOG_TEST, _log_sample),
        Kind("change", "a deploy, config or flag change shortly before the alert",
             "HighErrorRate", "deploy", CHANGE_MODULE, CHANGE_TEST, _change_sample),
        Kind("fan-out", "one invocation per dependency, from one shared scan",
             "HighErrorRate", "dependency", FANOUT_MODULE, FANOUT_TEST, _fanout_sample,
             cause_service=lambda service: "payments-db"),
        Kind("follow-up", "a finding that asks for a closer look at another entity",
             "LatencyHigh", "dependency", FOLLOWUP_MODULE, FOLLOWUP_TEST, _followup_sample,
             cause_service=lambda service: "orders-db"),
        Kind("post-processor", "after ranking, an action for the team (no analyzer)",
             "HighErrorRate", "deploy", POSTPROCESSOR_MODULE, POSTPROCESSOR_TEST,
             _change_sample, analyzer=False),
    )
}
