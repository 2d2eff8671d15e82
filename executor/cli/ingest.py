"""`casebook ingest`: load telemetry files into a store."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer

from casebook.executor.cli.errors import reported


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest_command)


def ingest_command(
    files: list[Path] = typer.Argument(
        ...,
        metavar="FILE",
        show_default=False,
        help="CSV, TSV, JSON lines, Parquet or OTLP/JSON files (.gz too), or directories of them.",
    ),
    telemetry: str = typer.Option(
        ...,
        "--telemetry",
        envvar="CASEBOOK_TELEMETRY",
        metavar="PATH",
        show_default=False,
        help="The store: a directory of Parquet datasets, s3://bucket/prefix, or a .duckdb/.db "
        "file. Created if missing.",
    ),
    table: str | None = typer.Option(
        None,
        "--table",
        help="Put every non-OTLP file in this table instead of the one named after the file.",
    ),
    retention: str | None = typer.Option(
        None,
        "--retention",
        envvar="CASEBOOK_RETENTION",
        metavar="DURATION",
        show_default=False,
        help="Afterwards compact the store and drop hours older than this (e.g. 14d).",
    ),
) -> None:
    """Load telemetry files into a store; all of them, or none when one is broken."""
    with reported():
        from rich.console import Console
        from rich.table import Table

        from casebook.executor.ingest import ingest
        from casebook.executor.telemetry_store.upkeep import parse_retention

        reports = ingest(files, telemetry, table=table, retention=parse_retention(retention))
        summary = Table(title=f"ingested into {telemetry}", title_justify="left")
        summary.add_column("file", overflow="fold",
                           min_width=min(32, max(len(Path(r.file).name) for r in reports)))
        summary.add_column("table")
        summary.add_column("rows", justify="right")
        summary.add_column("from", no_wrap=True)
        summary.add_column("to", no_wrap=True)
        folders = {str(Path(report.file).parent) for report in reports}
        if len(folders) == 1:  # name the folder once, the files by name
            summary.title = f"ingested from {folders.pop()} into {telemetry}"
        for report in reports:
            shown = Path(report.file).name if summary.title.startswith("ingested from") \
                else report.file
            summary.add_row(shown, report.table, f"{report.rows if report.added else 0:,}",
                            _moment(report.start), _moment(report.end))  # fmt: skip
        console = Console()
        console.print(summary)
        for file in dict.fromkeys(r.file for r in reports):
            if not any(r.added for r in reports if r.file == file):
                console.print(f"{file}: already ingested, nothing added", soft_wrap=True)


def _moment(value: datetime | None) -> str:
    return "-" if value is None else value.isoformat(sep=" ", timespec="seconds")
