"""RobustSpot real incidents (via shaido987/riskloc, MIT): one case per entry of anomaly.yaml.

Telemetry per case: the case CSV as the extra table `kpi` (ts, one VARCHAR column per dimension,
value and cnt as DOUBLE). The monitored KPI is (cnt - value) / cnt summed over slices, as the
RobustSpot harness computes it. The root-cause slices go only into expected.json and case.json.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import yaml

from casebook.executor.datasets import Conversion
from casebook.executor.datasets.casedir import Case, Cause, DatasetLayoutError, require, slice_name
from casebook.sdk.models import Alert

LAYOUT = (
    "Expected the RS layout: SRC/anomaly.yaml (a list of entries with data, timestamp and "
    "cause) and one SRC/<data>.csv per entry with columns min (epoch seconds), the dimensions, "
    "value and cnt."
)
TIME_COLUMN = "min"
MEASURES = ("value", "cnt")
KPI = "(cnt - value) / cnt"


def cases(src: Path) -> Conversion:
    """One case per anomaly.yaml entry."""
    path = require(src / "anomaly.yaml", "the list of labelled anomalies", LAYOUT)
    entries = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(entries, list):
        raise DatasetLayoutError(f"{path} is not a list of entries. {LAYOUT}")
    for number, entry in enumerate(entries, start=1):
        missing = [k for k in ("data", "timestamp", "cause") if k not in (entry or {})]
        if missing:
            raise DatasetLayoutError(
                f"entry {number} of {path} lacks {', '.join(missing)}. {LAYOUT}"
            )
        require(src / f"{entry['data']}.csv", f"the data of entry {number}", LAYOUT)
    return Conversion(total=len(entries), cases=_all_cases(src, entries))


def _all_cases(src: Path, entries: list[dict[str, Any]]) -> Iterator[Case]:
    for entry in entries:
        yield _case(src, entry)


def read_kpi(path: Path) -> tuple[pa.Table, list[str]]:
    """The case CSV as (ts, dimensions as text, value, cnt), and the dimension names."""
    with path.open(encoding="utf-8") as handle:
        header = handle.readline().strip().split(",")
    absent = [c for c in (TIME_COLUMN, *MEASURES) if c not in header]
    if absent:
        raise DatasetLayoutError(
            f"{path} has no column {', '.join(absent)}; found {', '.join(header)}. {LAYOUT}"
        )
    dimensions = [c for c in header if c not in (TIME_COLUMN, *MEASURES)]
    types = {
        TIME_COLUMN: pa.int64(),
        **{m: pa.float64() for m in MEASURES},
        **{d: pa.string() for d in dimensions},
    }
    raw = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types))
    stamps = pc.multiply(raw[TIME_COLUMN], 1_000_000).cast(pa.timestamp("us"))
    table = pa.table(
        {"ts": stamps, **{d: raw[d] for d in dimensions}, **{m: raw[m] for m in MEASURES}}
    )
    return table, dimensions


def _case(src: Path, entry: dict[str, Any]) -> Case:
    data = str(entry["data"])
    kpi, dimensions = read_kpi(src / f"{data}.csv")
    starts_at = datetime.fromtimestamp(int(entry["timestamp"]), UTC)
    causes = entry["cause"] if isinstance(entry["cause"], list) else [entry["cause"]]
    alert = Alert(
        name="KpiTotalAnomaly",
        labels={"kpi": KPI, "dataset": "rs", "severity": "warning"},
        annotations={
            "summary": f"the total of {KPI} over all slices is anomalous",
            "table": "kpi",
            "dimensions": ",".join(dimensions),
        },
        starts_at=starts_at,
    )
    metadata = {
        "dataset": "rs",
        "scenario": "rs",
        "data": data,
        "anomaly_timestamp": starts_at.isoformat(),
        "dimensions": dimensions,
        "cause": causes,
        "sources": {"data": f"{data}.csv", "labels": "anomaly.yaml"},
        "notes": [f"kpi table columns value and cnt are as published; the KPI is {KPI}"],
    }
    return Case(
        name=f"rs-{data}",
        alert=alert,
        tables={"kpi": kpi},
        causes=[Cause("slice", slice_name({k: str(v) for k, v in c.items()})) for c in causes],
        metadata=metadata,
    )
