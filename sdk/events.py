"""Event isolation: which changes (deploys, config pushes, flag flips, ...) could have caused an onset."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from casebook.sdk.series import seconds, to_datetime, to_epoch

Scope = Literal["service", "dependency", "global", "other"]

# How much an event's scope counts: a change to the alerting service itself is the prime
# suspect, one to a dependency the next, a fleet-wide change after that.
SCOPE_WEIGHTS: dict[str, float] = {"service": 1.0, "dependency": 0.6, "global": 0.4, "other": 0.1}
# How likely each kind of change is to break things; unknown kinds get DEFAULT_KIND_WEIGHT.
KIND_WEIGHTS: dict[str, float] = {
    "deploy": 1.0,
    "config": 1.0,
    "flag": 0.9,
    "migration": 0.9,
    "scale": 0.6,
    "restart": 0.5,
}
DEFAULT_KIND_WEIGHT = 0.7
GLOBAL_SERVICES = frozenset({"", "*", "all", "global"})


@dataclass(frozen=True)
class RankedEvent:
    """A change event near an onset, with why it ranks where it does."""

    at: datetime
    kind: str
    service: str
    summary: str
    scope: Scope
    lead: timedelta  # how long before the onset it happened
    score: float  # time proximity x scope x kind, in [0, 1]
    row: dict[str, Any] = field(hash=False, compare=False)


def isolate_events(
    events: Any,
    onset: Any,
    window: float | timedelta = timedelta(hours=1),
    *,
    service: str | None = None,
    dependencies: Collection[str] = (),
    grace: float | timedelta = 0.0,
    kind_weights: Mapping[str, float] | None = None,
) -> list[RankedEvent]:
    """Rank the change events that happened up to `window` before the onset, best suspect first.

    Events after the onset cannot have caused it and are left out (`grace` admits a little clock
    skew). Closeness in time decays exponentially (a change at the far edge of the window
    keeps 13%), then scope weighs: the `service` itself, one of its `dependencies`, a global
    change (no service, or "*"/"all"/"global"), or another service.

    >>> rows = [{"ts": 900, "kind": "deploy", "service": "api", "summary": "v2"}]
    >>> [e.summary for e in isolate_events(rows, onset=1000, service="api")]
    ['v2']
    """
    rows = list(events.dicts()) if hasattr(events, "dicts") else list(events)
    onset_s, width, slack = to_epoch(onset), seconds(window), seconds(grace)
    if width <= 0:
        raise ValueError(f"isolate_events: window must be positive, got {window!r}")
    weights = {**KIND_WEIGHTS, **(kind_weights or {})}
    ranked = []
    for row in _checked(rows):
        lead = onset_s - to_epoch(row["ts"])
        if lead < -slack or lead > width:
            continue
        scope = _scope(str(row.get("service") or ""), service, dependencies)
        kind = str(row.get("kind") or "").lower()
        closeness = math.exp(-2.0 * max(lead, 0.0) / width)
        score = closeness * SCOPE_WEIGHTS[scope] * weights.get(kind, DEFAULT_KIND_WEIGHT)
        ranked.append(
            RankedEvent(
                at=to_datetime(to_epoch(row["ts"])),
                kind=kind,
                service=str(row.get("service") or ""),
                summary=str(row.get("summary") or ""),
                scope=scope,
                lead=timedelta(seconds=lead),
                score=min(score, 1.0),
                row=dict(row),
            )
        )
    ranked.sort(key=lambda e: (-e.score, e.lead))
    return ranked


def _checked(rows: Iterable[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    for row in rows:
        if "ts" not in row:
            raise ValueError(
                f"isolate_events: an event has no 'ts' column; its columns are "
                f"{', '.join(map(str, row))}. Select ts, kind, service, summary from events"
            )
        yield row


def _scope(event_service: str, service: str | None, dependencies: Collection[str]) -> Scope:
    if event_service.lower() in GLOBAL_SERVICES:
        return "global"
    if service is not None and event_service == service:
        return "service"
    if event_service in dependencies:
        return "dependency"
    return "other"
