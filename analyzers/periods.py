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


# How far before the alert a fault may have begun: alerts wait for a breach to last (`for: 5m`)
# and evaluate every minute or so.
MAX_ALERT_DELAY = timedelta(minutes=15)


def series_onset(times: list[datetime], values: list[float], alert_at: datetime,
                 higher_is_worse: bool = True) -> datetime | None:
    """When a series became bad, up to MAX_ALERT_DELAY before the alert; None if it was not.

    The usual range comes from the samples before that reach (median and robust spread); the
    onset is the first sample of the unbroken run of unusual samples that reaches the alert.
    A baseline that ends there does not swallow the faulty minutes before the alert fired.
    """
    reach = alert_at - MAX_ALERT_DELAY
    history = [v for t, v in zip(times, values, strict=True) if t < reach]
    if len(history) < 5:
        return None
    ordered = sorted(history)
    middle = ordered[len(ordered) // 2]
    spread = 1.4826 * sorted(abs(v - middle) for v in history)[len(history) // 2]
    margin = max(4 * spread, 0.2 * abs(middle), 1e-9)

    def bad(value: float) -> bool:
        return value > middle + margin if higher_is_worse else value < middle - margin

    onset = None
    for t, v in sorted(zip(times, values, strict=True), reverse=True):
        if t >= alert_at:
            continue
        if t < reach or not bad(v):
            break
        onset = t
    return onset
