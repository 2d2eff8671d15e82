"""Telemetry pulled at alert time from systems a team already runs (Prometheus first)."""

from __future__ import annotations

from pathlib import Path
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


def load_sources(path: str | Path) -> list[Source]:
    """The `sources:` list of a YAML file, checked; errors name the entry and the field."""
    import yaml
    from pydantic import TypeAdapter, ValidationError

    from casebook.executor.errors import UserError

    try:
        document = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"--sources {path}: cannot read it as YAML ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("sources"), list):
        raise UserError(f"--sources {path}: expected a YAML mapping with a `sources:` list, e.g. "
                        "sources: [{name: prom, url: 'http://prometheus:9090', queries: "
                        "[{query: cpu_usage_ratio}]}]")
    try:
        return TypeAdapter(list[Source]).validate_python(document["sources"])
    except ValidationError as exc:
        problems = "; ".join(
            "sources" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"])
            + f": {e['msg'].lower()}" for e in exc.errors()[:5])
        raise UserError(f"--sources {path}: {problems}") from None


__all__ = ["PrometheusSource", "Source", "SourceQuery", "load_sources"]
