"""`casebook config check FILE`: every problem of a configuration file, with its location."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

config_app = typer.Typer(
    name="config", help="The configuration file (casebook.yaml).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app)


@config_app.command()
def check(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="The configuration file.")],
) -> None:
    """Check a configuration file; print each problem with its location, exit 1 if any."""
    from casebook.executor.config import check_config

    problems = check_config(file)
    if problems:
        for problem in problems:
            typer.echo(f"{file}: {problem}", err=True)
        typer.echo(f"{len(problems)} problem(s) in {file}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{file}: ok")
