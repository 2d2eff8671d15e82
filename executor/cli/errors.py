"""How domain errors reach the terminal: one red line with the fix, and an exit code."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from casebook.executor.errors import UserError

__all__ = ["UserError", "reported"]


@contextmanager
def reported(exit_code: int = 2) -> Iterator[None]:
    """Turn user-facing errors into a red message and an exit code instead of a traceback."""
    from casebook.sdk.analyzer import AnalyzerDefinitionError
    from casebook.sdk.telemetry import TelemetryError

    try:
        yield
    except (UserError, AnalyzerDefinitionError, TelemetryError, FileNotFoundError,
            ValueError) as exc:
        from rich.console import Console
        from rich.markup import escape

        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False,
                                   soft_wrap=True)
        sys.stdout.flush()
        raise typer.Exit(exit_code) from None
