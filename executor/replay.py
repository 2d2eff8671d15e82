"""Replay stored alerts against changed analyzers: what each alert would conclude now.

The results store holds every alert an installation saw, with its ranked causes and the
on-call's feedback. Re-running those alerts with a changed pack shows, per alert, which causes
are new, which were lost and which moved, before the change lands; feedback turns the alerts it
covers into ground truth.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from casebook.executor.errors import UserError
from casebook.sdk.models import Alert, TimeWindow

Cause = tuple[str, str, str]  # (entity kind, entity name, category)
TOP = 3


def parse_duration(text: str) -> timedelta:
    """`14d`, `36h`, `90m`, `2w` as a timedelta."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([wdhm])\s*", text or "")
    if not match:
        raise UserError(f"--since {text!r} is not a duration; write e.g. 14d, 36h, 90m or 2w")
    value, unit = float(match[1]), match[2]
    units = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes"}
    return timedelta(**{units[unit]: value})


@dataclass
class StoredAlert:
    investigation_id: str
    alert: Alert
    window: TimeWindow
    created_at: datetime
    causes: list[Cause]
    helpful: bool | None  # the on-call's verdict on the investigation, if any


@dataclass
class AlertChange:
    """How one stored alert's conclusion changed."""

    investigation_id: str
    alert: str
    created_at: str
    before: list[Cause]
    after: list[Cause]
    helpful: bool | None
    new: list[Cause] = field(default_factory=list)
    lost: list[Cause] = field(default_factory=list)
    reranked: bool = False
    regression: str | None = None
    error: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.new or self.lost or self.reranked or self.error)


def stored_alerts(results_path: Path, since: timedelta) -> list[StoredAlert]:
    """Firing alerts investigated in the last `since`, oldest first, with causes and feedback."""
    import duckdb

    if not results_path.exists():
        raise UserError(f"no results database at {results_path}; pass the file that "
                        "`casebook serve --db` or `casebook investigate --db` writes")
    try:
        con = duckdb.connect(str(results_path), read_only=True)
    except duckdb.IOException as exc:
        raise UserError(f"cannot open {results_path} ({exc}); while `casebook serve` holds it, "
                        "replay a copy taken with serve stopped, or its periodic backup") from exc
    cutoff = datetime.now(UTC) - since
    with con:
        heads = con.execute(
            "select id, alert, window_start, window_end, created_at from investigations "
            "where created_at >= ? and alert_status = 'firing' order by created_at, id",
            [cutoff]).fetchall()
        causes: dict[str, list[Cause]] = {}
        for investigation, kind, name, category in con.execute(
                "select investigation_id, entity_kind, entity_name, category from causes "
                "order by investigation_id, rank").fetchall():
            causes.setdefault(investigation, []).append((kind, name, category))
        verdicts = dict(con.execute(
            "select investigation_id, arg_max(helpful, created_at) from feedback "
            "where finding_id is null group by 1").fetchall())
    return [StoredAlert(row[0], Alert.model_validate_json(row[1]),
                        TimeWindow(start=row[2], end=row[3]), row[4],
                        causes.get(row[0], []), verdicts.get(row[0])) for row in heads]


def compare(stored: StoredAlert, after: list[Cause], error: str | None = None) -> AlertChange:
    """What changed between the stored conclusion and the replayed one, and whether it is worse."""
    before = stored.causes
    change = AlertChange(stored.investigation_id, stored.alert.name,
                         stored.created_at.isoformat(), before[:TOP], after[:TOP],
                         stored.helpful, error=error)
    change.new = [c for c in after[:TOP] if c not in before]
    change.lost = [c for c in before[:TOP] if c not in after]
    change.reranked = bool(before and after and before[0] != after[0])
    if error:
        change.regression = f"the replay failed: {error}"
    elif before and stored.helpful is not False:
        confirmed = " (confirmed helpful by feedback)" if stored.helpful else ""
        if not after or after[0] != before[0]:
            change.regression = f"the rank-1 cause {_describe(before[0])}{confirmed} is " + (
                "gone" if before[0] not in after else f"now rank {after.index(before[0]) + 1}")
        elif change.lost:
            lost = change.lost[0]
            change.regression = (f"the cause {_describe(lost)} (rank {before.index(lost) + 1})"
                                 f"{confirmed} is gone")
    return change


def replay(stored: Sequence[StoredAlert], *, telemetry: str, registry: Any, runtime: Any,
           on_alert: Callable[[AlertChange], None] | None = None) -> list[AlertChange]:
    """Re-investigate each stored alert over its stored window with the given analyzers."""
    from casebook.executor.pipeline import investigate

    changes = []
    for item in stored:
        try:
            record = investigate(
                item.alert, telemetry=telemetry, registry=registry, runtime=runtime,
                narrate=False, lookback=item.alert.starts_at - item.window.start,
                lookahead=item.window.end - item.alert.starts_at)
            after = [(c.entity.kind, c.entity.name, c.category) for c in record.causes]
            change = compare(item, after)
        except UserError as exc:
            change = compare(item, [], error=str(exc))
        changes.append(change)
        if on_alert is not None:
            on_alert(change)
    return changes


def summary(changes: list[AlertChange]) -> dict[str, Any]:
    """The JSON `backtest --replay --json` prints."""
    labelled = [c for c in changes if c.helpful is not None]
    right_after = sum(1 for c in labelled if c.helpful and c.after and c.before
                      and c.after[0] == c.before[0])
    return {
        "alerts": len(changes),
        "changed": sum(c.changed for c in changes),
        "regressions": sum(c.regression is not None for c in changes),
        "feedback_labelled": len(labelled),
        "helpful_kept": right_after,
        "per_alert": [{**asdict(c), "changed": c.changed} for c in changes],
    }


def render_diff(changes: list[AlertChange]) -> str:
    """A readable per-alert diff: `-` lost, `+` new, `~` moved, and why it is a regression."""
    lines: list[str] = []
    for change in changes:
        if not change.changed:
            continue
        verdict = {True: ", feedback: helpful", False: ", feedback: not helpful",
                   None: ""}[change.helpful]
        lines.append(f"{change.alert}  {change.created_at[:16]}  {change.investigation_id}"
                     f"{verdict}")
        if change.error:
            lines.append(f"  ! {change.error}")
        for cause in change.lost:
            lines.append(f"  - {_describe(cause)}  (was rank {change.before.index(cause) + 1})")
        for cause in change.new:
            lines.append(f"  + {_describe(cause)}  (now rank {change.after.index(cause) + 1})")
        if change.reranked and not change.lost and not change.new:
            lines.append(f"  ~ rank 1: {_describe(change.before[0])} -> "
                         f"{_describe(change.after[0])}")
        if change.regression:
            lines.append(f"  REGRESSION: {change.regression}")
    unchanged = sum(not c.changed for c in changes)
    lines.append(f"{len(changes)} alerts replayed: {len(changes) - unchanged} changed, "
                 f"{unchanged} unchanged, {sum(c.regression is not None for c in changes)} "
                 "regression(s)")
    return "\n".join(lines)


def _describe(cause: Cause) -> str:
    kind, name, category = cause
    return f"{category} on {kind} {name}"


def dump(changes: list[AlertChange]) -> str:
    return json.dumps(summary(changes), indent=2, default=str)
