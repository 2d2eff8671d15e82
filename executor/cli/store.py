"""`casebook store compact`: merge a store's small files per hour and drop old hours."""

from __future__ import annotations

from typing import Annotated

import typer

from casebook.executor.cli.errors import reported

store_app = typer.Typer(help="Look after a telemetry store.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(store_app, name="store")


@store_app.command()
def compact(
    telemetry: Annotated[str, typer.Option(
        "--telemetry", "-t", envvar="CASEBOOK_TELEMETRY", metavar="PATH", show_default=False,
        help="The store: a Parquet directory, s3://bucket/prefix, or a .duckdb file.")],
    retention: Annotated[str | None, typer.Option(
        "--retention", envvar="CASEBOOK_RETENTION", metavar="DURATION", show_default=False,
        help="Drop hours older than this (e.g. 14d); without it nothing is dropped.")] = None,
    grace: Annotated[float, typer.Option(
        min=0, help="Minutes replaced files are kept for queries already reading them.")] = 15.0,
) -> None:
    """Merge each hour's files into one, drop hours past the retention, delete leftovers."""
    from datetime import timedelta

    with reported():
        from rich.console import Console
        from rich.table import Table

        from casebook.executor.telemetry_store import TelemetryStore
        from casebook.executor.telemetry_store.upkeep import parse_retention

        store = TelemetryStore.open(telemetry)
        done = store.compact(parse_retention(retention), grace=timedelta(minutes=grace))
        summary = Table()
        for column in ("table", "merged", "written", "dropped", "deleted"):
            summary.add_column(column, justify="left" if column == "table" else "right")
        for c in done:
            summary.add_row(c.table, str(c.merged), str(c.written), str(c.dropped), str(c.deleted))
        console = Console()
        console.print(f"compacted {store.url}" if done else f"{store.url}: no tables to compact",
                      soft_wrap=True)  # fmt: skip
        if done:
            console.print(summary)
