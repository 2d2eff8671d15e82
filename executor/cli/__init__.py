"""The `casebook` command line. Commands are thin; heavy imports happen inside each command."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="casebook",
    help="Investigate alerts with analyzers written by the people who know the system.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)



def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"casebook {version('casebook')}")
        except PackageNotFoundError:
            typer.echo("casebook (not installed as a distribution)")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: bool = typer.Option(False, "--version", callback=_print_version,
                                      is_eager=True, help="Print the version and exit."),
) -> None:
    """Investigate alerts with analyzers written by the people who know the system."""


# Each module defines `register(app)`; importing one must stay cheap (no Ray, LLM or web code).
COMMAND_MODULES = (
    "investigate",
    "ingest",
    "serve",
    "coverage",
    "feedback",
    "backtest",
    "datasets",
    "demo",
    "analyzers",
)

for _name in COMMAND_MODULES:
    importlib.import_module(f"casebook.executor.cli.{_name}").register(app)


def main() -> None:
    app()
