"""Which alerts are new, and what to do with each.

Alertmanager re-sends a whole group every group_interval while it changes and every
repeat_interval while it fires, so most alerts that arrive were seen before. An alert is the same
alert when its (fingerprint, status, startsAt) is; a flapping alert fires again with a new
startsAt, and within the cooldown it is recorded against the investigation it repeats.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from casebook.sdk.models import Alert


class Action(StrEnum):
    INVESTIGATE = "investigate"
    RESOLVE = "resolve"  # note the resolution on the investigation of the same alert
    COOLDOWN = "cooldown"  # fired again soon after an investigation: note it there instead


@dataclass(frozen=True)
class DedupKey:
    """What makes two deliveries the same alert."""

    fingerprint: str
    status: str
    starts_at: str  # UTC, ISO 8601 with microseconds


def dedup_key(alert: Alert) -> DedupKey:
    """The (fingerprint, status, startsAt) of an alert."""
    starts = alert.starts_at.astimezone(UTC).isoformat(timespec="microseconds")
    return DedupKey(alert.fingerprint, alert.status, starts)


def action_for(alert: Alert, nearest_investigated: datetime | None, cooldown_s: float) -> Action:
    """What a new webhook alert asks for, given when the nearest investigated firing began.

    `nearest_investigated` is the startsAt of the investigated firing of the same fingerprint
    that is closest in time to this alert (None when there is none).
    """
    if alert.status == "resolved":
        return Action.RESOLVE
    if nearest_investigated is not None and cooldown_s > 0:
        apart = abs((alert.starts_at - nearest_investigated).total_seconds())
        if apart < cooldown_s:
            return Action.COOLDOWN
    return Action.INVESTIGATE
