"""Change attribution: which change, if any, explains the anomalies the analyzers found.

Every change finding (a deploy, config push, flag flip or scaling step, from `change_event`) is
scored against the onset of every anomaly found on the changed service and on its callers:

- time: the anomaly must begin after the change (a minute of slack for coarse onsets); the
  closer it follows, the stronger the tie;
- path: an anomaly on the changed service counts fully, one on a caller less with every hop;
- version split: errors or latency concentrated on the new version's pods tie the change to
  the service even when its own onset is unclear.

A change explains nothing unless something went wrong on the changed service itself (its own
anomaly, or the version split): a change on a quiet service is not why its callers broke.
Each anomaly goes to the change that explains it best. The change then becomes a cause in its
own category with those anomalies as its evidence (they rank below it); a change that came
after the onsets it could explain is ruled out, and the finding says so.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from casebook.executor.record import FindingRecord

SLACK = timedelta(minutes=1)
HALF_STRENGTH_MINUTES = 10.0  # an anomaly this long after the change is tied at half strength
HOP_FACTOR = 0.8
MIN_STRENGTH = 0.3
KIND_PRIOR = {"deploy": 1.0, "release": 1.0, "rollout": 1.0, "canary": 1.0, "flag": 0.95,
              "feature_flag": 0.95, "config": 0.9, "scale": 0.8}
# Anomalies a change does not produce: an expired certificate, a full disk, abusive clients,
# the network between services, a cache that lost its contents, a traffic surge. Their own
# analyzers name the mechanism.
NOT_FROM_CHANGES = {"security", "abuse", "network", "cache", "capacity", "data"}
CHANGE_CATEGORIES = {"deploy", "config", "flag", "capacity"}
# What travels from a service to its callers: errors, latency, timeouts. A caller's CPU or
# memory shortage is its own, and so is a retry storm (`dependency`): it names a service that
# fails by itself, so only a change on that service can explain it.
PROPAGATED = {"symptom", "other", "code"}


def is_change(finding: FindingRecord) -> bool:
    """Whether the finding describes one change event (it carries the change's facts)."""
    return {"at", "kind", "callers", "attributable"} <= set(finding.facts)


def attribute_changes(findings: list[FindingRecord]) -> None:
    """Tie changes to the anomalies they explain; updates the change findings in place."""
    changes = [f for f in findings if is_change(f)]
    if not changes:
        return
    observed = [f for f in findings if not is_change(f) and f.onset is not None and _service(f)]
    mechanisms = _mechanism_claims(observed)
    anomalies = [f for f in observed if f.category not in NOT_FROM_CHANGES
                 and f.id not in mechanisms]
    claims: dict[str, tuple[float, FindingRecord]] = {}
    local: dict[str, float] = {}
    ruled_out: dict[str, str] = {}
    for change in changes:
        if not change.facts.get("attributable"):
            continue
        best_local, reason = _local_strength(change, anomalies, observed)
        local[change.id] = best_local
        if reason:
            ruled_out[change.id] = reason
        if best_local < MIN_STRENGTH:
            continue
        began = _local_onset(change, anomalies)
        for anomaly in anomalies:
            strength = _strength(change, anomaly)
            if _service(anomaly) != change.facts["service"] and (
                    anomaly.category not in PROPAGATED
                    or (began is not None and anomaly.onset < began - SLACK)):  # type: ignore
                continue  # a caller's own kind of trouble, or trouble that came first
            if strength >= MIN_STRENGTH and strength > claims.get(anomaly.id, (0.0, None))[0]:
                claims[anomaly.id] = (strength, change)

    by_change: dict[str, dict[str, float]] = {}
    for anomaly_id, (strength, change) in claims.items():
        by_change.setdefault(change.id, {})[anomaly_id] = round(strength, 3)
    titles = {f.id: f.title for f in findings}
    for change in changes:
        explained = by_change.get(change.id, {})
        if explained:
            strength = max(max(explained.values()), local.get(change.id, 0.0))
            change.explains = list(dict.fromkeys([*change.explains, *explained]))
            change.facts["explained_strength"] = explained
            # As sure as the tie, and as the clearest anomaly of its own service is.
            evidence = _local_evidence(change, anomalies)
            change.confidence = round(min(0.95, (0.3 + 0.65 * strength)
                                          * (0.5 + 0.5 * evidence)), 4)
            change.severity = "critical" if strength >= 0.6 else "warning"
            first = min(explained, key=lambda i: explained[i])
            change.summary += (f" It precedes and explains {len(explained)} anomal"
                               f"{'y' if len(explained) == 1 else 'ies'}, among them "
                               f"\"{titles[first]}\".")
        elif change.id in ruled_out:
            change.facts["ruled_out"] = ruled_out[change.id]
            change.confidence = 0.05
            change.summary += f" Ruled out: {ruled_out[change.id]}."
        else:
            change.confidence = min(change.confidence, 0.1)


def _mechanism_claims(observed: list[FindingRecord]) -> set[str]:
    """Anomalies that a finding of a kind no change produces (an expired certificate, a lost
    cache, a surge, abuse) explains and preceded: their analyzer named the mechanism, so a
    change that happened to come before them is not why they happened."""
    by_id = {f.id: f for f in observed}
    claimed = set()
    for mechanism in observed:
        if mechanism.category not in NOT_FROM_CHANGES or mechanism.onset is None:
            continue
        for fid in mechanism.explains:
            anomaly = by_id.get(fid)
            if anomaly is not None and anomaly.onset is not None and \
                    mechanism.onset <= anomaly.onset + SLACK:
                claimed.add(fid)
    return claimed


def _service(finding: FindingRecord) -> str | None:
    return next((e.name for e in finding.entities if e.kind == "service"), None)


def _strength(change: FindingRecord, anomaly: FindingRecord) -> float:
    """How well the change explains the anomaly, 0 to 1 (0 when it cannot)."""
    service = change.facts["service"]
    where = _service(anomaly)
    if where == service:
        path = 1.0
    elif where in change.facts.get("callers", {}):
        path = HOP_FACTOR ** change.facts["callers"][where]
        # An analyzer that placed the caller's anomaly on another callee's account keeps it
        # there unless that callee lies between the caller and the changed service.
        through = anomaly.facts.get("explained_by") or []
        on_path = {service, *change.facts.get("callers", {})}
        if through and not on_path.intersection(through):
            return 0.0
    else:
        return 0.0
    assert anomaly.onset is not None and change.onset is not None
    gap = anomaly.onset - change.onset
    if gap < -SLACK:
        return 0.0
    # A change within the slack after a (coarsely dated) onset may still be the cause, but
    # less likely than one just before it: the time counts either way.
    minutes = abs(gap.total_seconds()) / 60
    timing = 1.0 / (1.0 + minutes / HALF_STRENGTH_MINUTES)
    prior = KIND_PRIOR.get(str(change.facts.get("kind", "")).lower(), 0.8)
    return timing * path * prior


def _from_below(anomaly: FindingRecord, downstream: list[FindingRecord]) -> bool:
    """Whether a callee's trouble came first (or the analyzer placed it on a callee)."""
    assert anomaly.onset is not None
    if set(anomaly.facts.get("explained_by") or []) & {_service(d) for d in downstream}:
        return True
    return any(d.onset is not None and d.onset < anomaly.onset for d in downstream)


def _local_onset(change: FindingRecord, anomalies: list[FindingRecord]) -> datetime | None:
    """When the changed service's own trouble began (None: known only from the version split)."""
    tied = [a.onset for a in anomalies if _service(a) == change.facts["service"]
            and a.onset is not None and _strength(change, a) >= MIN_STRENGTH]
    return min(tied, default=None)


def _local_evidence(change: FindingRecord, anomalies: list[FindingRecord]) -> float:
    """How clear the changed service's own trouble is: its best tied anomaly's confidence, or
    the version split."""
    tied = [a.confidence for a in anomalies if _service(a) == change.facts["service"]
            and _strength(change, a) >= MIN_STRENGTH]
    return max([*tied, float(change.facts.get("split_strength") or 0.0)], default=0.0)


def _local_strength(change: FindingRecord, anomalies: list[FindingRecord],
                    observed: list[FindingRecord]) -> tuple[float, str]:
    """The best tie to an anomaly on the changed service itself, and a reason when ruled out.

    An anomaly of the changed service that one of its callees had first came from that callee,
    not from the change: a caller of a failing service fails too.
    """
    service = change.facts["service"]
    callees = change.facts.get("callees") or {}
    downstream = [f for f in observed if _service(f) in callees]
    mine = [a for a in anomalies if _service(a) == service and not _from_below(a, downstream)]
    best = max((_strength(change, a) for a in mine), default=0.0)
    best = max(best, float(change.facts.get("split_strength") or 0.0))
    if best >= MIN_STRENGTH:
        return best, ""
    callers = change.facts.get("callers", {})
    related = mine + [a for a in anomalies if _service(a) in callers]
    assert change.onset is not None
    earlier = [a for a in related if a.onset is not None and a.onset < change.onset - SLACK]
    if earlier:
        first = min(earlier, key=lambda a: a.onset)  # type: ignore[arg-type,return-value]
        assert first.onset is not None
        minutes = (change.onset - first.onset).total_seconds() / 60
        return best, (f"it came {minutes:.0f} min after the onset of \"{first.title}\" "
                      f"({first.onset:%H:%M} UTC)")
    return best, ""
