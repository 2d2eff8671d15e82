"""The two periods a root-cause analyzer compares: the history before the onset and what follows.

The onset is the alert's start. The history reaches back a day, further than the investigation
window, because a fair baseline needs normal periods and the hour before an alert often holds
other incidents. Queries read both periods through one handle and split them on the onset.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from casebook.sdk import Alert, Telemetry, TelemetryError
from casebook.sdk.models import utc

HISTORY = timedelta(hours=24)
# Samples this close before the onset already count as "after": an alert fires once a
# breach is seen, and a coarse sample (five minutes in some systems) straddles the onset.
METRIC_LEAD = timedelta(minutes=3)


def onset_of(alert: Alert) -> datetime:
    """When the incident began, as far as the analyzers know: the alert's start."""
    return alert.starts_at


def with_history(telemetry: Telemetry, alert: Alert) -> Telemetry:
    """A handle on the day before the onset up to the end of the investigation window."""
    start = min(onset_of(alert) - HISTORY, telemetry.window.start)
    try:
        return telemetry.between(start, telemetry.window.end)
    except TelemetryError:
        return telemetry  # a handle that cannot open other periods: the window is all there is


def naive(moment: datetime) -> datetime:
    """The same instant as a naive UTC datetime, the form telemetry timestamps are bound in."""
    return utc(moment).replace(tzinfo=None)
