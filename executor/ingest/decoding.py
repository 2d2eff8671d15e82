"""Receiver request bodies as rows: what `casebook serve`'s OTLP and remote-write routes decode.

Each function takes its arguments, then the body, and returns `Decoded`; they are plain
functions of bytes, so the receivers run them on a worker thread.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from casebook.executor.ingest.otlp import OtlpJsonError, parse_otlp_json
from casebook.executor.ingest.otlp_rows import decode_request, request_rows
from casebook.executor.ingest.remote_write import decode_remote_write

PROTOBUF = "application/x-protobuf"


@dataclass
class Decoded:
    """The rows of one request by table, and what OTLP's partial success reports."""

    tables: dict[str, pa.Table]
    rejected: int = 0
    problem: str | None = None


def decode_otlp(table: str, kind: str, body: bytes) -> Decoded:
    """An OTLP export request of `table` (spans, logs or metrics), protobuf or JSON; raises
    DecodeError or OtlpJsonError for a body that is not one."""
    if kind == PROTOBUF:
        rows = decode_request(table, body)
    else:
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise OtlpJsonError(f"the body is not JSON ({exc})") from None
        rows = request_rows(parse_otlp_json(document, table))
    return Decoded({table: rows.arrow()}, rows.rejected, rows.problem)


def decode_samples(service_labels: Sequence[str], body: bytes) -> Decoded:
    """A Prometheus remote-write body as `metrics` rows; raises RemoteWriteError."""
    return Decoded({"metrics": decode_remote_write(body, service_labels).data})
