"""Business-metric slices: which dimension values explain a change in a KPI's total.

An alert on a multi-dimensional KPI (failed video sessions across CDN x bitrate x device x
P2P, checkout errors across region x app version, ...) names the table in its annotations:
`table` (required), `dimensions` (comma-separated; default: the table's text columns),
`value_column` (default `value`) and `count_column` (for a rate: value per count; default
`cnt` when the table has it). The minute of the alert is compared with the minutes before it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from casebook.sdk import Alert, Entity, Finding, Severity, Telemetry, analyzer, from_finding
from casebook.sdk.drilldown import drill_down

BASELINE_PERIODS = 4  # minutes before the alert's minute, as the published harnesses use
PERIOD = timedelta(minutes=1)


def names_a_kpi_table(alert: Alert) -> bool:
    return bool(alert.annotations.get("table"))


class KpiDrillDown(Finding):
    table: str
    dimensions: list[str]
    slices: list[str]
    details: dict[str, dict[str, Any]]
    total_change: float
    explained: float


@analyzer(when=names_a_kpi_table, timeout_s=60, category="data",
          reads=["annotation:table"])
def kpi_drilldown(alert: Alert, telemetry: Telemetry) -> KpiDrillDown | None:
    """The slices (dim=value combinations) that explain the change of the KPI's total."""
    notes = alert.annotations
    table = notes["table"]
    if not telemetry.has_table(table):
        return None
    columns = telemetry.sql(f"select * from {_ident(table)} limit 0").columns
    value = notes.get("value_column", "value")
    count = notes.get("count_column", "cnt" if "cnt" in columns else "")
    time_column = next((c for c in ("ts", "timestamp", "time") if c in columns), None)
    if value not in columns or time_column is None:
        return None
    if notes.get("dimensions"):
        dimensions = [d.strip() for d in notes["dimensions"].split(",") if d.strip()]
    else:
        kinds = telemetry.sql(f"describe select * from {_ident(table)}")
        dimensions = [r[0] for r in kinds if r[1] == "VARCHAR"]
    now = alert.starts_at.replace(second=0, microsecond=0, tzinfo=None)
    start = now - BASELINE_PERIODS * PERIOD
    measures = [value] + ([count] if count else [])
    sums = ", ".join(
        f"sum({_ident(m)}) filter (where {time_column} >= ? and {time_column} < ?) as {alias}"
        for m in measures for alias in (f"now_{m}", f"base_{m}"))
    params: list[Any] = []
    for _ in measures:
        params += [now, now + PERIOD, start, now]
    dims = ", ".join(_ident(d) for d in dimensions)
    result = telemetry.sql(
        f"select {dims}, {sums} from {_ident(table)} where {time_column} >= ? and "
        f"{time_column} < ? group by all", [*params, start, now + PERIOD])
    rows = []
    for record in result.dicts():
        row = {d: str(record[d]) for d in dimensions}
        row["value"] = float(record[f"now_{value}"] or 0)
        row["baseline"] = float(record[f"base_{value}"] or 0) / BASELINE_PERIODS
        if count:
            row["count"] = float(record[f"now_{count}"] or 0)
            row["baseline_count"] = float(record[f"base_{count}"] or 0) / BASELINE_PERIODS
        rows.append(row)
    if not rows:
        return None
    found = drill_down(rows, dimensions, "value", "baseline",
                       count="count" if count else None,
                       baseline_count="baseline_count" if count else None)
    if not found.causes:
        return None
    details = {c.name: {"value": round(c.value, 4), "expected": round(c.expected, 4),
                        "explanatory_power": round(c.explanatory_power, 4),
                        "significance": round(c.significance, 2)} for c in found.causes}
    total = found.total
    return KpiDrillDown(
        title=f"{table}: {len(found.causes)} slice(s) explain the change",
        summary=f"{', '.join(found.names)} carry {found.explained:.0%} of the change of the "
                f"{table} total at {now:%H:%M} UTC against the {BASELINE_PERIODS} minutes before.",
        severity=Severity.WARNING, confidence=0.5, category="data",
        entities=[Entity(kind="kpi", name=table)], evidence=[result.evidence(limit=10)],
        onset=alert.starts_at, table=table, dimensions=dimensions, slices=found.names,
        details=details, total_change=round(total.value - total.expected, 4),
        explained=round(found.explained, 4),
    )


class SliceCause(Finding):
    slice: str
    explanatory_power: float


@analyzer(fan_out={"slice": from_finding("kpi_drilldown", "slices")}, timeout_s=10,
          category="data")
def kpi_slice(slice: str, kpi_drilldown: KpiDrillDown) -> SliceCause | None:
    """One cause per slice the drill-down kept, so contributing slices stand side by side."""
    detail = kpi_drilldown.details.get(slice)
    if detail is None:
        return None
    power = float(detail["explanatory_power"])
    return SliceCause(
        title=f"Slice {slice} of {kpi_drilldown.table}",
        summary=f"{slice} shows {detail['value']:g} against {detail['expected']:g} expected; it "
                f"carries {power:.0%} of the change.",
        severity=Severity.CRITICAL, confidence=round(min(0.95, 0.6 + 0.3 * power), 3),
        category="data", entities=[Entity(kind="slice", name=slice)], onset=kpi_drilldown.onset,
        explains=["kpi_drilldown"], slice=slice, explanatory_power=power,
    )


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
