"""What an analyzer's SQL reads, found in its source, to check against its `reads=`."""

from __future__ import annotations

import ast
import fnmatch
import inspect
import re
import textwrap
from typing import Any

_TABLE = re.compile(r"\b(?:from|join)\s+([a-z_][a-z0-9_]*)\b(?!\s*\()", re.IGNORECASE)
_METRIC = re.compile(r"\bname\s*(?:=|in\s*\()\s*((?:'[^']+'\s*,?\s*)+)", re.IGNORECASE)
_SQL = re.compile(r"\bselect\b", re.IGNORECASE)
# Words after FROM that are SQL, not tables (`extract(hour from ts)`, subqueries, CTE names
# are filtered separately).
_NOT_TABLES = {"select", "lateral", "unnest", "values", "the"}


def sql_strings(func: Any) -> list[str]:
    """The string constants of a function that look like SQL (f-string parts included)."""
    try:
        source = textwrap.dedent(inspect.getsource(func))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return []
    texts: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = [v.value for v in node.values
                     if isinstance(v, ast.Constant) and isinstance(v.value, str)]
            texts.append(" ? ".join(parts))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            texts.append(node.value)
    return [t for t in texts if _SQL.search(t)]


def sql_reads(func: Any) -> tuple[set[str], set[str]]:
    """(tables, metric names) that the function's SQL literals mention."""
    tables: set[str] = set()
    metrics: set[str] = set()
    for text in sql_strings(func):
        ctes = {m.lower() for m in re.findall(r"\b([a-z_][a-z0-9_]*)\s+as\s*\(", text, re.I)}
        for name in _TABLE.findall(text):
            if name.lower() not in _NOT_TABLES and name.lower() not in ctes:
                tables.add(name.lower())
        for group in _METRIC.findall(text):
            metrics.update(re.findall(r"'([^']+)'", group))
    return tables, metrics


def undeclared_reads(spec: Any) -> list[str]:
    """Tables (and metric names, where any are declared) the SQL reads but reads= omits.

    Only analyzers that declare `reads=` are checked; SQL built at run time is not seen.
    """
    needs = spec.needs
    if not needs:
        return []
    tables, metrics = sql_reads(spec.func)
    declared_tables = {need.table for need in needs if need.checkable}
    patterns = [need.name for need in needs if need.table == "metrics" and need.name]
    missing = sorted(t for t in tables - declared_tables)
    if patterns and "metrics" in tables:
        missing += sorted(f"metrics:{m}" for m in metrics
                          if not any(fnmatch.fnmatch(m, p) for p in patterns))
    return missing
