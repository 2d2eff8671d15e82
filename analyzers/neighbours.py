"""Neighbours: another workload (a cron job, a batch) saturated the nodes the victim runs on.

Pod placement comes from the `node` label of per-pod metrics (`kube_pod_info`); node load from
node-level CPU metrics (`node_` names with `cpu`, label `node`). When nodes that several
services share ran hot from the onset, the neighbour is the workload on them whose own CPU rose
the most, or that was not running before at all (a job that starts).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from casebook.analyzers.periods import MAX_ALERT_DELAY, METRIC_LEAD, naive, onset_of
from casebook.sdk import Alert, Entity, Finding, Mitigation, Severity, Telemetry, analyzer
from casebook.sdk.models import utc

NODES_SQL = """
select labels['node'] as node,
       median(value) filter (where ts < ?) as usual,
       median(value) filter (where ts >= ?) as level,
       min(ts) filter (where ts >= ? and value >= ?) as hot_at
from metrics
where regexp_matches(name, '^(node|host)_.*cpu', 'i') and labels['node'] is not null
group by all"""
# Where each pod runs (any per-pod metric with a `node` label, e.g. kube_pod_info), when it was
# first seen, and its CPU before and after the onset.
PLACEMENT_SQL = """
with placed as (
    select distinct service, labels['pod'] as pod, labels['node'] as node from metrics
    where labels['node'] is not null and labels['pod'] is not null
      and not regexp_matches(name, '^(node|host)_', 'i')
), seen as (
    select labels['pod'] as pod, min(ts) as first from metrics
    where labels['pod'] is not null group by 1
), cpu as (
    select labels['pod'] as pod, avg(value) filter (where ts < ?) as before,
           avg(value) filter (where ts >= ?) as after
    from metrics
    where regexp_matches(name, 'cpu', 'i') and not regexp_matches(name, '^(node|host)_', 'i')
      and labels['pod'] is not null
    group by 1
)
select p.service, p.node, coalesce(max(c.before), 0) as cpu_before,
       coalesce(max(c.after), 0) as cpu_after, min(s.first) as first_seen
from placed p left join cpu c using (pod) left join seen s using (pod)
group by p.service, p.node"""
HOT = 0.6  # a node this busy (share of its CPU; percent metrics are scaled), and...
MIN_RISE = 2.0  # ...this many times its usual load, is saturated by something new
STARTED_AFTER = timedelta(minutes=10)


class NoisyNeighbour(Finding):
    neighbour: str
    victim: str
    nodes: list[str]
    started: bool


@analyzer(timeout_s=30, category="resource",
          reads=["metrics:node_*cpu*", "metrics:kube_pod_info", "metrics:*cpu*", "labels:node",
                 "labels:pod"])
def noisy_neighbour(alert: Alert, telemetry: Telemetry) -> NoisyNeighbour | None:
    """Nodes shared with other services saturated because of one workload on them."""
    if not telemetry.has_table("metrics"):
        return None
    alert_at = naive(onset_of(alert))
    usual_until, split = alert_at - MAX_ALERT_DELAY, alert_at - METRIC_LEAD
    nodes = telemetry.sql(NODES_SQL, [usual_until, split, usual_until, HOT])
    hot = {}
    for node, usual, level, hot_at in nodes.rows:
        if usual is None or level is None or hot_at is None:
            continue
        scale = 100.0 if max(usual, level) > 1.0 else 1.0
        if level / scale >= HOT and level >= MIN_RISE * max(usual, 1e-9):
            hot[node] = hot_at
    if not hot:
        return None
    placement = telemetry.sql(PLACEMENT_SQL, [usual_until, split])
    # A workload first seen well into the window started there (a job), unlike the others.
    settled = naive(telemetry.window.start) + STARTED_AFTER
    scores: dict[str, tuple[float, bool, set[str]]] = {}
    for service, node, before, after, first_seen in placement.rows:
        if node not in hot:
            continue
        others = {r[0] for r in placement.rows if r[1] == node and r[0] != service}
        if not others:
            continue  # alone on its node: nobody's neighbour
        started = first_seen is not None and first_seen > settled
        score = (after - before) + (1.0 if started else 0.0)
        if score > scores.get(service, (0.0, False, set()))[0]:
            scores[service] = (score, started, others)
    if not scores:
        return None
    neighbour = max(sorted(scores), key=lambda s: scores[s][0])
    score, started, others = scores[neighbour]
    if score <= 0.2:
        return None
    shared = sorted(n for n in hot if any(r[0] == neighbour and r[1] == n
                                          for r in placement.rows))
    victim = alert.service if alert.service in others else ", ".join(sorted(others)[:3])
    onset: datetime = min(hot[n] for n in shared if hot[n] is not None)
    how = "started on them" if started else "used far more CPU on them"
    return NoisyNeighbour(
        title=f"{neighbour} saturated the nodes {victim} runs on",
        summary=f"Node(s) {', '.join(shared)} under {victim}'s pods ran at or near full CPU "
                f"from {onset:%H:%M} UTC; {neighbour} {how}.",
        severity=Severity.CRITICAL, confidence=0.85 if started else 0.75, category="resource",
        entities=[Entity.service(neighbour), *(Entity(kind="node", name=n) for n in shared)],
        evidence=[nodes.evidence(note="node CPU before and after the onset"),
                  placement.evidence(note="workloads per node: CPU before and after")],
        onset=utc(onset),
        mitigations=[Mitigation(action=f"Move {neighbour} off {victim}'s nodes (affinity, "
                                       "its own node pool) or limit its CPU",
                                detail="the victim is healthy on a quiet node", risk="low")],
        neighbour=neighbour, victim=victim, nodes=shared, started=started,
    )
