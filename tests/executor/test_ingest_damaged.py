"""Damaged input to `casebook ingest`: cut-short or corrupt gzip, text that is not UTF-8, JSON
nested past what a parser can read, broken Parquet. Each is refused with the file and the byte
(or line) where it breaks, the store stays exactly as it was, and what a writer killed mid-ingest
leaves behind is cleaned up by the next ingest."""

import gzip
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from casebook.executor.cli import app
from casebook.executor.ingest import IngestError, ingest
from casebook.executor.telemetry_store import TelemetryStore
from casebook.executor.telemetry_store.temp_files import host_tag, remove_stale_temp_files

HEADER = "ts,service,level,message\n"
CSV = HEADER + "".join(
    f"2026-01-01T12:{i // 60 % 60:02d}:{i % 60:02d}Z,api,info,request {i} served\n"
    for i in range(3000)
)


def digest(root: Path) -> str:
    """Every file under the store, names and bytes."""
    summary = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        summary.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return summary.hexdigest()


@pytest.fixture
def store(tmp_path) -> Path:
    first = tmp_path / "first.csv"
    first.write_text(HEADER + "2026-01-01T11:00:00Z,api,info,before\n")
    ingest([first], tmp_path / "store", table="logs")
    return tmp_path / "store"


def refused(files, store: Path) -> str:
    before = digest(store)
    with pytest.raises(IngestError) as caught:
        ingest(files, store)
    assert digest(store) == before
    return str(caught.value)


def test_a_cut_short_gzip_file_is_named_with_where_it_stops(tmp_path, store):
    packed = gzip.compress(CSV.encode())
    path = tmp_path / "logs.csv.gz"
    path.write_bytes(packed[: len(packed) // 2])
    assert refused([path], store) == (
        f"{path}: its gzip data stops at byte {len(packed) // 2} in the middle of the compressed "
        "stream (truncated); the file is damaged or was cut short, so copy or export it again"
    )


def test_corrupt_gzip_data_is_named_with_its_byte(tmp_path, store):
    packed = bytearray(gzip.compress(CSV.encode()))
    packed[200:260] = bytes(60)
    path = tmp_path / "logs.csv.gz"
    path.write_bytes(bytes(packed))
    message = refused([path], store)
    assert message.startswith(f"{path}: its gzip data is corrupt at byte ")
    at = int(message.split("at byte ")[1].split(" ")[0])
    assert 200 <= at < 260 + 64 and f"of {len(packed)} (" in message


def test_gzip_with_a_wrong_checksum_is_corrupt(tmp_path, store):
    packed = bytearray(gzip.compress(CSV.encode()))
    packed[-8] ^= 0xFF  # the CRC-32 in the trailer
    path = tmp_path / "logs.jsonl.gz"
    path.write_bytes(bytes(packed))
    assert refused([path], store).startswith(
        f"{path}: its gzip data is corrupt at byte {len(packed) - 5} of {len(packed)} "
        "(Error -3 while decompressing data: incorrect data check)"
    )


def test_text_that_is_not_utf8_names_its_byte_and_line(tmp_path, store):
    lines = CSV.encode().splitlines(keepends=True)
    broken = b"".join(lines[:5]) + b"2026-01-01T12:00:05Z,api,info,caf\xe9\n" + b"".join(lines[5:])
    offset = len(b"".join(lines[:5])) + len(b"2026-01-01T12:00:05Z,api,info,caf")
    plain = tmp_path / "logs.csv"
    plain.write_bytes(broken)
    assert refused([plain], store) == (
        f"{plain}: expected UTF-8 text, found b'\\xe9' at byte {offset} (line 6)"
    )
    packed = tmp_path / "more.csv.gz"
    packed.write_bytes(gzip.compress(broken))
    assert refused([packed], store) == (
        f"{packed}: expected UTF-8 text, found b'\\xe9' at decompressed byte {offset} (line 6)"
    )
    jsonl = tmp_path / "events.jsonl"
    first, second = b'{"ts": "2026-01-01T12:00:00Z", "kind": "deploy"}\n', b'{"kind": "d'
    jsonl.write_bytes(first + second + b'\xffploy", "ts": "2026-01-01T12:01:00Z"}\n')
    assert refused([jsonl], store) == (
        f"{jsonl}: expected UTF-8 text, found b'\\xff' at byte {len(first + second)} (line 2)"
    )


def test_json_nested_past_what_a_parser_reads_names_the_line(tmp_path, store):
    jsonl = tmp_path / "events.jsonl"
    jsonl.write_text('{"kind": "deploy"}\n{"kind": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    assert refused([jsonl], store) == (
        f"{jsonl} line 2: expected one JSON object per line, found one that nests arrays and "
        "objects too deeply to read"
    )
    otlp = tmp_path / "export.json"
    otlp.write_text('{"resourceLogs": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    assert refused([otlp], store) == (
        f"{otlp} line 1: expected OTLP/JSON, found a document that nests arrays and objects too "
        "deeply to read"
    )


def test_a_damaged_parquet_file_is_refused(tmp_path, store):
    path = tmp_path / "metrics.parquet"
    pq.write_table(pa.table({"ts": [1, 2], "name": ["a", "b"], "value": [1.0, 2.0]}), path)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) - 20])
    assert refused([path], store).startswith(
        f"{path}: expected a Parquet file, found unreadable data ("
    )


def test_the_cli_says_it_in_one_red_line_without_a_traceback(tmp_path, store):
    packed = gzip.compress(CSV.encode())
    path = tmp_path / "logs.csv.gz"
    path.write_bytes(packed[:100])
    result = CliRunner().invoke(app, ["ingest", str(path), "--telemetry", str(store)])
    assert result.exit_code == 2
    assert result.output == (
        f"error: {path}: its gzip data stops at byte 100 in the middle of the compressed stream "
        "(truncated); the file is damaged or was cut short, so copy or export it again\n"
    )


KILLED_WRITER = """
import sys, time
import casebook.executor.telemetry_store.location as store
from casebook.executor.ingest import ingest

def staged(path):  # the part is on disk under its hidden name: stop here until killed
    print("staged", flush=True)
    time.sleep(600)

store._fsync = staged
ingest([sys.argv[1]], sys.argv[2])
"""


def test_what_an_ingest_killed_mid_write_leaves_is_removed_by_the_next(tmp_path, store):
    source = tmp_path / "logs.csv"
    source.write_text(CSV)
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(source), str(store)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert writer.stdout.readline() == "staged\n"
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    # The part is on disk but not in the table's manifest: readers never see it.
    assert TelemetryStore.open(store).row_counts() == {"logs": 1}
    ingest([source], store)
    assert TelemetryStore.open(store).row_counts() == {"logs": 3001}


def test_temporary_files_of_live_writers_stay_and_old_ones_go(tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    live = folder / f".part-a.parquet.{host_tag()}.1.tmp"  # pid 1 always runs
    elsewhere = folder / ".part-b.parquet.other-host.999999.tmp"
    unnamed = folder / ".part-c.parquet.tmp"  # written before names carried a pid
    old = folder / ".part-d.parquet.other-host.4.tmp"
    for path in (live, elsewhere, unnamed, old):
        path.write_bytes(b"PAR1")
    day_ago = time.time() - 86400
    os.utime(old, (day_ago, day_ago))
    assert remove_stale_temp_files(tmp_path) == [old]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        p.name for p in (live, elsewhere, unnamed)
    )


def test_a_json_lines_file_whose_first_record_is_null_is_refused_not_a_crash(tmp_path, store):
    # pyarrow's JSON reader dies with SIGSEGV on this file; ingest must never hand it over.
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'\xef\xbb\xbf null\n{"ts": "2026-01-01T12:00:00Z", "kind": "deploy"}\n')
    assert refused([path], store) == (
        f"{path} line 1: expected one JSON object per line, found null"
    )
    path.write_bytes(b'{"ts": "2026-01-01T12:00:00Z", "kind": "deploy"}\nnull\n')
    assert refused([path], store) == (
        f"{path} line 2: expected one JSON object per line, found null"
    )
