"""Remote-write bodies become the same `metrics` rows whether each series brings one sample (the
usual shape, taken as is) or several and repeats (taken sample by sample)."""

import threading
from datetime import datetime, timedelta

import cramjam
import pytest

from casebook.executor.ingest.remote_write import (
    RemoteWriteError,
    decode_remote_write,
    encode_remote_write,
)

NOON_MS = 1767268800000
NOON = datetime(2026, 1, 1, 12, 0)


def rows(body: bytes) -> list[tuple]:
    data = decode_remote_write(body).data
    return list(zip(*(data[c].to_pylist() for c in data.column_names), strict=True))


def test_one_sample_per_series_and_repeated_series_give_the_same_rows():
    series = [({"__name__": f"m{n}", "job": "api", "pod": f"p{n}"}, [(NOON_MS + n, float(n))])
              for n in range(3)]
    expected = [(NOON + timedelta(milliseconds=n), f"m{n}", "api", float(n),
                 [("job", "api"), ("pod", f"p{n}")]) for n in range(3)]
    assert rows(encode_remote_write(series)) == expected
    # The same samples with series split and repeated: rows in the order of the samples.
    split = [series[1], series[0], ({"__name__": "m1", "job": "api", "pod": "p1"}, []),
             series[2], ({"pod": "p0", "__name__": "m0", "job": "api"}, [(NOON_MS + 9, 9.0)])]
    assert rows(encode_remote_write(split)) == [expected[1], expected[0], expected[2], (
        NOON + timedelta(milliseconds=9), "m0", "api", 9.0, [("job", "api"), ("pod", "p0")])]


def test_a_label_that_is_not_utf8_is_refused_as_a_bad_body():
    label = b"\x0a\x08__name__\x12\x02\xff\xfe"  # a Label whose value is not UTF-8
    series = b"\x0a" + bytes([len(label)]) + label  # a TimeSeries holding it
    body = bytes(cramjam.snappy.compress_raw(b"\x0a" + bytes([len(series)]) + series))
    with pytest.raises(RemoteWriteError, match="the body is not a prometheus.WriteRequest"):
        decode_remote_write(body)


def test_requests_decoded_at_once_meeting_new_series_get_their_own_rows():
    def body(request: int) -> tuple[bytes, list[tuple]]:
        # Overlapping series: each request meets some seen before and some new to everyone.
        numbers = range(request * 50, request * 50 + 120)
        series = [({"__name__": "load", "job": f"j{n % 7}", "pod": f"p{n}"},
                   [(NOON_MS + request, float(n))]) for n in numbers]
        expected = [(NOON + timedelta(milliseconds=request), "load", f"j{n % 7}", float(n),
                     [("job", f"j{n % 7}"), ("pod", f"p{n}")]) for n in numbers]
        return encode_remote_write(series), expected

    cases = [body(request) for request in range(40)]
    wrong = []

    def decode(share: list) -> None:
        for encoded, expected in share:
            try:
                if rows(encoded) != expected:
                    wrong.append(expected[0])
            except Exception as exc:  # noqa: BLE001 - a thread's failure must reach the assert
                wrong.append(repr(exc))

    threads = [threading.Thread(target=decode, args=(cases[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


STALE = __import__("struct").unpack("<d", (0x7FF0000000000002).to_bytes(8, "little"))[0]


def test_known_series_are_read_as_arrays_into_the_same_rows(monkeypatch):
    from casebook.executor.ingest import remote_write

    labels = [{"__name__": "arrays_m", "job": "api", "pod": f"p{n}"} for n in range(4)]
    values = [0.0, -1.5, float("inf"), STALE]  # 0 is sent without its value field
    body = encode_remote_write([(one, [(NOON_MS + n, value)])
                                for n, (one, value) in enumerate(zip(labels, values, strict=True))])
    expected = [(NOON + timedelta(milliseconds=n), "arrays_m", "api", value,
                 [("job", "api"), ("pod", f"p{n}")]) for n, value in enumerate(values[:3])]
    read = []
    known_samples = remote_write.known_samples
    monkeypatch.setattr(remote_write, "known_samples",
                        lambda raw, regions: read.append(known_samples(raw, regions)) or read[-1])
    assert rows(body) == expected  # new series: read series by series, and now known
    assert read[-1] is None
    assert rows(body) == expected  # known: read as arrays, staleness marker left out
    assert read[-1] is not None and read[-1][3] == 1
    # Known series in other layouts go series by series, into the rows they always gave.
    twice = encode_remote_write([(labels[0], [(NOON_MS, 1.0), (NOON_MS + 1, 2.0)])])
    early = encode_remote_write([(labels[1], [(5, 1.0)])])  # a timestamp of one varint byte
    assert rows(twice) == [(NOON, "arrays_m", "api", 1.0, [("job", "api"), ("pod", "p0")]),
                           (NOON + timedelta(milliseconds=1), "arrays_m", "api", 2.0,
                            [("job", "api"), ("pod", "p0")])]
    assert read[-1] is None
    assert rows(early) == [(datetime(1970, 1, 1, 0, 0, 0, 5000), "arrays_m", "api", 1.0,
                            [("job", "api"), ("pod", "p1")])]
    assert read[-1] is None
