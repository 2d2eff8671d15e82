"""The table in docs/telemetry.md of what each built-in analyzer reads, made from `reads=`.

Every built-in analyzer declares the tables, columns, metric names, labels and attributes it
reads (`@analyzer(reads=[...])`). This module turns those declarations into the Markdown table
between two marker lines of docs/telemetry.md, so the page cannot drift from the code:
`python -m casebook.executor.telemetry_doc docs/telemetry.md` rewrites it, and a test fails
when the page and the declarations disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

from casebook.sdk.registry import Registry, load_registry

BEGIN = "<!-- reads: generated from @analyzer(reads=...) by casebook.executor.telemetry_doc -->"
END = "<!-- reads: end -->"
KINDS = {"metrics": "metric name", "labels": "metric label", "attributes": "span/log attribute",
         "annotation": "table named by an alert annotation"}


def reads_table(registry: Registry) -> str:
    """One row per declared read: what, its kind, and the analyzers that read it."""
    readers: dict[str, set[str]] = {}
    for spec in registry:
        for item in spec.reads:
            readers.setdefault(item, set()).add(spec.name)
    lines = ["| reads | kind | read by |", "| --- | --- | --- |"]
    for item in sorted(readers, key=lambda i: (_kind(i), i)):
        shown = item.split(":", 1)[1] if ":" in item else item
        names = ", ".join(f"`{n}`" for n in sorted(readers[item]))
        lines.append(f"| `{shown}` | {_kind(item)} | {names} |")
    return "\n".join(lines)


def _kind(item: str) -> str:
    if ":" in item:
        return KINDS.get(item.split(":", 1)[0], item.split(":", 1)[0])
    return "column" if "." in item else "table"


def with_table(page: str, table: str) -> str:
    """The page with the text between the markers replaced by the table."""
    if BEGIN not in page or END not in page:
        raise ValueError(f"the page has no generated section; add the lines\n{BEGIN}\n{END}")
    head, rest = page.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "docs/telemetry.md")
    table = reads_table(load_registry(entry_point_packs=False))
    path.write_text(with_table(path.read_text(), table))
    print(f"wrote the reads table ({table.count(chr(10)) - 1} rows) to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
