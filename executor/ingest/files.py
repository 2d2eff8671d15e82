"""Input files: what was read from one, how to open it, and how to say where it is broken."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import pyarrow as pa

from casebook.executor.cli.errors import UserError

GZIP_MAGIC = b"\x1f\x8b"


class IngestError(UserError):
    """A file that cannot be ingested; names the file, the line or field, and what was expected."""


@dataclass(frozen=True)
class Loaded:
    """Rows read from one file for one table, before they are checked against the schema."""

    file: str  # as the user named it
    table: str
    data: pa.Table
    format: str
    locate: Callable[[int], str]  # row index -> "line 4" or "row 4"


def is_gzip(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def open_binary(path: Path) -> pa.NativeFile:
    """The file's bytes, decompressed when it is gzip (whatever its name)."""
    return pa.input_stream(str(path), compression="gzip" if is_gzip(path) else None)


def open_text(path: Path) -> TextIO:
    """The file as text (UTF-8), decompressed when it is gzip."""
    return io.TextIOWrapper(open_binary(path), encoding="utf-8-sig", newline="")


def head(path: Path, size: int = 4096) -> bytes:
    """The first bytes of the (decompressed) file."""
    with open_binary(path) as stream:
        return stream.read(size)


def row_locator(lines: Callable[[], list[int]] | None = None) -> Callable[[int], str]:
    """A locator that names source lines (computed only when an error needs them) or rows."""
    if lines is None:
        return lambda row: f"row {row + 1}"
    return lambda row: f"line {lines()[row]}"
