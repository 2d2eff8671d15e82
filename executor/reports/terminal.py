"""The terminal report (rich): what happened, the causes, next steps, the chain, what failed."""

from __future__ import annotations

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from casebook.executor.record import FindingRecord, InvestigationRecord, SentenceRecord
from casebook.executor.reports.context import ReportContext, context_lines
from casebook.executor.reports.outline import (
    by_kind,
    failed_invocations,
    failure_reason,
    narrator_line,
)

SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
STATUS_STYLE = {
    "found": "green",
    "nothing": "dim",
    "skipped": "dim",
    "error": "red",
    "timeout": "magenta",
    "crashed": "bold red",
    "oom": "bold red",
}


def render(record: InvestigationRecord, console: Console | None = None,
           context: ReportContext | None = None) -> None:
    """Print an investigation for a person at a terminal (with `context`: links, seen before)."""
    console = console or Console()
    alert = record.alert
    labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()) if k != "alertname")
    title = Text.assemble(
        ("● ", "red" if alert.status == "firing" else "green"), (alert.name, "bold"), f"  {labels}"
    )
    counts = record.status_counts()
    stats = "  ".join(f"[{STATUS_STYLE.get(k, '')}]{k} {v}[/]" for k, v in sorted(counts.items()))
    header = Group(
        title,
        Text(
            f"{record.id} · window {record.window.start:%Y-%m-%d %H:%M}–"
            f"{record.window.end:%H:%M} UTC · {len(record.invocations)} invocations "
            f"({record.runtime})",
            style="dim",
        ),
        Text.from_markup(stats),
        *(Text(line, style="cyan") for line in context_lines(record, context)),
    )
    console.print(Panel(header, border_style="blue", expand=False))
    failure = failure_reason(record)
    if failure is not None:
        console.print(Text.assemble(("Investigation failed: ", "bold red"), failure))

    narrative = record.narrative
    if narrative is not None and narrative.fallback_reason:
        console.print(
            Text.assemble(
                ("The deterministic narrator wrote this summary. ", "bold"),
                narrative.fallback_reason,
            ),
            style="yellow",
        )
    if narrative is not None:
        console.print(_story(narrative))

    if record.causes:
        table = Table(
            title="Probable causes", title_justify="left", show_lines=False, header_style="bold"
        )
        table.add_column("#", justify="right")
        table.add_column("cause")
        table.add_column("on")
        table.add_column("score", justify="right")
        table.add_column("findings")
        for cause in record.causes:
            style = "bold" if cause.rank == 1 else ""
            table.add_row(
                str(cause.rank),
                Text(cause.category.upper(), style=style or "none"),
                f"{cause.entity.kind} {cause.entity.name}",
                f"{cause.score:.2f}",
                ", ".join(cause.finding_ids),
            )
        console.print(table)
    elif failure is None:
        console.print("[dim]No analyzer found anything notable.[/]")

    groups = by_kind(narrative)
    if groups["next_step"]:
        console.print(Text("Next steps", style="bold"))
        console.print(_bullets("", groups["next_step"], numbered=True))
    if groups["hypothesis"]:
        console.print(Text("Hypotheses (not established)", style="bold"))
        console.print(_bullets("•", groups["hypothesis"], "italic"))

    if record.findings:
        console.print(_finding_tree(record))

    failures = failed_invocations(record)
    if failures:
        console.print(f"[red]{len(failures)} invocation(s) failed[/] (everything else completed):")
        for inv in failures[:8]:
            first = (inv.error or "").splitlines()[0] if inv.error else ""
            console.print(
                f"  [{STATUS_STYLE[inv.status]}]{inv.status}[/] {inv.key}: {first}", highlight=False
            )
        if len(failures) > 8:
            console.print(f"  … and {len(failures) - 8} more (see --json)")
    for note in record.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)


def _story(narrative) -> Panel:
    groups = by_kind(narrative)
    headline = [_cited(s, "bold") for s in groups["headline"]] or [Text(narrative.headline, "bold")]
    facts = _bullets("•", groups["fact"])
    verified = "green" if narrative.verified else "red"
    footer = Text(narrator_line(narrative), style=f"dim {verified}")
    return Panel(
        Group(*headline, facts, footer),
        title="What happened",
        title_align="left",
        border_style="green",
    )


def _bullets(
    mark: str, sentences: list[SentenceRecord], style: str = "", numbered: bool = False
) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(justify="right", no_wrap=True)
    grid.add_column()
    for number, sentence in enumerate(sentences, start=1):
        grid.add_row(f"{number}." if numbered else mark, _cited(sentence, style))
    return grid


def _cited(sentence: SentenceRecord, style: str = "") -> Text:
    cites = f" [{', '.join(sentence.finding_ids)}]" if sentence.finding_ids else ""
    return Text.assemble((sentence.text, style), (cites, "dim cyan"))


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
        label = Text.assemble(
            (f"{finding.id} ", "bold"),
            (finding.title, style),
            (f"  [{finding.analyzer} · {finding.category} · conf {finding.confidence:.2f}"
             + (f" · {finding.owner}" if finding.owner else "") + "]", "dim"),
        )
        branch = node.add(Group(label, Text(finding.summary, style="italic")))
        for child in children.get(finding.id, []):
            add(branch, child)

    for root in roots:
        add(tree, root)
    return tree
