"""`casebook demo`: the seed incidents, end to end, on the embedded defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from casebook.executor.cli.errors import reported


def register(app: typer.Typer) -> None:
    app.command()(demo)


def demo(
    out: Annotated[Path, typer.Option(help="Where the demo writes its stores and reports.")] = Path(".casebook/demo"),
    local: Annotated[bool, typer.Option("--local", help="Run in this process, not on Ray.")] = False,
    week: Annotated[bool, typer.Option(help="End with a week of alerts and its coverage report.")] = True,
) -> None:
    """Generate the seed incidents, investigate each, print the reports."""
    with reported():
        import shutil

        from rich.console import Console
        from rich.rule import Rule

        from casebook.examples.seeds import SCENARIOS
        from casebook.executor.alerts import load_alerts
        from casebook.executor.ingest import ingest
        from casebook.executor.pipeline import build_registry, investigate, make_runtime
        from casebook.executor.reports.html import render_html
        from casebook.executor.reports.terminal import render
        from casebook.executor.results import ResultsStore
        from casebook.executor.telemetry_store import TelemetryStore

        console = Console()
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        registry = build_registry()
        console.print(Rule("[bold]casebook demo[/]"))
        console.print(f"{len(registry)} analyzers loaded; three seed incidents to investigate.\n")
        runtime = make_runtime(local)
        reports = []
        with ResultsStore(out / "results.duckdb") as results:
            for name, scenario in SCENARIOS.items():
                case = scenario.generate(out / "cases" / name)
                store_path = out / "stores" / name
                store = TelemetryStore.open(store_path, create=True)
                ingest(sorted((case / "telemetry").iterdir()), store)
                alert = load_alerts(case / "alert.json")[0]
                console.print(Rule(f"[bold]{name}[/]: {(scenario.__doc__ or '').splitlines()[0]}"))
                with console.status(f"investigating {alert.name} ({runtime.name} runtime)"):
                    record = investigate(alert, telemetry=store_path, registry=registry,
                                         runtime=runtime, results=results)
                render(record, console)
                page = out / f"{name}.html"
                page.write_text(render_html(record))
                reports.append(page)
        runtime.shutdown()
        console.print(Rule("[bold]reports[/]"))
        for page in reports:
            console.print(f"  HTML report: {page}")
        if week:
            _week(out, console)


def _week(out: Path, console) -> None:
    from casebook.examples.week import replay_week
    from casebook.executor.coverage.report import write_coverage

    db = out / "week.duckdb"
    with console.status("replaying a week of alerts for the coverage report"):
        replay_week(db, out / "week")
    write_coverage(db, console=console, html=out / "coverage.html",
                   markdown=out / "coverage.md")
    console.print(f"  Coverage report: {out / 'coverage.html'}")
