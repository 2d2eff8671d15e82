"""Property-based checks of the ingest parsers (CSV, JSON lines, OTLP/JSON, each maybe gzip and
maybe cut short): a file is either added or refused with IngestError, never another exception,
and a refused file creates no store (test_ingest_damaged checks an existing one is unchanged)."""

import gzip
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from casebook.executor.ingest import IngestError, ingest

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
NOON_NANOS = 1767268800000000000

scalars = (
    st.none() | st.booleans() | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=8,
)


def maybe(valid, wrong=json_values):
    """Mostly `valid`, one time in ten `wrong`."""
    return st.integers(min_value=0, max_value=9).flatmap(lambda n: wrong if n == 0 else valid)


def damaged(content: st.SearchStrategy[bytes]) -> st.SearchStrategy[tuple[bytes, bool]]:
    """(bytes, gzip?) with the bytes maybe compressed, maybe cut short or with a byte flipped."""

    def pack(raw: bytes, compress: bool, cut: float | None, flip: int | None):
        data = gzip.compress(raw, mtime=0) if compress else raw
        if cut is not None:
            data = data[: int(len(data) * cut)]
        if flip is not None and data:
            index = flip % len(data)
            data = data[:index] + bytes([data[index] ^ 0x5A]) + data[index + 1:]
        return data, compress

    return st.builds(
        pack, content, st.booleans(),
        st.none() | st.floats(min_value=0, max_value=1), st.none() | st.integers(0, 10**6),
    )


times = maybe(
    st.integers(min_value=0, max_value=4_000_000_000).map(str)
    | st.sampled_from(["2026-01-01T12:00:00Z", "2026-01-01 12:00:00", "1767268800000"]),
    st.text(max_size=12),
)
cells = maybe(st.text(max_size=12).filter(lambda t: "\x00" not in t), st.text(max_size=4))


LOGS_HEADER = ["ts", "service", "level", "message"]
HEADERS = [LOGS_HEADER, ["ts", "name", "service", "value"], ["ts", "kind", "service", "summary"],
           ["ts", "service", "level", "message", "extra"]]
COLUMN_CELLS = {
    "ts": times,
    "level": maybe(st.sampled_from(["info", "error", "warn"]), cells),
    "value": maybe(st.floats(allow_nan=False, allow_infinity=False).map(repr), cells),
    "kind": maybe(st.sampled_from(["deploy", "config"]), cells),
}


@st.composite
def csv_files(draw, headers=HEADERS) -> bytes:
    header = draw(st.sampled_from(headers))
    lines = [",".join(header)]
    for _ in range(draw(st.integers(min_value=0, max_value=5))):
        row = [draw(COLUMN_CELLS.get(column, cells)) for column in header]
        row = draw(maybe(st.just(row), st.just(row[:-1]) | st.just([*row, "surplus"])))
        lines.append(",".join(json.dumps(c) if draw(st.booleans()) else c for c in row))
    text = "\n".join(lines).encode()
    return text + draw(maybe(st.just(b""), st.binary(max_size=8)))


jsonl_records = st.fixed_dictionaries(
    {"ts": maybe(times), "service": maybe(st.text(max_size=8)),
     "level": maybe(st.sampled_from(["info", "error"])), "message": maybe(st.text(max_size=12))},
    optional={"attributes": maybe(st.dictionaries(st.text(min_size=1, max_size=5),
                                                  st.text(max_size=5), max_size=3))},
)
jsonl_files = st.lists(
    maybe(jsonl_records.map(json.dumps), json_values.map(json.dumps) | st.text(max_size=12)),
    max_size=6,
).map(lambda lines: "\n".join(lines).encode())


def attribute(key, value):
    return {"key": key, "value": value}


any_values = maybe(
    st.one_of(
        st.text(max_size=8).map(lambda t: {"stringValue": t}),
        st.integers(-(10**12), 10**12).map(lambda n: {"intValue": str(n)}),
        st.floats(allow_nan=False).map(lambda x: {"doubleValue": x}),
        st.booleans().map(lambda b: {"boolValue": b}),
    )
)
log_records = st.fixed_dictionaries(
    {"timeUnixNano": maybe(st.integers(0, 2 * NOON_NANOS).map(str))},
    optional={"severityText": maybe(st.sampled_from(["INFO", "ERROR"])),
              "severityNumber": maybe(st.integers(0, 24)), "body": any_values,
              "traceId": maybe(st.text("0123456789abcdef", min_size=32, max_size=32)),
              "attributes": maybe(st.lists(st.builds(attribute, st.text(max_size=5),
                                                      any_values), max_size=3))},
)
otlp_documents = st.builds(
    lambda service, records: {"resourceLogs": [{
        "resource": {"attributes": [attribute("service.name", service)]},
        "scopeLogs": [{"logRecords": records}],
    }]},
    any_values,
    maybe(st.lists(maybe(log_records), max_size=4)),
)
otlp_files = st.lists(otlp_documents, min_size=1, max_size=3).map(
    lambda docs: "\n".join(json.dumps(d) for d in docs).encode()
)


def added_or_refused(name: str, data: bytes) -> None:
    """Ingest one file into a new store: it is created with the rows, or not at all."""
    with tempfile.TemporaryDirectory() as folder:
        path, store = Path(folder) / name, Path(folder) / "store"
        path.write_bytes(data)
        try:
            reports = ingest([path], store)
        except IngestError as exc:
            assert str(path) in str(exc)
            assert not store.exists()
            return
        assert all(r.rows >= 0 for r in reports)  # an OTLP file may hold no records
        assert list(store.glob("*/.*.tmp")) == []


@FUZZ
@given(damaged(csv_files()), st.sampled_from(["logs", "metrics", "events", "orders"]))
def test_csv_files_are_added_or_refused(packed, table):
    data, compressed = packed
    added_or_refused(f"{table}.csv{'.gz' if compressed else ''}", data)


@FUZZ
@given(damaged(jsonl_files), st.sampled_from(["logs", "events", "orders"]))
def test_json_lines_files_are_added_or_refused(packed, table):
    data, compressed = packed
    added_or_refused(f"{table}.jsonl{'.gz' if compressed else ''}", data)


@FUZZ
@given(damaged(otlp_files))
def test_otlp_json_files_are_added_or_refused(packed):
    data, compressed = packed
    added_or_refused(f"export.json{'.gz' if compressed else ''}", data)


@FUZZ
@given(st.binary(max_size=400), st.sampled_from(["logs.csv", "logs.jsonl", "export.json",
                                                 "logs.parquet", "logs.csv.gz", "data"]))
def test_arbitrary_bytes_under_any_name_are_added_or_refused(data, name):
    added_or_refused(name, data)


@pytest.mark.parametrize("name", ["logs.csv", "logs.jsonl", "export.json"])
def test_the_strategies_reach_both_outcomes(name):
    """A guard on the generators: some fuzzed files must load and some be refused, or the
    properties above check less than they seem to."""
    strategy = {"logs.csv": csv_files([LOGS_HEADER]), "logs.jsonl": jsonl_files,
                "export.json": otlp_files}[name]
    outcomes = set()

    @settings(max_examples=40, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(data):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / name
            path.write_bytes(data)
            try:
                ingest([path], Path(folder) / "store")
                outcomes.add("added")
            except IngestError:
                outcomes.add("refused")

    run()
    assert outcomes == {"added", "refused"}
