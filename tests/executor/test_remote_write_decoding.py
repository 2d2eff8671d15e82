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
