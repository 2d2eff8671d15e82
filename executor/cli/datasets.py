"""`casebook datasets convert`: public incident data sets as case directories for backtests."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from casebook.executor.cli.errors import reported


class DatasetName(StrEnum):
    nezha = "nezha"
    petshop = "petshop"
    rs = "rs"


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Public incident data sets with ground truth, as case directories.",
        no_args_is_help=True,
    )
    group.command("convert")(convert)
    group.command("generate")(generate)
    app.add_typer(group, name="datasets")


def convert(
    dataset: Annotated[DatasetName, typer.Argument(help="Which data set SRC holds.")],
    src: Annotated[
        Path,
        typer.Argument(
            help="The data set folder, laid out as its authors published it (e.g. "
            "../shared/data/nezha-trainticket)."
        ),
    ],
    out: Annotated[Path, typer.Argument(help="Where to write one case directory per incident.")],
) -> None:
    """Write one case directory (alert.json, telemetry/, expected.json) per labelled incident."""
    with reported():
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        from casebook.executor.datasets import convert as convert_dataset

        console = Console()
        with Progress(
            TextColumn("[bold blue]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        ) as bar:
            task = bar.add_task(f"reading {src}", total=None)

            def advance(done: int, total: int, name: str) -> None:
                bar.update(task, completed=done, total=total, description=name)

            summary = convert_dataset(dataset.value, src, out, on_case=advance)
        rows = sum(summary.rows.values())
        console.print(
            f"Wrote {len(summary.cases)} {dataset.value} cases ({rows:,} telemetry rows) "
            f"to {summary.out}",
            highlight=False,
            soft_wrap=True,
        )
        for table, count in sorted(summary.rows.items()):
            console.print(f"  {table}: {count:,} rows", highlight=False)
        for note in summary.notes:
            console.print(f"  note: {note}", highlight=False, soft_wrap=True)


def generate(
    out: Annotated[Path, typer.Argument(help="Where to write one case directory per seed.")],
    seed: Annotated[int, typer.Option(
        "--seed", help="First seed (1000-1999: development; 5000-5999: held out).")] = 1000,
    cases: Annotated[int, typer.Option("--cases", min=1, help="How many cases (seeds).")] = 13,
) -> None:
    """Write generated incident cases: a random system, noise and one injected fault each."""
    with reported():
        from rich.console import Console

        from casebook.executor.datasets.generator import generate as generate_cases

        console = Console()
        with console.status(f"generating {cases} case(s)") as status:
            def advance(done: int, total: int, name: str) -> None:
                status.update(f"generated {done}/{total}: {name}")

            paths = generate_cases(out, seed=seed, cases=cases, on_case=advance)
        console.print(f"Wrote {len(paths)} generated cases (seeds {seed}-{seed + cases - 1}) "
                      f"to {out}", highlight=False, soft_wrap=True)
        for path in paths:
            console.print(f"  {path.name}", highlight=False)
