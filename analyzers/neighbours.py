"""Neighbours: another workload (a cron job, a batch) saturated the nodes the victim runs on.

Pod placement comes from the `node` label of per-pod metrics; node load from node-level CPU
metrics (`node_` names with `cpu`, label `node`). When the nodes under the alerting service's
pods ran hot from the onset, the neighbour is the other workload on those nodes whose own CPU
rose the most there, or that was not running on them before at all (a job that starts).
"""

from __future__ import annotations

from datetime import datetime

from casebook.analyzers.periods import METRIC_LEAD, naive, onset_of
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
PLACEMENT_SQL = """
select service, labels['node'] as node,
       coalesce(sum(value) filter (where ts < ? and regexp_matches(name, 'cpu', 'i')), 0)
           / greatest(count(*) filter (where ts < ? and regexp_matches(name, 'cpu', 'i')), 1)
           as cpu_before,
       coalesce(sum(value) filter (where ts >= ? and regexp_matches(name, 'cpu', 'i')), 0)
           / greatest(count(*) filter (where ts >= ? and regexp_matches(name, 'cpu', 'i')), 1)
           as cpu_after,
       count(*) filter (where ts < ?) as samples_before
from metrics
where labels['node'] is not null and not regexp_matches(name, '^(node|host)_', 'i')
group by all"""
HOT = 0.85  # a node this busy (share of its CPU; percent metrics are scaled) is saturated
MIN_RISE = 1.5


class NoisyNeighbour(Finding):
    neighbour: str
    victim: str
    nodes: list[str]
    started: bool


@analyzer(timeout_s=30, category="resource",
          reads=["metrics:node_*cpu*", "labels:node", "labels:pod"])
def noisy_neighbour(alert: Alert, telemetry: Telemetry) -> NoisyNeighbour | None:
    """The nodes under the alerting service's pods saturated because of another workload."""
    victim = alert.service
    if victim is None or not telemetry.has_table("metrics"):
        return None
    split = naive(onset_of(alert)) - METRIC_LEAD
    nodes = telemetry.sql(NODES_SQL, [split, split, split - METRIC_LEAD, HOT])
    hot = {}
    for node, usual, level, hot_at in nodes.rows:
        if usual is None or level is None:
            continue
        scale = 100.0 if max(usual, level) > 1.0 else 1.0
        if level / scale >= HOT and level >= MIN_RISE * max(usual, 1e-9):
            hot[node] = hot_at
    if not hot:
        return None
    placement = telemetry.sql(PLACEMENT_SQL, [split] * 5)
    victim_nodes = {r[1] for r in placement.rows if r[0] == victim}
    shared = sorted(victim_nodes & set(hot))
    if not shared:
        return None
    scores: dict[str, tuple[float, bool]] = {}
    for service, node, before, after, samples_before in placement.rows:
        if service == victim or node not in shared:
            continue
        started = samples_before == 0
        rise = after - before
        score = rise + (1.0 if started else 0.0)
        if score > scores.get(service, (0.0, False))[0]:
            scores[service] = (score, started)
    if not scores:
        return None
    neighbour = max(sorted(scores), key=lambda s: scores[s][0])
    score, started = scores[neighbour]
    if score <= 0:
        return None
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
