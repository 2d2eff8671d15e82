"""Progress for long investigations: a live bar on a terminal, nothing otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from casebook.executor.investigation import Progress as ProgressCallback
from casebook.sdk.invocation import Outcome


@contextmanager
def progress_display(console: Console, title: str,
                     enabled: bool = True) -> Iterator[ProgressCallback | None]:
    """A callback that advances a live progress bar (None when output is not a terminal)."""
    if not enabled or not console.is_terminal:
        yield None
        return
    with Progress(TextColumn("[bold blue]{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TextColumn("{task.fields[found]} found"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(title, total=None, found=0)
        found = 0

        def advance(done: int, total: int, outcome: Outcome) -> None:
            nonlocal found
            found += outcome.status == "found"
            bar.update(task, completed=done, total=total, found=found)

        yield advance
