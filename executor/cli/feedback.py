"""`casebook feedback`: say whether an investigation, or one of its findings, helped."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from casebook.executor.cli.errors import reported


def register(app: typer.Typer) -> None:
    app.command()(feedback)


def feedback(
    investigation_id: Annotated[
        str,
        typer.Argument(
            metavar="INVESTIGATION_ID",
            help="The investigation, as `casebook coverage` or the report page shows it.",
        ),
    ],
    helpful: Annotated[
        bool | None,
        typer.Option(
            "--helpful/--not-helpful",
            help="Whether it helped (one of the two is required).",
            show_default=False,
        ),
    ] = None,
    finding: Annotated[
        str | None,
        typer.Option(
            "--finding",
            metavar="ID",
            help="One finding of it (F1, F2, ...) rather than the whole investigation.",
        ),
    ] = None,
    comment: Annotated[
        str, typer.Option("--comment", metavar="TEXT", help="Why, in a sentence.")
    ] = "",
    db: Annotated[
        Path, typer.Option("--db", envvar="CASEBOOK_DB", help="Results database (DuckDB).")
    ] = Path(".casebook/results.duckdb"),
) -> None:
    """Record whether an investigation, or one of its findings, helped."""
    with reported():
        from rich.console import Console

        from casebook.executor.errors import UserError
        from casebook.executor.results import ResultsStore

        if helpful is None:
            raise UserError("say whether it helped: add --helpful or --not-helpful")
        if not db.exists():
            raise UserError(
                f"no results database at {db}; pass --db with the file "
                "`casebook investigate` or `casebook serve` writes"
            )
        with ResultsStore(db) as results:
            results.add_feedback(
                investigation_id, helpful, finding_id=finding, comment=comment, source="cli"
            )
        verdict = "helpful" if helpful else "not helpful"
        about = f"finding {finding} of {investigation_id}" if finding else investigation_id
        Console().print(f"Recorded: {about} was {verdict}.", highlight=False)
