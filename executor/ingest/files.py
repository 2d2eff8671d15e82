"""Input files: what was read from one, how to open it, and how to say where it is broken."""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import pyarrow as pa

from casebook.executor.errors import UserError

GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 16
GZIP_WBITS = 16 + zlib.MAX_WBITS  # gzip header and trailer (CRC-32, length) checked
# What reading a damaged file raises, from pyarrow's readers, zlib, the codecs and json.
DECODE_ERRORS = (OSError, EOFError, zlib.error, UnicodeDecodeError, pa.ArrowInvalid,
                 RecursionError)


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


def holds_lone_surrogate(source: str, value: object) -> bool:
    """Whether JSON text decoded to `value` held an escape such as \\ud800 that is no character.

    Such strings cannot be stored as UTF-8; only text with a \\uD8xx-\\uDFxx escape is checked.
    """
    if "\\ud" not in source and "\\uD" not in source:
        return False
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


LONE_SURROGATE = (
    "a \\u escape of half a UTF-16 surrogate pair (such as \\ud800), which stands for no "
    "character; send the whole pair or the character itself"
)


def unreadable(path: Path, file: str, exc: BaseException) -> IngestError:
    """An error naming the file and the byte where its compression or its UTF-8 text breaks."""
    problem = gzip_problem(path) if is_gzip(path) else None
    if problem:
        return IngestError(f"{file}: {problem}; the file is damaged or was cut short, so copy "
                           "or export it again")
    problem = utf8_problem(path)
    if problem:
        return IngestError(f"{file}: {problem}")
    if isinstance(exc, RecursionError):
        return IngestError(f"{file}: its JSON nests arrays and objects too deeply to read")
    return IngestError(f"{file}: cannot read it: {exc}")


def not_utf8(path: Path, file: str) -> IngestError:
    """The error for a text file with bytes that are not UTF-8, naming the first one."""
    return IngestError(f"{file}: {utf8_problem(path) or 'expected UTF-8 text'}")


def gzip_problem(path: Path) -> str | None:
    """Where a gzip file's compressed stream breaks (None when it is whole)."""
    size = path.stat().st_size
    decompressor = zlib.decompressobj(GZIP_WBITS)
    offset, mid_member = 0, False
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            while chunk:
                before = decompressor.copy()
                try:
                    decompressor.decompress(chunk)
                except zlib.error as exc:
                    at = offset + _failing_byte(before, chunk)
                    return f"its gzip data is corrupt at byte {at} of {size} ({exc})"
                if not decompressor.eof:
                    offset += len(chunk)
                    mid_member = True
                    break
                # A member ended; concatenated members (as `cat a.gz b.gz` makes) go on.
                rest = decompressor.unused_data
                offset += len(chunk) - len(rest)
                chunk, mid_member = rest, False
                decompressor = zlib.decompressobj(GZIP_WBITS)
    if mid_member:
        return (f"its gzip data stops at byte {size} in the middle of the compressed stream "
                "(truncated)")
    return None


def _failing_byte(decompressor, chunk: bytes) -> int:
    for index in range(len(chunk)):
        try:
            decompressor.decompress(chunk[index:index + 1])
        except zlib.error:
            return index
    return len(chunk)


def utf8_problem(path: Path) -> str | None:
    """Where a (decompressed) text file first holds bytes that are not UTF-8, or None."""
    offset, line, carry = 0, 1, b""
    for chunk in _decompressed(path):
        data = carry + chunk
        try:
            data.decode("utf-8")
            carry = b""
        except UnicodeDecodeError as exc:
            # A character split across chunks is finished by the next one.
            if exc.reason == "unexpected end of data" and len(data) - exc.start < 4:
                carry = data[exc.start:]
                data = data[:exc.start]
            else:
                at = offset + exc.start
                line += data.count(b"\n", 0, exc.start)
                shown = data[exc.start:exc.start + 1]
                where = "decompressed byte" if is_gzip(path) else "byte"
                return f"expected UTF-8 text, found {shown!r} at {where} {at} (line {line})"
        offset += len(data)
        line += data.count(b"\n")
    if carry:
        return f"expected UTF-8 text, found a cut-off character at the end (byte {offset})"
    return None


def _decompressed(path: Path) -> Iterator[bytes]:
    """The file's bytes, decompressed when gzip, in chunks; stops quietly where gzip breaks."""
    if not is_gzip(path):
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                yield chunk
        return
    decompressor = zlib.decompressobj(GZIP_WBITS)
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            while chunk:
                try:
                    yield decompressor.decompress(chunk)
                except zlib.error:
                    return
                if not decompressor.eof:
                    break
                chunk = decompressor.unused_data
                decompressor = zlib.decompressobj(GZIP_WBITS)
