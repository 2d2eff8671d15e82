"""Row-per-record files: CSV (and TSV), JSON lines and Parquet, read with pyarrow.

The fast readers run first; only when one fails is the file scanned line by line to say
exactly which line is broken and how.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.json as pjson
import pyarrow.parquet as pq

from casebook.executor.ingest.files import (
    LONE_SURROGATE,
    IngestError,
    Loaded,
    holds_lone_surrogate,
    not_utf8,
    open_binary,
    open_text,
    row_locator,
)
from casebook.sdk.schema import CORE_TABLES

CHUNK = 1 << 20
NULL_RECORD = re.compile(rb"(?m)^(?:\xef\xbb\xbf)?[ \t\r]*null[ \t\r]*$")


def read_csv(path: Path, file: str, table: str, delimiter: str = ",") -> Loaded:
    """A CSV file with a header line; core tables are read as text and cast by the store."""
    header = _csv_header(path, file, delimiter)
    if header is None:
        return Loaded(file, table, pa.table({}), "csv", row_locator())
    data = None
    attempts: list[dict[str, pa.DataType] | None] = [{name: pa.string() for name in header}]
    if table not in CORE_TABLES:
        # Extra tables keep inferred types; text is the fallback when inference trips.
        attempts.insert(0, None)
    for column_types in attempts:
        try:
            data = pcsv.read_csv(
                open_binary(path),
                parse_options=pcsv.ParseOptions(delimiter=delimiter),
                convert_options=pcsv.ConvertOptions(column_types=column_types),
            )
            break
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            failure = exc
    if data is None:
        _explain_csv_failure(path, file, delimiter, header)
        raise IngestError(f"{file}: cannot read it as CSV: {failure}")
    lines = cache(lambda: _csv_record_lines(path, delimiter))
    kind = "tsv" if delimiter == "\t" else "csv"
    return Loaded(file, table, data, kind, row_locator(lines))


def _csv_header(path: Path, file: str, delimiter: str) -> list[str] | None:
    try:
        with open_text(path) as text:
            for record in csv.reader(text, delimiter=delimiter):
                if record:
                    return record
    except UnicodeDecodeError:
        raise not_utf8(path, file) from None
    return None


def _csv_records(path: Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Non-blank records with the line each starts on (a quoted value may span lines)."""
    with open_text(path) as text:
        reader = csv.reader(text, delimiter=delimiter)
        ended = 0
        for record in reader:
            if record:
                yield ended + 1, record
            ended = reader.line_num


def _csv_record_lines(path: Path, delimiter: str) -> list[int]:
    """The line on which each data record starts (the header is skipped)."""
    return [line for line, _ in _csv_records(path, delimiter)][1:]


def _explain_csv_failure(path: Path, file: str, delimiter: str, header: list[str]) -> None:
    try:
        for line, record in _csv_records(path, delimiter):
            if len(record) != len(header):
                shown = "tab" if delimiter == "\t" else repr(delimiter)
                raise IngestError(
                    f"{file} line {line}: expected {len(header)} fields as in the header "
                    f"({', '.join(header)}), found {len(record)}; quote values that contain "
                    f"a {shown}"
                )
    except UnicodeDecodeError:
        raise not_utf8(path, file) from None
    except csv.Error as exc:
        raise IngestError(f"{file}: expected CSV, found {exc}") from None


def read_jsonl(path: Path, file: str, table: str) -> Loaded:
    """JSON lines: one object per line, blank lines ignored."""
    if _holds_null_record(path):
        # pyarrow 26's reader crashes the process (SIGSEGV) when the first record is `null`
        # and takes a later one as an empty row; the careful reader names the line instead.
        data = _jsonl_slowly(path, file)
    else:
        try:
            data = pjson.read_json(open_binary(path))
            # The fast reader lets bytes that are not UTF-8 into its text columns.
            data.validate(full=True)
            if any(_holds_empty_struct(f.type) for f in data.schema):
                raise pa.ArrowInvalid("an empty object, which DuckDB cannot hold as a struct")
        except (pa.ArrowInvalid, UnicodeDecodeError):
            data = _jsonl_slowly(path, file)  # objects become JSON text there
    lines = cache(lambda: [n for n, line in _numbered_lines(path) if line.strip()])
    return Loaded(file, table, data, "jsonl", row_locator(lines))


def _holds_empty_struct(kind: pa.DataType) -> bool:
    if pa.types.is_struct(kind):
        return kind.num_fields == 0 or any(_holds_empty_struct(f.type) for f in kind)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _holds_empty_struct(kind.value_type)
    return False


def _holds_null_record(path: Path) -> bool:
    carry = b""
    with open_binary(path) as stream:
        while chunk := stream.read(CHUNK):
            data = carry + chunk
            cut = data.rfind(b"\n") + 1
            if NULL_RECORD.search(data, 0, cut):
                return True
            carry = data[cut:]
    return bool(NULL_RECORD.search(carry))


def _numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    with open_text(path) as text:
        yield from enumerate(text, start=1)


def _jsonl_slowly(path: Path, file: str) -> pa.Table:
    """Parse line by line: names a malformed line, or builds columns of mixed types."""
    records: list[dict[str, Any]] = []
    try:
        for number, line in _numbered_lines(path):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except RecursionError:
                raise IngestError(
                    f"{file} line {number}: expected one JSON object per line, found one that "
                    "nests arrays and objects too deeply to read"
                ) from None
            except json.JSONDecodeError as exc:
                raise IngestError(
                    f"{file} line {number}: expected one JSON object per line, found malformed "
                    f"JSON ({exc.msg} at column {exc.colno})"
                ) from None
            if not isinstance(record, dict):
                raise IngestError(
                    f"{file} line {number}: expected one JSON object per line, found "
                    f"{_json_kind(record)}"
                )
            if holds_lone_surrogate(line, record):
                raise IngestError(f"{file} line {number}: expected text, found {LONE_SURROGATE}")
            records.append(record)
    except UnicodeDecodeError:
        raise not_utf8(path, file) from None
    names = list(dict.fromkeys(key for record in records for key in record))
    return pa.table({name: _lenient_array([r.get(name) for r in records]) for name in names})


def _lenient_array(values: list[Any]) -> pa.Array:
    # Values that do not share one type become text; objects and lists become JSON text.
    kinds = {type(v) for v in values if v is not None}
    if kinds and (kinds & {dict, list} or (len(kinds) > 1 and not kinds <= {int, float})):
        values = [_as_text(v) for v in values]
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([_as_text(v) for v in values])


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (dict, list, bool)):
        return json.dumps(value)
    return str(value)


def _json_kind(value: Any) -> str:
    names: dict[type, str] = {list: "a list", str: "a string", bool: "a boolean"}
    return names.get(type(value), "a number" if isinstance(value, (int, float)) else "null")


def read_parquet(path: Path, file: str, table: str) -> Loaded:
    """A Parquet file."""
    try:
        data = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise IngestError(
            f"{file}: expected a Parquet file, found unreadable data ({exc})"
        ) from None
    return Loaded(file, table, data, "parquet", row_locator())
