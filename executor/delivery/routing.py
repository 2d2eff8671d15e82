"""Which sinks hear about an investigation: routes tried in order as in Alertmanager (the first
that matches wins unless it says `continue: true`); with no routes, every sink. A sink's own
`match:` on alert labels applies last."""

from __future__ import annotations

import re

from casebook.executor.config.schema import CasebookFile, Route, Sink
from casebook.executor.record import InvestigationRecord


def sinks_for(config: CasebookFile, record: InvestigationRecord) -> list[Sink]:
    """The sinks this investigation is delivered to, each once, in configuration order."""
    if config.routes:
        names: list[str] = []
        for route in config.routes:
            if route_matches(route, record):
                names += route.sinks
                if not route.continue_:
                    break
        chosen = [s for s in config.sinks if s.name in names]
    else:
        chosen = list(config.sinks)
    labels = record.alert.labels
    return [s for s in chosen if all(labels.get(k) == v for k, v in s.match.items())]


def route_matches(route: Route, record: InvestigationRecord) -> bool:
    """Every condition the route states holds (a route with none matches everything)."""
    labels = record.alert.labels
    if any(labels.get(k) != v for k, v in route.match.items()):
        return False
    if any(re.fullmatch(p, labels.get(k, "")) is None for k, p in route.match_re.items()):
        return False
    if route.severity and labels.get("severity") not in route.severity:
        return False
    if route.team and labels.get("team") not in route.team:
        return False
    top = record.causes[0].category if record.causes else None
    return not route.category or top in route.category
