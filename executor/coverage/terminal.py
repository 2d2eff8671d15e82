"""The coverage report's summary in the terminal: the headline figures and the three answers."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from casebook.executor.coverage.glance import at_a_glance
from casebook.executor.coverage.model import CoverageReport, format_value, plural

TONES = {"good": "green", "bad": "red", "neutral": "dim"}


def render_summary(report: CoverageReport, console: Console) -> None:
    """Print the period, its notes, the headline figures and the answers at a glance."""
    console.print(
        f"[bold]Analyzer coverage, {report.period.label}[/]: "
        f"{plural(report.investigations, 'alert')} investigated "
        f"({report.previous_investigations} the period before)",
        highlight=False,
    )
    for note in report.notes:
        console.print(f"[yellow]{escape(note)}[/]", highlight=False)
    if report.empty:
        return
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("figure")
    table.add_column("this period", justify="right")
    table.add_column("previous", justify="right")
    table.add_column("change", justify="right")
    for f in report.figures:
        previous = "-" if f.previous is None else format_value(f.previous, f.kind)
        table.add_row(f.label, f.text, previous, f"[{TONES[f.tone]}]{f.change}[/]")
    console.print(table)
    for answer in at_a_glance(report):
        console.print(f"\n[bold]{answer.question}[/]", highlight=False)
        for line in answer.lines:
            console.print(f"  - {escape(line)}", highlight=False)
