"""The typed values analyzers receive and return."""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


def utc(value: datetime) -> datetime:
    """The same instant as an aware UTC datetime (naive values are taken as UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class Alert(BaseModel):
    """The alert under investigation, whatever system sent it."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="alert name (Alertmanager's alertname label)")
    status: Literal["firing", "resolved"] = "firing"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime
    ends_at: datetime | None = None
    fingerprint: str = ""
    source: str = "casebook"
    generator_url: str = Field(default="", description="the rule that fired (Prometheus, Grafana)")
    dashboard_url: str = Field(default="", description="Grafana's dashboardURL")
    panel_url: str = Field(default="", description="Grafana's panelURL")
    silence_url: str = Field(default="", description="Grafana's silenceURL")
    values: dict[str, float] = Field(
        default_factory=dict, description="the values the rule evaluated (Grafana's `values`)"
    )

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return None if value is None else utc(value)

    @model_validator(mode="after")
    def _fill(self) -> Alert:
        labels = dict(self.labels)
        labels.setdefault("alertname", self.name)
        object.__setattr__(self, "labels", labels)
        if not self.fingerprint:
            digest = hashlib.sha256(json.dumps(sorted(labels.items())).encode()).hexdigest()
            object.__setattr__(self, "fingerprint", digest[:16])
        return self

    @property
    def service(self) -> str | None:
        """The alerting service, from the usual labels."""
        for key in ("service", "service_name", "job", "app"):
            if self.labels.get(key):
                return self.labels[key]
        return None


class TimeWindow(BaseModel):
    """The investigation window, [start, end)."""

    model_config = ConfigDict(frozen=True)

    start: datetime
    end: datetime

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return utc(value)

    @model_validator(mode="after")
    def _ordered(self) -> TimeWindow:
        if self.end <= self.start:
            raise ValueError(f"window end {self.end} must be after its start {self.start}")
        return self

    @classmethod
    def around(cls, moment: datetime, before: timedelta, after: timedelta) -> TimeWindow:
        moment = utc(moment)
        return cls(start=moment - before, end=moment + after)

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def before(self, length: timedelta | None = None) -> TimeWindow:
        """The period just before this window (same length by default): a baseline."""
        length = length or self.duration
        return TimeWindow(start=self.start - length, end=self.start)

    def shifted(self, offset: timedelta) -> TimeWindow:
        return TimeWindow(start=self.start + offset, end=self.end + offset)

    def __contains__(self, moment: datetime) -> bool:
        return self.start <= utc(moment) < self.end


QUOTE_OPEN, QUOTE_CLOSE = "\u201c", "\u201d"


def quoted(text: str, limit: int = 160) -> str:
    """Telemetry text (a log line, an event summary, an annotation) marked as copied, for a
    finding's title or summary: `f"Deploy on {service}: {quoted(event.summary)}"`.

    Narration treats what is between the marks as a record of what was logged, never as a
    statement by the analyzer: it cannot support a claim about causes, teams or actions.
    """
    text = " ".join(str(text).replace(QUOTE_OPEN, "'").replace(QUOTE_CLOSE, "'").split())
    if len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    return f"{QUOTE_OPEN}{text}{QUOTE_CLOSE}"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


CATEGORIES = (
    "deploy", "config", "code", "dependency", "capacity", "cache", "resource",
    "network", "abuse", "data", "security", "flag", "symptom", "other",
)
# Categories that packs added explicitly with `Pack(categories=[...])`.
_EXTRA_CATEGORIES: set[str] = set()


def known_categories() -> tuple[str, ...]:
    """The closed vocabulary of cause categories: the built-in ones plus those packs declared."""
    return CATEGORIES + tuple(sorted(_EXTRA_CATEGORIES - set(CATEGORIES)))


def add_categories(names: Iterable[str]) -> None:
    """Extend the vocabulary (what `Pack(categories=...)` does); names are lower_snake_case."""
    for name in names:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise ValueError(f"category {name!r} is not a lower_snake_case word")
        _EXTRA_CATEGORIES.add(name)


def unknown_category_message(value: str) -> str:
    """Why `value` is refused as a category, and how to fix it."""
    close = difflib.get_close_matches(value, known_categories(), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return (f"unknown category {value!r}; {hint}known categories: "
            f"{', '.join(known_categories())} (a pack adds its own with "
            f"`PACK = Pack(categories=[{value!r}])` in its __init__.py)")


class Entity(BaseModel):
    """What a finding is about: a service, a pod, an account, a dimension slice, ..."""

    model_config = ConfigDict(frozen=True)

    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"

    @classmethod
    def service(cls, name: str) -> Entity:
        return cls(kind="service", name=name)


class Evidence(BaseModel):
    """What a finding rests on: the query that produced it and a bounded sample."""

    query: str = ""
    params: list[Any] = Field(default_factory=list)
    columns: list[str] = Field(default_factory=list)
    rows: list[list[Any]] = Field(default_factory=list)
    series: dict[str, list[tuple[datetime, float]]] = Field(default_factory=dict)
    note: str = ""

    MAX_ROWS: ClassVar[int] = 50
    MAX_POINTS: ClassVar[int] = 300

    @model_validator(mode="after")
    def _bounded(self) -> Evidence:
        if len(self.rows) > self.MAX_ROWS:
            self.rows = self.rows[: self.MAX_ROWS]
        for name, points in list(self.series.items()):
            if len(points) > self.MAX_POINTS:
                step = len(points) / self.MAX_POINTS
                self.series[name] = [points[int(i * step)] for i in range(self.MAX_POINTS)]
        return self


class Mitigation(BaseModel):
    """A suggested action for a person to take. casebook never executes anything."""

    action: str
    detail: str = ""
    risk: Literal["low", "medium", "high"] = "medium"


class FollowUp(BaseModel):
    """A request to run another analyzer on another entity."""

    model_config = ConfigDict(frozen=True)

    analyzer: str
    params: dict[str, Any] = Field(default_factory=dict)


class Finding(BaseModel):
    """Something notable an analyzer established. Subclass it to add typed fields."""

    title: str
    summary: str
    severity: Severity = Severity.WARNING
    confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    category: str = "other"
    entities: list[Entity] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)
    mitigations: list[Mitigation] = Field(default_factory=list)
    followups: list[FollowUp] = Field(default_factory=list)
    onset: datetime | None = Field(default=None, description="when the thing began")
    explains: list[str] = Field(
        default_factory=list,
        description="analyzer names whose findings this one accounts for (they rank below it)",
    )

    @field_validator("onset")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return None if value is None else utc(value)

    @field_validator("category")
    @classmethod
    def _known(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in CATEGORIES and value not in _EXTRA_CATEGORIES:
            raise ValueError(unknown_category_message(value))
        return value

    def facts(self) -> dict[str, Any]:
        """The typed fields a subclass adds, as plain values."""
        base = set(Finding.model_fields)
        return {k: v for k, v in self.model_dump(mode="json").items() if k not in base}
