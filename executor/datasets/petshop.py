"""PetShop (amazon-science/petshop-root-cause-analysis, CC-BY-4.0): one case per issue.

Telemetry per case: the issue's metrics (five 5-minute samples per component), the scenario's
normal-operation metrics (`noissue/`) as history just before them, and the call graph as the
extra table `calls` (caller, callee). The alert is the target node's SLO breach from target.json;
the root-cause node and the change that caused it go only into expected.json and case.json.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from casebook.executor.datasets import Conversion
from casebook.executor.datasets.casedir import Case, Cause, DatasetLayoutError, require, snake_case
from casebook.sdk.models import Alert

LAYOUT = (
    "Expected the PetShop layout: SRC/<scenario>/graph.csv, optionally "
    "SRC/<scenario>/noissue/metrics.csv, and SRC/<scenario>/{train,test}/issue_<n>/ holding "
    "metrics.csv (three header rows: microservice, metric, statistic; then unix_timestamp rows) "
    "and target.json."
)
SPLITS = ("train", "test")
STEP_SECONDS = 300  # the data set samples every 5 minutes
ALERT_NAMES = {"latency": "PetShopLatencyHigh", "availability": "PetShopAvailabilityLow"}
HEADER_ROWS = ("microservice", "metric", "statistic")


def cases(src: Path) -> Conversion:
    """The cases of every scenario under SRC (a folder holding graph.csv)."""
    scenarios = sorted(p.parent for p in src.glob("*/graph.csv"))
    if not scenarios:
        raise DatasetLayoutError(f"no <scenario>/graph.csv under {src}. {LAYOUT}")
    issues = {scenario: _issues(scenario) for scenario in scenarios}
    return Conversion(
        total=sum(len(found) for found in issues.values()),
        cases=_all_cases(src, issues),
    )


def _issues(scenario: Path) -> list[Path]:
    found = [
        issue
        for split in SPLITS
        for issue in sorted((scenario / split).glob("issue_*"), key=_issue_number)
        if issue.is_dir()
    ]
    if not found:
        raise DatasetLayoutError(
            f"no train/issue_<n>/ or test/issue_<n>/ folder in {scenario}. {LAYOUT}"
        )
    for issue in found:
        require(issue / "metrics.csv", "the issue's metrics", LAYOUT)
        require(issue / "target.json", "the issue's target and root cause", LAYOUT)
    return found


def _issue_number(path: Path) -> int:
    digits = re.sub(r"\D", "", path.name)
    return int(digits) if digits else -1


def _all_cases(src: Path, issues: dict[Path, list[Path]]) -> Iterator[Case]:
    for scenario, found in issues.items():
        calls = read_calls(scenario / "graph.csv")
        normal = scenario / "noissue" / "metrics.csv"
        baseline = read_metrics(normal) if normal.exists() else None
        for issue in found:
            yield _case(src, scenario, issue, calls, baseline)


def read_calls(path: Path) -> pa.Table:
    """The adjacency matrix of graph.csv as edges: row node calls column node where 1."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows or len(rows[0]) < 2:
        raise DatasetLayoutError(f"{path} is empty; expected an adjacency matrix. {LAYOUT}")
    callees = rows[0][1:]
    edges = [
        (row[0], callee)
        for row in rows[1:]
        for callee, cell in zip(callees, row[1:], strict=False)
        if cell.strip() and float(cell) != 0
    ]
    return pa.table(
        {
            "caller": pa.array([e[0] for e in edges], pa.string()),
            "callee": pa.array([e[1] for e in edges], pa.string()),
        }
    )


def read_metrics(path: Path) -> pa.Table:
    """A three-header-row metrics.csv as metric rows: service = component, name = metric_stat."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    headers = rows[:3]
    if len(rows) < 4 or tuple(r[0] for r in headers) != HEADER_ROWS:
        found = ", ".join(r[0] for r in headers) if headers else "nothing"
        raise DatasetLayoutError(
            f"{path} does not start with the header rows microservice, metric, statistic "
            f"(found {found}). {LAYOUT}"
        )
    names = [
        f"{snake_case(m)}_{snake_case(s)}" for m, s in zip(headers[1], headers[2], strict=True)
    ]
    stamps, services, metrics, values = [], [], [], []
    for number, row in enumerate(rows[3:], start=4):
        if not row or not re.fullmatch(r"\d+(\.\d*)?", row[0]):
            continue  # the `unix_timestamp` label row that pandas writes for the index name
        ts = datetime.fromtimestamp(float(row[0]), UTC).replace(tzinfo=None)
        for column, cell in enumerate(row[1:], start=1):
            if not cell.strip():
                continue
            try:
                values.append(float(cell))
            except ValueError:
                raise DatasetLayoutError(
                    f"{path} line {number} column {column + 1}: expected a number, found {cell!r}"
                ) from None
            stamps.append(ts)
            services.append(headers[0][column])
            metrics.append(names[column])
    return pa.table(
        {
            "ts": pa.array(stamps, pa.timestamp("us")),
            "name": pa.array(metrics, pa.string()),
            "service": pa.array(services, pa.string()),
            "value": pa.array(values, pa.float64()),
            "labels": pa.array([[] for _ in values], pa.map_(pa.string(), pa.string())),
        }
    )


def _case(
    src: Path, scenario: Path, issue: Path, calls: pa.Table, baseline: pa.Table | None
) -> Case:
    target_file = json.loads((issue / "target.json").read_text(encoding="utf-8"))
    target, root_cause = target_file["target"], target_file["root_cause"]
    metrics = read_metrics(issue / "metrics.csv")
    first, last = _time_range(metrics)
    history, shift = _history(baseline, first)
    tables = {
        "metrics": metrics if history is None else pa.concat_tables([history, metrics]),
        "calls": calls,
    }
    metric, statistic = target["metric"], target.get("agg", "Average")
    starts_at = datetime.fromtimestamp(float(target["timestamp"]), UTC)
    split = issue.parent.name
    alert = Alert(
        name=ALERT_NAMES.get(metric, f"PetShop{metric.title()}Anomaly"),
        labels={
            "service": target["node"],
            "metric": metric,
            "severity": "warning",
            "system": "petshop",
        },
        annotations={
            "summary": f"{statistic} {metric} of {target['node']} breached its SLO",
            "series": f"{snake_case(metric)}_{snake_case(statistic)}",
        },
        starts_at=starts_at,
    )
    metadata: dict[str, Any] = {
        "dataset": "petshop",
        "scenario": scenario.name,
        "split": split,
        "issue": issue.name,
        "metric": metric,
        "statistic": statistic,
        "target_node": target["node"],
        "target_timestamp": starts_at.isoformat(),
        "issue_samples": {"first": _iso(first), "last": _iso(last)},
        "root_cause": root_cause,
        "reproducibility": target_file.get("metadata", {}).get("reproducibility"),
        "calls_direction": "caller -> callee: graph.csv row node calls column node",
        "sources": {
            "metrics": str((issue / "metrics.csv").relative_to(src)),
            "target": str((issue / "target.json").relative_to(src)),
            "graph": str((scenario / "graph.csv").relative_to(src)),
        },
        "baseline": _baseline_note(src, scenario, history, shift),
    }
    return Case(
        name=f"petshop-{scenario.name}-{split}-{issue.name}",
        alert=alert,
        tables=tables,
        causes=[Cause("service", root_cause["node"])],
        metadata=metadata,
    )


def _history(baseline: pa.Table | None, first: datetime) -> tuple[pa.Table | None, int]:
    """The normal-operation rows, shifted (whole seconds) to end one step before the issue."""
    if baseline is None or baseline.num_rows == 0:
        return None, 0
    _, end = _time_range(baseline)
    if end < first:
        return baseline, 0
    # noissue/ was recorded after the issues; it stays history only if moved before them.
    shift = int((first - end).total_seconds()) - STEP_SECONDS
    moved = pc.add(baseline["ts"], pa.scalar(timedelta(seconds=shift), pa.duration("us")))
    return baseline.set_column(0, "ts", moved), shift


def _baseline_note(
    src: Path, scenario: Path, history: pa.Table | None, shift: int
) -> dict[str, Any]:
    if history is None:
        return {
            "included": False,
            "reason": f"{scenario.name} has no noissue/metrics.csv in this copy",
        }
    first, last = _time_range(history)
    return {
        "included": True,
        "source": str((scenario / "noissue" / "metrics.csv").relative_to(src)),
        "shifted_by_seconds": shift,
        "reason": (
            "noissue/ was recorded after the issues; its timestamps were moved so that "
            "it ends one sample before the issue"
            if shift
            else "already before the issue"
        ),
        "range": {"first": _iso(first), "last": _iso(last)},
    }


def _time_range(metrics: pa.Table) -> tuple[datetime, datetime]:
    bounds = pc.min_max(metrics["ts"])
    return bounds["min"].as_py(), bounds["max"].as_py()


def _iso(moment: datetime) -> str:
    return moment.replace(tzinfo=UTC).isoformat()
