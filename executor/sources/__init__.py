"""Telemetry pulled at alert time from systems a team already runs (Prometheus first)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SourceQuery(BaseModel):
    """One PromQL query (or bare metric selector) snapshotted into `metrics` for the window."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(description="PromQL expression or metric selector, e.g. rate(http_requests_total[1m])")
    name: str | None = Field(default=None, description="metric name to store; defaults to the series' __name__")
    service_label: str = Field(default="service", description="series label that names the service")


class PrometheusSource(BaseModel):
    """A Prometheus server queried with query_range over the investigation window."""

    model_config = ConfigDict(extra="forbid")

    name: str
    type: Literal["prometheus"] = "prometheus"
    url: str = Field(description="base URL, e.g. http://prometheus:9090")
    queries: list[SourceQuery] = Field(min_length=1)
    step_s: float = Field(default=15.0, gt=0)
    timeout_s: float = Field(default=10.0, gt=0)
    bearer_token: str | None = None


Source = PrometheusSource

__all__ = ["PrometheusSource", "Source", "SourceQuery"]
