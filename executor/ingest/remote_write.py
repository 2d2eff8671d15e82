"""Prometheus remote-write 1.0: a snappy-compressed `prometheus.WriteRequest` as `metrics` rows.

No Python package ships Prometheus' protos, so the three messages needed (WriteRequest,
TimeSeries with its Labels and Samples) are declared here in code and built at import time;
fields this module does not declare (metadata, exemplars, native histograms) are skipped by the
protobuf parser.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cramjam
import numpy as np
import pyarrow as pa
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from casebook.executor.ingest.otlp_rows import COLUMNS
from casebook.executor.ingest.prometheus_samples import STALE_NAN, known_samples
from casebook.executor.ingest.prometheus_series import Series, SeriesTable, describe, series_table

DEFAULT_SERVICE_LABELS = ("service", "job")


def _messages() -> dict[str, type]:
    proto = descriptor_pb2.FileDescriptorProto(
        name="casebook_prometheus_remote.proto", package="prometheus", syntax="proto3"
    )
    F = descriptor_pb2.FieldDescriptorProto
    # RawSeries reads the same bytes as TimeSeries but keeps each label as its encoded bytes:
    # series repeat from one request to the next, so their labels are decoded once and
    # looked up by those bytes afterwards (a label object costs more than the lookup).
    shapes = {
        "Label": [("name", 1, F.TYPE_STRING, None, False), ("value", 2, F.TYPE_STRING, None, False)],
        "Sample": [("value", 1, F.TYPE_DOUBLE, None, False),
                   ("timestamp", 2, F.TYPE_INT64, None, False)],
        "TimeSeries": [("labels", 1, F.TYPE_MESSAGE, ".prometheus.Label", True),
                       ("samples", 2, F.TYPE_MESSAGE, ".prometheus.Sample", True)],
        "WriteRequest": [("timeseries", 1, F.TYPE_MESSAGE, ".prometheus.TimeSeries", True)],
        "RawSeries": [("labels", 1, F.TYPE_BYTES, None, True),
                      ("samples", 2, F.TYPE_MESSAGE, ".prometheus.Sample", True)],
        "RawWriteRequest": [("timeseries", 1, F.TYPE_MESSAGE, ".prometheus.RawSeries", True)],
    }  # fmt: skip
    for name, fields in shapes.items():
        message = proto.message_type.add(name=name)
        for field_name, number, kind, type_name, repeated in fields:
            field = message.field.add(
                name=field_name,
                number=number,
                type=kind,
                label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL,
            )
            if type_name:
                field.type_name = type_name
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    classes = message_factory.GetMessages([proto], pool=pool)
    return {name: classes[f"prometheus.{name}"] for name in shapes}


MESSAGES = _messages()
WriteRequest, Label = MESSAGES["WriteRequest"], MESSAGES["Label"]
RawWriteRequest = MESSAGES["RawWriteRequest"]


class RemoteWriteError(ValueError):
    """A body that is not a snappy-compressed WriteRequest; the message says which part."""


@dataclass
class Decoded:
    data: pa.Table
    stale: int  # staleness markers, which are not values and are left out


def decode_remote_write(
    body: bytes, service_labels: Sequence[str] = DEFAULT_SERVICE_LABELS
) -> Decoded:
    """Rows of `metrics` from a remote-write body: name from `__name__`, the service from the
    first of `service_labels` a series has, every other label in `labels`."""
    try:
        raw = bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as exc:
        raise RemoteWriteError(
            f"the body is not snappy-compressed (block format, as Prometheus sends it): {exc}"
        ) from None
    return decode_write_request(raw, service_labels)


def decode_write_request(raw: bytes, service_labels: Sequence[str]) -> Decoded:
    """Rows of `metrics` from an uncompressed `prometheus.WriteRequest`."""
    table = series_table(service_labels)
    try:
        known = known_samples(raw, table.regions)  # the usual request: read as arrays
        if known is None:
            known = _decode(RawWriteRequest.FromString(raw), table, service_labels)
    except DecodeError as exc:  # labels are checked (UTF-8) only when first decoded
        raise RemoteWriteError(f"the body is not a prometheus.WriteRequest ({exc})") from None
    which, ts, values, stale = known
    kinds = COLUMNS["metrics"]
    names, services, labels = table.columns(pa.array(which, pa.int32()))
    data = pa.table({
        "ts": pa.array(ts, pa.int64()).cast(pa.timestamp("ms")).cast(kinds["ts"]),
        "name": names,
        "service": services,
        "value": pa.array(values, kinds["value"]),
        "labels": labels,
    })  # fmt: skip
    return Decoded(data, stale)


def _decode(request: Any, table: SeriesTable, service_labels: Sequence[str]
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(series numbers, timestamps in ms, values, staleness markers) of any WriteRequest,
    series by series."""
    number_of = table.numbers.get
    ts = array("q")  # machine arrays: numpy and Arrow take their buffers without converting
    values = array("d")
    which = array("i")  # the series of each sample, by its number in the table
    # Bound once: this loop runs once per series.
    add_ts, add_value, add_series = ts.append, values.append, which.append
    stale = 0
    for series in request.timeseries:
        encoded = tuple(series.labels[:])  # a slice is read in one call; iterating is slow
        number = number_of(encoded)
        if number is None:  # first met: its labels are decoded (and checked) now
            number = table.add(encoded, _describe(encoded, service_labels))
        for sample in series.samples[:]:
            value = sample.value
            if value != value and _bits(value) == STALE_NAN:  # NaN: maybe a staleness marker
                stale += 1
                continue
            add_ts(sample.timestamp)
            add_value(value)
            add_series(number)
    return (np.frombuffer(which, np.int32), np.frombuffer(ts, np.int64),
            np.frombuffer(values, np.float64), stale)


def _describe(encoded: tuple[bytes, ...], service_labels: Sequence[str]) -> Series:
    labels = {}
    for item in encoded:
        label = Label.FromString(item)
        labels[label.name] = label.value
    return describe(labels, service_labels)


def encode_remote_write(series: Sequence[tuple[dict[str, str], Sequence[tuple[int, float]]]]) -> bytes:
    """A snappy-compressed WriteRequest of (labels, [(timestamp_ms, value)]) series."""
    request = WriteRequest()
    for labels, samples in series:
        item = request.timeseries.add()
        for name in sorted(labels):
            item.labels.add(name=name, value=labels[name])
        for stamp, value in samples:
            item.samples.add(timestamp=stamp, value=value)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def _bits(value: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", value))[0]
