"""The terminal report (rich): causes first, then the chain of findings, then what failed."""

from __future__ import annotations

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from casebook.executor.record import FindingRecord, InvestigationRecord

SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
STATUS_STYLE = {"found": "green", "nothing": "dim", "skipped": "dim", "error": "red",
                "timeout": "magenta", "crashed": "bold red"}


def render(record: InvestigationRecord, console: Console | None = None) -> None:
    """Print an investigation for a person at a terminal."""
    console = console or Console()
    alert = record.alert
    labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()) if k != "alertname")
    title = Text.assemble(("● ", "red" if alert.status == "firing" else "green"),
                          (alert.name, "bold"), f"  {labels}")
    counts = record.status_counts()
    stats = "  ".join(f"[{STATUS_STYLE.get(k, '')}]{k} {v}[/]" for k, v in sorted(counts.items()))
    header = Group(
        title,
        Text(f"{record.id} · window {record.window.start:%Y-%m-%d %H:%M}–"
             f"{record.window.end:%H:%M} UTC · {len(record.invocations)} invocations "
             f"({record.runtime})", style="dim"),
        Text.from_markup(stats),
    )
    console.print(Panel(header, border_style="blue", expand=False))

    if record.causes:
        table = Table(title="Probable causes", title_justify="left", show_lines=False,
                      header_style="bold")
        table.add_column("#", justify="right")
        table.add_column("cause")
        table.add_column("on")
        table.add_column("score", justify="right")
        table.add_column("findings")
        for cause in record.causes:
            style = "bold" if cause.rank == 1 else ""
            table.add_row(str(cause.rank), Text(cause.category.upper(), style=style or "none"),
                          f"{cause.entity.kind} {cause.entity.name}", f"{cause.score:.2f}",
                          ", ".join(cause.finding_ids))
        console.print(table)
    else:
        console.print("[dim]No analyzer found anything notable.[/]")

    if record.findings:
        console.print(_finding_tree(record))

    if record.narrative is not None:
        console.print(Panel(record.narrative.text, title=f"Narrative ({record.narrative.narrator})",
                            title_align="left", border_style="green"))

    failures = [i for i in record.invocations if i.status in ("error", "timeout", "crashed")]
    if failures:
        console.print(f"[red]{len(failures)} invocation(s) failed[/] (everything else completed):")
        for inv in failures[:8]:
            first = (inv.error or "").splitlines()[0] if inv.error else ""
            console.print(f"  [{STATUS_STYLE[inv.status]}]{inv.status}[/] {inv.key}: {first}",
                          highlight=False)
        if len(failures) > 8:
            console.print(f"  … and {len(failures) - 8} more (see --json)")
    for note in record.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)


def _finding_tree(record: InvestigationRecord) -> Tree:
    tree = Tree("[bold]Chain of findings[/]", guide_style="dim")
    by_id = {f.id: f for f in record.findings}
    children: dict[str, list[FindingRecord]] = {}
    roots = []
    for finding in record.findings:
        parents = [p for p in finding.led_from if p in by_id]
        if parents:
            children.setdefault(parents[0], []).append(finding)
        else:
            roots.append(finding)

    def add(node: Tree, finding: FindingRecord) -> None:
        style = SEVERITY_STYLE.get(finding.severity, "")
        label = Text.assemble((f"{finding.id} ", "bold"), (finding.title, style),
                              (f"  [{finding.analyzer} · {finding.category} · "
                               f"conf {finding.confidence:.2f}]", "dim"))
        branch = node.add(Group(label, Text(finding.summary, style="italic")))
        for child in children.get(finding.id, []):
            add(branch, child)

    for root in roots:
        add(tree, root)
    return tree
