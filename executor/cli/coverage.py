"""`casebook coverage`: which alerts analyzers cover, which analyzers earn their keep."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from casebook.executor.cli.errors import reported


def register(app: typer.Typer) -> None:
    app.command()(coverage)


def coverage(
    db: Annotated[
        Path, typer.Option("--db", envvar="CASEBOOK_DB", help="Results database (DuckDB).")
    ] = Path(".casebook/results.duckdb"),
    since: Annotated[
        str | None,
        typer.Option(
            metavar="DATE",
            help="Start of the period (a day or an ISO time, UTC); default: 7 days before --until.",
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            metavar="DATE", help="End of the period; a day includes that whole day; default: now."
        ),
    ] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write the HTML report here.")] = None,
    markdown: Annotated[
        Path | None, typer.Option("--markdown", help="Write the Markdown report here.")
    ] = None,
    pack: Annotated[
        list[str] | None,
        typer.Option("--pack", help="Extra analyzer pack (module or package); repeatable."),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--url", metavar="SERVE_URL", envvar="CASEBOOK_URL", show_default=False,
            help="Ask a running `casebook serve` (GET /api/coverage) instead of opening --db.",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(envvar="CASEBOOK_TOKEN", show_default=False,
                     help="Bearer token of the service given to --url."),
    ] = None,
) -> None:
    """Weekly coverage report: alerts covered, analyzers that work, top causes, feedback."""
    if url is not None:
        with reported():
            from casebook.executor.coverage.remote import fetch_coverage

            fetch_coverage(url, token=token, since=since, until=until, html=html,
                           markdown=markdown)
        return
    with reported():
        from rich.console import Console

        from casebook.executor.coverage.report import parse_moment, write_coverage

        console = Console()
        write_coverage(
            db,
            console=console,
            html=html,
            markdown=markdown,
            packs=pack or [],
            since=parse_moment(since, option="--since") if since else None,
            until=parse_moment(until, option="--until", end=True) if until else None,
        )
        for label, path in (("HTML report", html), ("Markdown report", markdown)):
            if path is not None:
                console.print(f"\n{label}: {path}", highlight=False)
