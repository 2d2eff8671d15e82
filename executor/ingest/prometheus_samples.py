"""Remote-write requests of known series read as whole arrays: the common case, made cheap.

Prometheus (remote-write 1.0) sends each sample as its own TimeSeries: the series' labels,
then one Sample of a double value (left out when 0, as protobuf does) and a millisecond
timestamp. Once a series is known, its encoded labels are the bytes before that Sample, so a
request is read as: each series' bytes in one parser call, a dictionary lookup of its labels'
bytes, and the Samples' fixed layouts checked and decoded for all series at once (numpy).

Exactness: a known label prefix ends where a field ends (it was parsed whole when first met),
so what follows it is a field; it is taken as the Sample only if its tag, lengths, inner tags
and varint ends are exactly those of one, up to the body's end. A request with any series
that is new, has several samples, exemplars or another layout is decoded by the general path
(`remote_write._decode`), which also makes its series known here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

# A Sample with a value: 0x12 len=16, 0x09 + 8-byte double, 0x10 + 6-byte varint timestamp
# (millisecond timestamps from 2004 to 2039 take six varint bytes). Without one (a value of
# 0): 0x12 len=7, 0x10 + 6-byte varint.
VALUED, ZERO = 18, 9
# Prometheus marks a series that disappeared with this NaN; it is not a value.
STALE_NAN = 0x7FF0000000000002


def _series_bytes_request() -> Any:
    F = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="casebook_prometheus_series_bytes.proto", package="prometheus_bytes",
        syntax="proto3")
    message = proto.message_type.add(name="WriteRequest")
    message.field.add(name="timeseries", number=1, type=F.TYPE_BYTES, label=F.LABEL_REPEATED)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessages([proto], pool=pool)["prometheus_bytes.WriteRequest"]


SeriesBytesRequest = _series_bytes_request()


def label_bytes(encoded: tuple[bytes, ...]) -> bytes:
    """A series' labels as they precede its samples on the wire (field 1, length, label)."""
    return b"".join(b"\x0a" + _varint(len(label)) + label for label in encoded)


def known_samples(raw: bytes, regions: dict[bytes, int]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | None:
    """(series numbers, timestamps in ms, values, staleness markers left out) when every
    series of the request is known and carries one Sample in Prometheus' layout; else None.
    Raises google.protobuf's DecodeError when the body is not a message at all."""
    series = SeriesBytesRequest.FromString(raw).timeseries[:]
    if not series:
        return None
    numbers = [regions.get(one[:-VALUED]) if len(one) >= VALUED else None for one in series]
    valued = np.array([n is not None for n in numbers])
    if not valued.all():  # maybe a sample of value 0, without its value field
        for index in np.flatnonzero(~valued):
            one = series[index]
            numbers[index] = regions.get(one[:-ZERO]) if len(one) >= ZERO else None
            if numbers[index] is None:
                return None
    ts = np.empty(len(series), np.int64)
    values = np.zeros(len(series), np.float64)
    for size, rows in ((VALUED, np.flatnonzero(valued)), (ZERO, np.flatnonzero(~valued))):
        if not len(rows):
            continue
        tails = np.frombuffer(b"".join(series[i][-size:] for i in rows), np.uint8)
        tails = tails.reshape(len(rows), size)
        read = _valued(tails) if size == VALUED else _zero(tails)
        if read is None:
            return None
        ts[rows], values[rows] = read
    stale = values.view(np.uint64) == STALE_NAN
    kept = ~stale
    which = np.array(numbers, np.int32)
    return which[kept], ts[kept], values[kept], int(stale.sum())


def _valued(tails: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    if not (_fixed(tails, {0: 0x12, 1: 16, 2: 0x09, 11: 0x10}) and _varint_ends(tails[:, 12:])):
        return None
    values = np.ascontiguousarray(tails[:, 3:11]).view("<f8").ravel()
    return _varints(tails[:, 12:]), values


def _zero(tails: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    if not (_fixed(tails, {0: 0x12, 1: 7, 2: 0x10}) and _varint_ends(tails[:, 3:])):
        return None
    return _varints(tails[:, 3:]), np.zeros(len(tails), np.float64)


def _fixed(tails: np.ndarray, expected: dict[int, int]) -> bool:
    return all(bool((tails[:, column] == byte).all()) for column, byte in expected.items())


def _varint_ends(digits: np.ndarray) -> bool:
    """Every row is one varint: continuation bits on all its bytes but the last."""
    return bool((digits[:, :-1] >= 0x80).all() and (digits[:, -1] < 0x80).all())


def _varints(digits: np.ndarray) -> np.ndarray:
    result = np.zeros(len(digits), np.int64)
    for place in range(digits.shape[1]):
        result |= (digits[:, place] & 0x7F).astype(np.int64) << (7 * place)
    return result


def _varint(number: int) -> bytes:
    out = bytearray()
    while number >= 0x80:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)
