"""The schema of `casebook.yaml`: one file for what `casebook serve` runs with.

Every section is optional except what serve cannot start without (telemetry). Unknown keys are
errors, so a typo is reported instead of silently ignored.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from casebook.executor.sources import PrometheusSource

SinkType = Literal["webhook", "slack", "pagerduty", "markdown"]
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# What a link template may name: the entity's name and kind, and the kind itself as an alias
# ({service}, {trace_id} for traces).
TEMPLATE_FIELDS = {"name", "kind", "trace_id", "service", "pod", "host", "account"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Server(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=9095, ge=1, le=65535)
    public_url: str | None = Field(
        default=None,
        description="how people reach this service; report links in sink messages start with it",
    )


class Results(Strict):
    db: Path = Path(".casebook/results.duckdb")
    queue: Path | None = None


class Auth(Strict):
    token: str | None = None
    grafana_secret: str | None = None


class Runtime(Strict):
    local: bool = False
    ray_address: str | None = None
    concurrency: int | None = Field(
        default=None, ge=1, le=64, description="investigations in flight at once"
    )
    deadline_s: float = Field(default=300.0, ge=1)
    cooldown_s: float = Field(default=600.0, ge=0)


class Retention(Strict):
    queue_days: float = Field(default=30.0, ge=1)
    seen_before_days: float = Field(default=30.0, ge=1)
    deliveries_days: float = Field(
        default=30.0, ge=8, description="finished deliveries are kept this long (the log)"
    )


class Delivery(Strict):
    """How the outbox retries: exponential backoff from `backoff_s`, capped, up to a limit."""

    max_attempts: int = Field(default=8, ge=1)
    backoff_s: float = Field(default=10.0, gt=0)
    max_backoff_s: float = Field(default=3600.0, gt=0)
    timeout_s: float = Field(default=10.0, gt=0)


class Sink(Strict):
    """Where investigations (and scheduled reports) are delivered."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    type: SinkType
    url: str | None = None
    secret: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    routing_key: str | None = Field(default=None, description="PagerDuty integration key")
    directory: Path | None = Field(default=None, description="where markdown files are written")
    match: dict[str, str] = Field(
        default_factory=dict, description="alert labels that must all be equal"
    )

    @model_validator(mode="after")
    def _complete(self) -> Sink:
        if self.type == "markdown":
            if self.directory is None:
                raise ValueError("directory: field required for a markdown sink (where files go)")
        elif self.type == "pagerduty":
            if not self.routing_key:
                raise ValueError("routing_key: field required for a pagerduty sink (its integration key)")
        elif not self.url:
            raise ValueError(f"url: field required for a {self.type} sink")
        if self.url is not None and not re.match(r"^https?://[^\s/]+", self.url):
            raise ValueError(f"url: {self.url!r} is not an http(s) URL")
        return self

    @property
    def target(self) -> str:
        """The URL or directory deliveries go to."""
        if self.type == "markdown":
            return str(self.directory)
        return self.url or PAGERDUTY_EVENTS_URL


class Route(Strict):
    """Which sinks an investigation goes to, matched the way Alertmanager routes."""

    match: dict[str, str] = Field(default_factory=dict, description="labels, exact")
    match_re: dict[str, str] = Field(default_factory=dict, description="labels, full regex")
    severity: list[str] = Field(default_factory=list, description="the alert's severity label")
    team: list[str] = Field(default_factory=list, description="the alert's team label")
    category: list[str] = Field(default_factory=list, description="the top cause's category")
    sinks: list[str] = Field(min_length=1)
    continue_: bool = Field(
        default=False, alias="continue", description="also try the routes after this one"
    )

    @field_validator("match_re")
    @classmethod
    def _compiles(cls, value: dict[str, str]) -> dict[str, str]:
        for label, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{label}: {pattern!r} is not a regular expression ({exc})") from None
        return value


class CoverageSchedule(Strict):
    every: Literal["day", "week"] = "week"
    at: str = Field(default="mon 09:00", description="'mon 09:00' (UTC); '09:00' when daily")
    sinks: list[str] = Field(min_length=1)

    @field_validator("at")
    @classmethod
    def _moment(cls, value: str) -> str:
        parts = value.lower().split()
        clock = parts[-1] if parts else ""
        day_ok = len(parts) == 1 or (len(parts) == 2 and parts[0][:3] in WEEKDAYS)
        if not day_ok or not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", clock):
            raise ValueError(f"{value!r} is not a time like 'mon 09:00' or '09:00' (UTC)")
        return value.lower()

    @property
    def weekday(self) -> int:
        parts = self.at.split()
        return WEEKDAYS.index(parts[0][:3]) if len(parts) == 2 else 0

    @property
    def hour_minute(self) -> tuple[int, int]:
        hour, minute = self.at.split()[-1].split(":")
        return int(hour), int(minute)


class CasebookFile(Strict):
    """The whole file."""

    telemetry: str | None = Field(default=None, description="Parquet directory, .duckdb or s3://")
    server: Server = Field(default_factory=Server)
    results: Results = Field(default_factory=Results)
    auth: Auth = Field(default_factory=Auth)
    runtime: Runtime = Field(default_factory=Runtime)
    packs: list[str] = Field(default_factory=list)
    sources: list[Annotated[PrometheusSource, Field(discriminator="type")]] = Field(
        default_factory=list
    )
    sinks: list[Sink] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)
    links: dict[str, str] = Field(
        default_factory=dict,
        description="URL templates per entity kind: {trace: 'https://tempo/...{trace_id}'}",
    )
    delivery: Delivery = Field(default_factory=Delivery)
    coverage: CoverageSchedule | None = None
    retention: Retention = Field(default_factory=Retention)

    @field_validator("links")
    @classmethod
    def _templates(cls, value: dict[str, str]) -> dict[str, str]:
        for kind, template in value.items():
            try:
                names = {f for _, f, _, _ in string.Formatter().parse(template) if f}
            except ValueError as exc:
                raise ValueError(f"{kind}: {template!r} is not a template ({exc})") from None
            unknown = names - TEMPLATE_FIELDS - {kind}
            if unknown:
                raise ValueError(
                    f"{kind}: unknown placeholder(s) {', '.join(sorted(unknown))}; use "
                    f"{{name}} (the {kind}'s name){' or {trace_id}' if kind == 'trace' else ''}"
                )
            if not re.match(r"^https?://", template):
                raise ValueError(f"{kind}: {template!r} must start with http:// or https://")
        return value

    def sink(self, name: str) -> Sink | None:
        return next((s for s in self.sinks if s.name == name), None)
