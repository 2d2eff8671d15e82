"""A seed scenario as a case directory, written like every converted data set's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from casebook.executor.datasets.casedir import Case, Cause, rows_table
from casebook.executor.datasets.casedir import write_case as write_case_directory
from casebook.sdk.models import Alert


def write_case(directory: Path, *, alert: Alert, tables: Mapping[str, Sequence[Mapping[str, Any]]],
               expected: list[Cause], about: Mapping[str, Any] | None = None) -> Path:
    """Write one seed incident at `directory` (the backtest format of DESIGN.md)."""
    case = Case(name=directory.name, alert=alert,
                tables={name: rows_table(name, rows) for name, rows in tables.items()},
                causes=expected, metadata={"dataset": "seeds", **(about or {})})
    return write_case_directory(directory.parent, case)
