"""Public incident data sets turned into case directories for backtests.

    summary = convert("rs", Path("../shared/data/rs"), Path("/tmp/cases/rs"))

Each converter reads a data set laid out as its authors published it and yields one `Case` per
labelled incident: the alert a real system would have raised, the telemetry around it, and the
ground truth (only in expected.json and case.json, never in the telemetry or the alert).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from casebook.executor.datasets.casedir import Case, DatasetLayoutError, write_case

DATASETS = ("nezha", "petshop", "rs")

__all__ = ["DATASETS", "Case", "Conversion", "DatasetLayoutError", "Summary", "convert"]


@dataclass
class Conversion:
    """A converter's answer: how many cases will come, the cases, and what the user should know."""

    total: int
    cases: Iterator[Case]
    notes: list[str] = field(default_factory=list)  # filled while the cases are produced


@dataclass
class Summary:
    """What a conversion wrote."""

    dataset: str
    out: Path
    cases: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def converter(dataset: str) -> Callable[[Path], Conversion]:
    """The `cases(src)` function of one data set's module."""
    if dataset not in DATASETS:
        raise DatasetLayoutError(
            f"unknown data set {dataset!r}; choose one of {', '.join(DATASETS)}"
        )
    module = importlib.import_module(f"casebook.executor.datasets.{dataset}")
    return module.cases


def convert(
    dataset: str,
    src: Path,
    out: Path,
    on_case: Callable[[int, int, str], None] | None = None,
) -> Summary:
    """Write one case directory per incident of SRC under OUT; `on_case(done, total, name)`."""
    src = Path(src)
    if not src.is_dir():
        raise DatasetLayoutError(
            f"{src} is not a folder; give the {dataset} data set folder (laid out as in "
            "../shared/data)"
        )
    conversion = converter(dataset)(src)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = Summary(dataset=dataset, out=out)
    for case in conversion.cases:
        write_case(out, case)
        summary.cases.append(case.name)
        for table, count in case.rows().items():
            summary.rows[table] = summary.rows.get(table, 0) + count
        if on_case is not None:
            on_case(len(summary.cases), conversion.total, case.name)
    summary.notes = list(conversion.notes)
    return summary
