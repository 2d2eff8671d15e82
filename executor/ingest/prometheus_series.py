"""The Prometheus series a receiver has met, numbered, with their columns built once.

A remote-write request names each series by its labels, and a Prometheus server sends the same
series again every scrape interval. So a series' labels are decoded once, when first met, into
its metric name, its service and its other labels; those go into Arrow columns a chunk at a
time, and a request's rows take them by series number (Arrow's `take`), instead of building
the same text from Python objects request after request.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import NamedTuple

import pyarrow as pa

from casebook.executor.ingest.prometheus_samples import label_bytes

UNKNOWN_SERVICE = "unknown_service"
TABLE_SIZE = 200_000  # series remembered; past this a new table starts empty
TEXT_MAP = pa.map_(pa.string(), pa.string())


class Series(NamedTuple):
    """What a series' labels say: its metric name, its service, and the other labels."""

    name: str
    service: str
    keys: tuple[str, ...]
    values: tuple[str, ...]


def describe(labels: dict[str, str], service_labels: Sequence[str]) -> Series:
    """The name from `__name__`, the service from the first of `service_labels` a series has
    (else unknown_service), and every other label."""
    labels = dict(labels)
    name = labels.pop("__name__", "")
    service = next((labels[s] for s in service_labels if labels.get(s)), UNKNOWN_SERVICE)
    return Series(name, service, tuple(labels), tuple(labels.values()))


class SeriesTable:
    """Series by their encoded labels, numbered in the order met, and their columns."""

    def __init__(self) -> None:
        self.numbers: dict[tuple[bytes, ...], int] = {}
        # The same numbers by the labels' bytes as they precede the samples on the wire.
        self.regions: dict[bytes, int] = {}
        self._series: list[Series] = []
        self._columns: tuple[pa.Array, pa.Array, pa.Array] | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._series)

    def add(self, encoded: tuple[bytes, ...], series: Series) -> int:
        """The number of a series not in `numbers` when looked up (now, maybe, it is)."""
        with self._lock:
            number = self.numbers.get(encoded)
            if number is None:
                number = self.numbers[encoded] = len(self._series)
                self.regions[label_bytes(encoded)] = number
                self._series.append(series)
        return number

    def columns(self, numbers: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array]:
        """(name, service, labels) of the series with these numbers, in their order."""
        with self._lock:
            built = 0 if self._columns is None else len(self._columns[0])
            if built < len(self._series):  # series met since: add their columns
                new = _columns(self._series[built:])
                self._columns = new if self._columns is None else tuple(  # type: ignore[assignment]
                    pa.concat_arrays([old, more]) for old, more in zip(self._columns, new,
                                                                       strict=True))
            columns = self._columns
        assert columns is not None
        return tuple(column.take(numbers) for column in columns)  # type: ignore[return-value]


def _columns(series: list[Series]) -> tuple[pa.Array, pa.Array, pa.Array]:
    offsets, keys, values = [0], [], []
    for one in series:
        keys.extend(one.keys)
        values.extend(one.values)
        offsets.append(len(keys))
    labels = pa.MapArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(keys, pa.string()),
                                     pa.array(values, pa.string()))
    return (pa.array([s.name for s in series], pa.string()),
            pa.array([s.service for s in series], pa.string()), labels)


_TABLES: dict[tuple[str, ...], SeriesTable] = {}
_TABLES_LOCK = threading.Lock()


def series_table(service_labels: Sequence[str]) -> SeriesTable:
    """The table of series read with these service labels; a full one is replaced by an empty
    one (a request under way keeps the table it started with)."""
    key = tuple(service_labels)
    with _TABLES_LOCK:
        table = _TABLES.get(key)
        if table is None or len(table) >= TABLE_SIZE:
            table = _TABLES[key] = SeriesTable()
        return table
