"""`casebook investigate`: one alert file in, ranked causes out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from casebook.executor.cli.errors import reported

TelemetryOption = Annotated[str, typer.Option(
    "--telemetry", "-t", envvar="CASEBOOK_TELEMETRY", metavar="PATH",
    help="Telemetry store: a Parquet directory, s3://bucket/prefix, or a .duckdb file.")]
DbOption = Annotated[Path, typer.Option(
    "--db", envvar="CASEBOOK_DB", help="Results database (DuckDB).")]
PackOption = Annotated[list[str] | None, typer.Option(
    "--pack", help="Extra analyzer pack (module or package); repeatable.")]
LocalOption = Annotated[bool, typer.Option(
    "--local", help="Run in this process instead of on Ray.")]
SourcesOption = Annotated[Path | None, typer.Option(
    "--sources", envvar="CASEBOOK_SOURCES", show_default=False,
    help="YAML file with a `sources:` list of Prometheus servers to query for the window.")]
RayOption = Annotated[str | None, typer.Option(
    "--ray-address", envvar="CASEBOOK_RAY_ADDRESS",
    help="Join an existing Ray cluster (telemetry must be on storage it can read).")]


def register(app: typer.Typer) -> None:
    app.command()(investigate)


def investigate(
    alert_file: Annotated[Path, typer.Argument(
        metavar="ALERT.json",
        help="Alertmanager or Grafana webhook body, or one casebook alert object.")],
    telemetry: TelemetryOption,
    db: DbOption = Path(".casebook/results.duckdb"),
    local: LocalOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the stored investigation as JSON.")] = False,
    html: Annotated[Path | None, typer.Option("--html", help="Also write an HTML report here.")] = None,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="Also write a Markdown report here.")] = None,
    pack: PackOption = None,
    ray_address: RayOption = None,
    lookback: Annotated[float | None, typer.Option(
        min=0, max=7 * 24 * 60, help="Minutes of history before the alert (at most 7 days).")] = None,
    deadline: Annotated[float, typer.Option(help="Seconds after which the report is made from what finished.")] = 600.0,
    otel: Annotated[str | None, typer.Option(
        "--otel", envvar="CASEBOOK_OTEL",
        help="Export spans and metrics: console, otlp, or a file `casebook ingest` reads.")] = None,
    sources: SourcesOption = None,
) -> None:
    """Investigate an alert: run every analyzer that applies, rank the findings into causes."""
    import json
    import sys
    from datetime import timedelta

    with reported():
        from rich.console import Console

        from casebook.executor.alerts import load_alerts
        from casebook.executor.pipeline import build_registry, make_runtime
        from casebook.executor.pipeline import investigate as run
        from casebook.executor.planner import Limits
        from casebook.executor.progress import progress_display
        from casebook.executor.results import ResultsStore

        if otel:
            from casebook.executor.observability import configure

            configure(otel)
        from casebook.executor.sources import load_sources

        pulled_from = load_sources(sources) if sources else []
        alerts = load_alerts(alert_file)
        registry = build_registry(pack or [])
        console = Console(stderr=as_json)
        firing = [a for a in alerts if a.status == "firing"]
        if not firing:
            console.print(f"[green]{len(alerts)} resolved alert(s), nothing to investigate.[/]")
        runtime = make_runtime(local, ray_address)
        records = []
        with ResultsStore(db) as results:
            for alert in firing:
                with progress_display(console, alert.name, enabled=not as_json) as progress:
                    record = run(
                        alert, telemetry=telemetry, registry=registry, runtime=runtime,
                        results=results, packs=pack or [],
                        limits=Limits(deadline_s=deadline),
                        lookback=timedelta(minutes=lookback) if lookback else None,
                        progress=progress, sources=pulled_from,
                    )
                records.append(record)
                from casebook.executor.reports.context import context_for

                context = context_for(record, results=results)  # links, seen before
                if html is not None:
                    from casebook.executor.reports.html import render_html

                    target = html if len(firing) == 1 else html.with_stem(f"{html.stem}-{record.id}")
                    target.write_text(render_html(record, context=context))
                if markdown is not None:
                    from casebook.executor.reports.markdown import render_markdown

                    target = markdown if len(firing) == 1 else markdown.with_stem(
                        f"{markdown.stem}-{record.id}")
                    target.write_text(render_markdown(record, context))
                if not as_json:
                    from casebook.executor.reports.terminal import render

                    render(record, console, context)
        if as_json:
            payload = [r.contract_json() for r in records]
            json.dump(payload[0] if len(payload) == 1 else payload, sys.stdout, indent=2,
                      default=str)
            sys.stdout.write("\n")
    failed = [r for r in records if r.status == "failed"]
    if failed:
        _report_failed(failed)


def _report_failed(records) -> None:
    """One red line per failed investigation (stored as failed), then exit 1."""
    import sys

    from rich.console import Console
    from rich.markup import escape

    from casebook.executor.reports.outline import failure_reason

    console = Console(stderr=True)
    for record in records:
        console.print(
            f"[bold red]error:[/] investigation {record.id} of {escape(record.alert.name)} "
            f"failed: {escape(failure_reason(record) or 'it did not finish')}",
            highlight=False, soft_wrap=True,
        )
    sys.stdout.flush()
    raise typer.Exit(1)
