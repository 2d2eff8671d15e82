"""`casebook analyzers list | check | new`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from casebook.executor.cli.errors import reported
from casebook.executor.errors import UserError

group = typer.Typer(help="List, check and create analyzers.", no_args_is_help=True)
PackOption = Annotated[list[str] | None, typer.Option(
    "--pack", help="Extra analyzer pack: a module, a package directory or a .py file; "
                   "repeatable.")]


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="analyzers")


@group.command("list")
def list_analyzers(pack: PackOption = None) -> None:
    """List every analyzer with what it applies to."""
    with reported():
        from rich.console import Console
        from rich.table import Table

        from casebook.sdk.registry import load_registry

        registry = load_registry(pack or [])
        table = Table(header_style="bold")
        table.add_column("analyzer", no_wrap=True)
        for column in ("applies to", "fan-out / reads", "timeout", "owner"):
            table.add_column(column)
        for spec in registry:
            reads = ([f"over {p}" for p in spec.fan_out] + sorted(spec.depends_on)
                     + [str(need) for need in spec.reads])
            table.add_row(spec.name, spec.describe_match(), ", ".join(reads) or "-",
                          f"{spec.timeout_s:g} s", spec.owner or "-")
        console = Console()
        console.print(table)
        console.print(f"{len(registry)} analyzers from {', '.join(registry.packs)}")
        if registry.problems:
            console.print(f"[red]{len(registry.problems)} problem(s); run `casebook analyzers "
                          "check`[/]")


@group.command("check")
def check(pack: PackOption = None,
          builtin: Annotated[bool, typer.Option(help="Include the built-in pack.")] = True) -> None:
    """Check analyzer definitions; print every problem at once (exit 1 if any)."""
    with reported():
        from rich.console import Console
        from rich.markup import escape

        from casebook.sdk.registry import load_registry

        registry = load_registry(pack or [], builtin=builtin, entry_point_packs=builtin)
        problems = registry.check()
        console = Console()
        if problems:
            console.print(f"[bold red]{len(problems)} problem(s) in analyzer definitions:[/]")
            for problem in problems:
                console.print(f"  [red]✗[/] {escape(problem.where)}: {escape(problem.what)}",
                              highlight=False)
                console.print(f"    [green]fix:[/] {escape(problem.fix)}", highlight=False)
            raise typer.Exit(1)
        console.print(f"[green]✓[/] {len(registry)} analyzers OK "
                      f"({', '.join(registry.packs) or 'no packs'})")


@group.command("new")
def new(
    name: Annotated[str, typer.Argument(help="lower_snake_case, named for what it finds.")],
    directory: Annotated[Path, typer.Option(
        "--dir", help="The pack's directory; a new pack is made there when it holds none.")
    ] = Path("."),
    kind: Annotated[str, typer.Option(
        "--kind", help="metric-threshold, log-pattern, change, fan-out, follow-up or "
                       "post-processor.")
    ] = "log-pattern",
    owner: Annotated[str | None, typer.Option(
        help="Team that owns a new pack (shown in reports and coverage).")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite existing files.")] = False,
) -> None:
    """Write a new analyzer, its test and an example incident into an installable pack."""
    with reported():
        import re

        from casebook.executor.scaffold import write_analyzer

        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise UserError(f"'{name}' is not a lower_snake_case name; name analyzers for what "
                            "they find, e.g. `error_burst`")
        scaffold = write_analyzer(name, directory, kind=kind, owner=owner, force=force)
        for path in scaffold.written:
            typer.echo(f"wrote {path}")
        typer.echo("next steps:")
        for step in scaffold.next_steps(name):
            typer.echo(f"  {step}")
