"""The alert bodies casebook reads, as models: Alertmanager (version 4) and Grafana (unified and
legacy) webhooks, and one casebook alert object.

Every field a body may carry says what it expects, so a wrong body is refused at intake naming
the field (`alerts[0].labels: expected an object of string values, got a list`) instead of
being accepted and failing later. Fields casebook does not know are ignored.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from casebook.executor.json_input import kind_of

# Times are refused outside these, after their offset is applied: earlier ones are mistakes
# (Alertmanager's zero time means "no time"), later ones do not fit a Python datetime.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
ZERO_TIME_PREFIX = "0001-01-01"
TIME_EXAMPLE = "expected RFC 3339, e.g. 2026-01-01T12:00:00Z"
# Alert annotations that set the investigation window, and the longest window side allowed:
# a week of telemetry is already far more than one investigation reads.
LOOKBACK = "casebook_lookback_minutes"
LOOKAHEAD = "casebook_lookahead_minutes"
MAX_WINDOW_MINUTES = 7 * 24 * 60
MIN_WINDOW_MINUTES = 1


def _string_map(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PydanticCustomError(
            "string_map", "expected an object of string values, got {found}",
            {"found": kind_of(value)},
        )
    return {str(key): _scalar_text(item, key) for key, item in value.items()}


def _scalar_text(value: Any, key: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) or isinstance(value, float) and math.isfinite(value):
        return str(value)
    raise PydanticCustomError(
        "string_map", "expected an object of string values, got {found} at key {key}",
        {"found": kind_of(value), "key": repr(str(key))[:80]},
    )


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (str, int)) or isinstance(value, float) and math.isfinite(value):
        return _scalar_text(value, "")
    raise PydanticCustomError("text", "expected a string, got {found}", {"found": kind_of(value)})


def _name(value: Any) -> str:
    text = _text(value)
    if not text.strip():
        raise PydanticCustomError("name", "expected a non-empty string, got {shown}",
                                  {"shown": repr(text)[:40] if isinstance(value, str)
                                   else kind_of(value)})
    return text


def moment(value: Any) -> datetime:
    """An RFC 3339 time (nanoseconds allowed) or epoch seconds/milliseconds, as UTC in range."""
    shown = repr(value)[:80]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise _not_a_time(shown)
        try:
            seconds = value / 1000 if abs(value) > 1e11 else value
            parsed = datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise _out_of_range(shown) from None
    elif isinstance(value, str):
        parsed = _iso_time(value, shown)
    else:
        raise PydanticCustomError(
            "time", "expected an RFC 3339 time, e.g. 2026-01-01T12:00:00Z, got {found}",
            {"found": kind_of(value)},
        )
    try:
        parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:
        raise _out_of_range(shown) from None
    if not EARLIEST <= parsed <= LATEST:
        raise _out_of_range(shown)
    return parsed


def _iso_time(text: str, shown: str) -> datetime:
    text = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    # Alertmanager sends nanoseconds; Python keeps microseconds.
    if "." in text:
        head, _, tail = text.partition(".")
        digits = tail[: len(tail) - len(tail.lstrip("0123456789"))]  # not the zone's
        text = f"{head}.{digits[:6]}{tail[len(digits):]}"
    try:
        return datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise _not_a_time(shown) from None


def _not_a_time(shown: str) -> PydanticCustomError:
    return PydanticCustomError(
        "time", "{shown} is not a time; " + TIME_EXAMPLE, {"shown": shown}
    )


def _out_of_range(shown: str) -> PydanticCustomError:
    return PydanticCustomError(
        "time_range",
        "{shown} is outside 1970-01-01 to 9999-12-31 (UTC, after its offset); send the time "
        "the alert started",
        {"shown": shown},
    )


def _optional_moment(value: Any) -> datetime | None:
    # Alertmanager's zero time (0001-01-01T00:00:00Z) and an empty value mean "not ended".
    if value is None or value == "" or str(value).startswith(ZERO_TIME_PREFIX):
        return None
    return moment(value)


def window_minutes(annotations: dict[str, str]) -> tuple[float | None, float | None]:
    """The lookback and lookahead an alert's annotations ask for (None when unset).

    Raises ValueError naming the annotation and the range when one is not a number of minutes
    from 0 to MAX_WINDOW_MINUTES, or when the two together span less than a minute.
    """
    found = []
    for name in (LOOKBACK, LOOKAHEAD):
        text = annotations.get(name)
        if text is None:
            found.append(None)
            continue
        try:
            minutes = float(text)
        except ValueError:
            minutes = math.nan
        if not 0 <= minutes <= MAX_WINDOW_MINUTES:  # NaN fails this too
            raise ValueError(
                f"{name} is {text[:40]!r}; expected a number of minutes from 0 to "
                f"{MAX_WINDOW_MINUTES} (7 days)"
            )
        found.append(minutes)
    back, ahead = found
    if back is not None and ahead is not None and back + ahead < MIN_WINDOW_MINUTES:
        raise ValueError(
            f"{LOOKBACK} ({back:g}) and {LOOKAHEAD} ({ahead:g}) together make a window shorter "
            f"than {MIN_WINDOW_MINUTES} minute; widen one of them"
        )
    return back, ahead


def window_sides(annotations: dict[str, str]) -> tuple[timedelta | None, timedelta | None]:
    """window_minutes as timedeltas."""
    back, ahead = window_minutes(annotations)
    return (
        None if back is None else timedelta(minutes=back),
        None if ahead is None else timedelta(minutes=ahead),
    )


StringMap = Annotated[dict[str, str], BeforeValidator(_string_map)]
Text = Annotated[str, BeforeValidator(_text)]
Moment = Annotated[datetime, BeforeValidator(moment)]
OptionalMoment = Annotated[datetime | None, BeforeValidator(_optional_moment)]
Status = Literal["firing", "resolved"]


def _object(what: str):
    def check(value: Any) -> Any:
        if not isinstance(value, dict):
            raise PydanticCustomError(
                "object", "expected {what} object, got {found}",
                {"what": what, "found": kind_of(value)},
            )
        return value

    return BeforeValidator(check)


def _list(what: str):
    def check(value: Any) -> Any:
        if not isinstance(value, list):
            raise PydanticCustomError(
                "list", "expected a list of {what} objects, got {found}",
                {"what": what, "found": kind_of(value)},
            )
        return value

    return BeforeValidator(check)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class _WindowAnnotations(_Body):
    annotations: StringMap = Field(default_factory=dict)

    @field_validator("annotations")
    @classmethod
    def _window(cls, value: dict[str, str]) -> dict[str, str]:
        window_minutes(value)
        return value


class WebhookAlert(_WindowAnnotations):
    """One alert of an Alertmanager or Grafana group."""

    status: Text = "firing"
    labels: StringMap = Field(default_factory=dict)
    starts_at: Moment | None = Field(default=None, alias="startsAt")
    ends_at: OptionalMoment = Field(default=None, alias="endsAt")
    generator_url: Text = Field(default="", alias="generatorURL")
    dashboard_url: Text = Field(default="", alias="dashboardURL")  # Grafana's links
    panel_url: Text = Field(default="", alias="panelURL")
    silence_url: Text = Field(default="", alias="silenceURL")
    values: dict[str, Any] | None = None  # Grafana's query values, e.g. {"B": 0.93}
    fingerprint: Text = ""
    title: Text = ""


class AlertmanagerBody(_Body):
    """An Alertmanager webhook (version 4): a group of alerts with labels they share."""

    version: Text = ""
    status: Text = ""
    receiver: Text = ""
    group_key: Text = Field(default="", alias="groupKey")
    group_labels: StringMap = Field(default_factory=dict, alias="groupLabels")
    common_labels: StringMap = Field(default_factory=dict, alias="commonLabels")
    common_annotations: StringMap = Field(default_factory=dict, alias="commonAnnotations")
    external_url: Text = Field(default="", alias="externalURL")
    truncated_alerts: int = Field(default=0, ge=0, alias="truncatedAlerts")
    alerts: Annotated[
        list[Annotated[WebhookAlert, _object("an alert")]], _list("alert")
    ]


class GrafanaBody(AlertmanagerBody):
    """A Grafana unified alerting webhook: Alertmanager's shape plus Grafana's own fields."""

    org_id: int | None = Field(default=None, alias="orgId")
    state: Text = ""
    title: Text = ""
    message: Text = ""


class GrafanaLegacyBody(_Body):
    """A legacy Grafana (dashboard alerting) webhook: one rule, its tags and state."""

    rule_name: Text = Field(default="", alias="ruleName")
    title: Text = ""
    state: Text = "alerting"
    message: Text = ""
    tags: StringMap = Field(default_factory=dict)
    starts_at: Moment | None = Field(default=None, alias="startsAt")
    time: Moment | None = None
    eval_matches: Annotated[list[Annotated[dict[str, Any], _object("a match")]], _list("match")] \
        = Field(default_factory=list, alias="evalMatches")


class CasebookAlertBody(_WindowAnnotations):
    """One casebook alert object, as `casebook investigate` and POST /api/investigations take."""

    name: Annotated[str, BeforeValidator(_name)]
    status: Status = "firing"
    labels: StringMap = Field(default_factory=dict)
    starts_at: Moment = Field(validation_alias=AliasChoices("starts_at", "startsAt"))
    ends_at: OptionalMoment = Field(default=None, validation_alias=AliasChoices("ends_at", "endsAt"))
    fingerprint: Text = ""
    source: Text = "casebook"
    generator_url: Text = ""
