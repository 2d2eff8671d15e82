"""Nezha (IntelligentDDS/Nezha, MIT): TrainTicket or OnlineBoutique, one case per injected fault.

Telemetry per case: pod metrics, logs and spans from WINDOW_BEFORE before the injection to
WINDOW_AFTER after it, plus the day's fault-free `construct_data` logs and spans as extra history
when they precede the injection. The alert is the front end's; the injected pod and the fault
type go only into expected.json and case.json. The system is named by the source folder
(`nezha-onlineboutique` -> `onlineboutique`; TrainTicket otherwise). Real archives have gaps
(OnlineBoutique lacks most log files and a third of the trace files, listed in `ABSENT.txt`):
a case is made from what is there, and its notes say what its window lacks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from casebook.executor.datasets import Conversion
from casebook.executor.datasets.casedir import Case, Cause, DatasetLayoutError, require, snake_case
from casebook.sdk.models import Alert

LAYOUT = (
    "Expected the Nezha TrainTicket layout: SRC/rca_data-<date>/ holding "
    "<date>-fault_list.json, metric/<pod>_metric.csv.gz, log/<HH_MM>_log.csv.gz and "
    "trace/<HH_MM>_trace.csv.gz; optionally SRC/construct_data-<date>/ (fault-free log/ and "
    "trace/) and SRC/root_cause_ts.json."
)
WINDOW_BEFORE = timedelta(minutes=30)
# Faults on a day are 4 to 10 minutes apart; ending the window before the next one starts keeps
# each case about one fault (the smallest gap on 2023-01-29 is 4 min 10 s).
WINDOW_AFTER = timedelta(minutes=4)
CATEGORIES = {
    "cpu_contention": "resource",
    "cpu_consumed": "resource",
    "network_delay": "network",
    "return": "code",
    "exception": "code",
}
POD_SUFFIX = re.compile(r"-[a-z0-9]{6,10}-[a-z0-9]{5}$")
UNITS = {"%": "percent", "s": "seconds", "ms": "ms", "m": "millicores", "Mi": "mib", "Ops": "ops"}
METRIC_KEYS = ("Time", "TimeStamp", "PodName", "ServiceName")
LOG_TYPES = {"Timestamp": pa.string(), "TimeUnixNano": pa.int64()}
TRACE_TYPES = {
    "StartTimeUnixNano": pa.int64(),
    "EndTimeUnixNano": pa.int64(),
    "Duration": pa.int64(),
}
LABELS = pa.map_(pa.string(), pa.string())
ID_COLUMNS = ("Node", "PodName", "Container", "TraceID", "SpanID", "ParentID")


def service_of(pod: str) -> str:
    """`ts-food-service-f5756978c-k8vqf` -> `ts-food-service` (replica-set and pod hash gone)."""
    return POD_SUFFIX.sub("", pod)


def metric_name(column: str) -> str:
    """`CpuUsageRate(%)` -> `cpu_usage_rate_percent`; `PodClientLatencyP90(s)` -> `..._seconds`."""
    match = re.fullmatch(r"(.*?)\((.*)\)", column)
    if not match:
        return snake_case(column)
    base, unit = match.groups()
    return f"{snake_case(base)}_{UNITS.get(unit) or snake_case(unit)}"


def cases(src: Path) -> Conversion:
    """The cases of every `rca_data-<date>` folder under SRC, one per listed fault."""
    days = sorted(p for p in src.glob("rca_data-*") if p.is_dir())
    if not days:
        raise DatasetLayoutError(f"no rca_data-<date>/ folder in {src}. {LAYOUT}")
    faults = {day: _faults(day) for day in days}
    inner = _inner_root_causes(src / "root_cause_ts.json")
    notes: list[str] = []
    absent = src / "ABSENT.txt"
    if absent.is_file():
        listed = [line for line in absent.read_text(encoding="utf-8").splitlines()
                  if line.strip().endswith((".csv", ".csv.gz"))]
        notes.append(f"{len(listed)} file(s) of the source are absent (ABSENT.txt); cases use "
                     "what is there")
    return Conversion(
        total=sum(len(f) for f in faults.values()),
        cases=_all_cases(src, faults, inner, notes),
        notes=notes,
    )


def _faults(day: Path) -> list[dict[str, Any]]:
    date = day.name.removeprefix("rca_data-")
    path = require(day / f"{date}-fault_list.json", "the fault list of that day", LAYOUT)
    for folder in ("metric", "log", "trace"):
        require(day / folder, f"the {folder} folder of that day", LAYOUT)
    by_hour = json.loads(path.read_text(encoding="utf-8"))
    return [fault for hour in sorted(by_hour) for fault in by_hour[hour]]


def _inner_root_causes(path: Path) -> dict[str, dict[str, str]]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


@dataclass
class Day:
    """What every case of one day shares."""

    system: str  # `trainticket`, `onlineboutique`: from the source folder's name
    date: str
    front_service: str
    construct_end: datetime | None  # the last fault-free span, naive UTC
    notes: list[str]


def _all_cases(
    src: Path,
    faults: dict[Path, list[dict[str, Any]]],
    inner: dict[str, dict[str, str]],
    notes: list[str],
) -> Iterator[Case]:
    for day_folder, listed in faults.items():
        with duckdb.connect() as con:
            con.execute("set TimeZone = 'UTC'")
            day = _load_day(con, src, day_folder)
            notes.extend(day.notes)
            for index, fault in enumerate(listed, start=1):
                yield _case(con, day, index, fault, inner)


def _load_day(con: duckdb.DuckDBPyConnection, src: Path, folder: Path) -> Day:
    """Read one day's files into tables metrics, logs and spans (each row with its source)."""
    date = folder.name.removeprefix("rca_data-")
    construct = src / f"construct_data-{date}"
    notes: list[str] = []
    metric_files = sorted((folder / "metric").glob("*.csv*"))
    log_files = _files(folder / "log") + _files(construct / "log")
    trace_files = _files(folder / "trace") + _files(construct / "trace")
    if not metric_files or not log_files or not trace_files:
        raise DatasetLayoutError(f"no metric, log or trace CSV files under {folder}. {LAYOUT}")
    tables = []
    for path in metric_files:
        table = _metric_rows(path)
        if table is None:  # a call-graph file (Source, Target, ...), not a pod's metrics
            notes.append(f"skipped {path.name}: no PodName or ServiceName column, not a pod's "
                         "metrics")
        else:
            tables.append(table)
    if not tables:
        raise DatasetLayoutError(f"no per-pod metric file under {folder / 'metric'}. {LAYOUT}")
    con.register("metric_rows", pa.concat_tables(tables))
    con.execute("create table metrics as select * from metric_rows")
    con.register("raw_logs", _read_all(src, log_files, LOG_TYPES, notes))
    con.register("raw_spans", _read_all(src, trace_files, TRACE_TYPES, notes))
    malformed = con.execute(
        "select source, count(*) from raw_logs where not json_valid(Log) group by 1 order by 1"
    ).fetchall()
    notes.extend(
        f"skipped {n} log row(s) whose Log field is not valid JSON in {f}" for f, n in malformed
    )
    con.execute(LOGS_SQL)
    con.execute(SPANS_SQL)
    flat = [
        r[0]
        for r in con.execute(
            "select name from metrics group by name having min(value) = 0 and max(value) = 0 "
            "order by name"
        ).fetchall()
    ]
    if flat:
        notes.append(f"metrics {', '.join(flat)} are 0 in every row of {date}")
    front = con.execute(
        "select service from spans where parent_span_id is null group by 1 "
        "order by count(*) desc, 1 limit 1"
    ).fetchall()
    construct_end = con.execute(
        "select max(start_ts) from spans where source like 'construct_data-%'"
    ).fetchall()[0][0]
    system = src.resolve().name.removeprefix("nezha-") if src.resolve().name.startswith(
        "nezha-") else "trainticket"
    return Day(system, date, front[0][0] if front else "frontend", construct_end, notes)


def _files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.csv*")) if folder.is_dir() else []


# Adjacent minute files overlap by a few rows, and the fault-free folder overlaps the first fault
# file; each row is kept once, from the fault folder when it is in both.
LOGS_SQL = r"""
create table logs as
with parsed as (
    select source, TimeUnixNano, PodName, Node, Container, TraceID, SpanID,
           rtrim(json_extract_string(Log, '$.log'), e'\n\r ') as line
    from raw_logs where json_valid(Log)
), once as (
    select distinct on (TimeUnixNano, PodName, TraceID, SpanID, line) *
    from parsed order by TimeUnixNano, PodName, TraceID, SpanID, line, source desc
)
select source,
       make_timestamp(TimeUnixNano // 1000) as ts,
       regexp_replace(PodName, 'POD_SUFFIX', '') as service,
       case lower(regexp_extract(line, '^\S+\s+([A-Z]+)\s', 1))
           when '' then 'info' when 'warning' then 'warn'
           else lower(regexp_extract(line, '^\S+\s+([A-Z]+)\s', 1)) end as level,
       regexp_replace(line, '^\S+\s+[A-Z]+\s+', '') as message,
       nullif(TraceID, '') as trace_id,
       nullif(SpanID, '') as span_id,
       map(['pod', 'node', 'container', 'logger'],
           [PodName, Node, Container, regexp_extract(line, '^\S+\s+[A-Z]+\s+(\S+)', 1)])
           as attributes
from once
""".replace("POD_SUFFIX", POD_SUFFIX.pattern)

# The traces carry no status: a span is an error when it wrote an ERROR line to its log.
SPANS_SQL = r"""
create table spans as
with errors as (
    select distinct trace_id, span_id from logs where level in ('error', 'fatal')
)
select distinct on (s.TraceID, s.SpanID)
       s.source,
       s.TraceID as trace_id,
       s.SpanID as span_id,
       nullif(nullif(s.ParentID, 'root'), '') as parent_span_id,
       regexp_replace(s.PodName, 'POD_SUFFIX', '') as service,
       s.OperationName as name,
       make_timestamp(s.StartTimeUnixNano // 1000) as start_ts,
       (s.EndTimeUnixNano - s.StartTimeUnixNano) / 1e6 as duration_ms,
       case when e.span_id is null then 'ok' else 'error' end as status,
       map(['pod'], [s.PodName]) as attributes
from raw_spans s
left join errors e on e.trace_id = s.TraceID and e.span_id = s.SpanID
order by s.TraceID, s.SpanID, s.source desc
""".replace("POD_SUFFIX", POD_SUFFIX.pattern)


def _read_all(
    src: Path, files: list[Path], types: dict[str, pa.DataType], notes: list[str]
) -> pa.Table:
    """CSV files as one table with a `source` column; malformed rows are skipped and counted."""
    tables = []
    for path in files:
        skipped = 0

        def skip(_row: Any) -> str:
            nonlocal skipped
            skipped += 1
            return "skip"

        table = pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(invalid_row_handler=skip),
            convert_options=pacsv.ConvertOptions(
                column_types={**types, **{c: pa.string() for c in ID_COLUMNS}},
                strings_can_be_null=False,
            ),
        )
        relative = str(path.relative_to(src))
        if skipped:
            notes.append(f"skipped {skipped} malformed CSV row(s) in {relative}")
        tables.append(table.append_column("source", pa.array([relative] * table.num_rows)))
    return pa.concat_tables(tables, promote_options="permissive")


def _metric_rows(path: Path) -> pa.Table | None:
    """Every metric column of one file as rows (ts, name, service, value, labels).

    None for a file that is not per pod or per service (OnlineBoutique's dependency and
    per-edge latency files).
    """
    table = pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            column_types={"Time": pa.string(), "TimeStamp": pa.int64()}
        ),
    )
    if "PodName" in table.column_names:
        pods = table["PodName"].to_pylist()
        services = pa.array([service_of(p) for p in pods], pa.string())
        labels = pa.array([[("pod", p)] for p in pods], LABELS)
    elif "ServiceName" in table.column_names:  # front_service.csv: the front end's own series
        services = pc.utf8_lower(table["ServiceName"].combine_chunks())
        labels = pa.array([[] for _ in range(table.num_rows)], LABELS)
    else:
        return None
    stamps = pc.multiply(table["TimeStamp"].combine_chunks(), 1_000_000).cast(pa.timestamp("us"))
    parts = []
    for column in table.column_names:
        if column in METRIC_KEYS:
            continue
        values = table[column].combine_chunks().cast(pa.float64())
        sampled = pc.and_(pc.is_valid(values), pc.invert(pc.is_nan(values)))  # NaN: no sample
        parts.append(
            pa.table(
                {
                    "ts": stamps.filter(sampled),
                    "name": pa.array([metric_name(column)] * pc.sum(sampled).as_py(), pa.string()),
                    "service": services.filter(sampled),
                    "value": values.filter(sampled),
                    "labels": labels.filter(sampled),
                }
            )
        )
    return pa.concat_tables(parts)


def _case(
    con: duckdb.DuckDBPyConnection,
    day: Day,
    index: int,
    fault: dict[str, Any],
    inner: dict[str, dict[str, str]],
) -> Case:
    inject_time = datetime.fromisoformat(fault["inject_time"]).replace(tzinfo=UTC)
    pod, fault_type = fault["inject_pod"], fault["inject_type"]
    service = service_of(pod)
    start, end = inject_time - WINDOW_BEFORE, inject_time + WINDOW_AFTER
    history = day.construct_end is not None and day.construct_end < _naive(inject_time)
    keep = (
        "(source like 'rca_data-%' and {ts} >= ? and {ts} < ?) "
        "or (source like 'construct_data-%' and ?)"
    )
    params = [_naive(start), _naive(end), history]
    tables = {
        "metrics": _arrow(
            con,
            "select ts, name, service, value, labels from metrics where ts >= ? and ts < ? "
            "order by ts, service, name",
            params[:2],
        ),
        "logs": _arrow(
            con,
            "select ts, service, level, message, trace_id, span_id, attributes from logs "
            f"where {keep.format(ts='ts')} order by ts",
            params,
        ),
        "spans": _arrow(
            con,
            "select trace_id, span_id, parent_span_id, service, name, start_ts, duration_ms, "
            f"status, attributes from spans where {keep.format(ts='start_ts')} "
            "order by start_ts",
            params,
        ),
    }
    sources = [
        r[0]
        for r in con.execute(
            f"select source from logs where {keep.format(ts='ts')} union "
            f"select source from spans where {keep.format(ts='start_ts')} order by 1",
            params * 2,
        ).fetchall()
    ]
    alert = Alert(
        name="FrontendDegraded",
        labels={"service": day.front_service, "severity": "warning", "system": day.system},
        annotations={
            "summary": f"{SYSTEMS.get(day.system, day.system)} requests through "
            f"{day.front_service} are degraded",
        },
        starts_at=inject_time,
    )
    lacking = [
        f"no {table} after the injection in the source (its files for those minutes are absent)"
        for table in ("spans", "logs")
        if not _any_within(tables[table], "start_ts" if table == "spans" else "ts",
                           inject_time, end)
    ]
    metadata = {
        "dataset": f"nezha-{day.system}",
        "scenario": f"{day.system}-{day.date}",
        "fault_index": index,
        "fault_type": fault_type,
        "inject_time": inject_time.isoformat(),
        "inject_pod": pod,
        "inject_service": service,
        "inner_root_cause": inner.get(service, {}).get(fault_type),
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "fault_free_history_included": history,
        "sources": {
            "fault_list": f"rca_data-{day.date}/{day.date}-fault_list.json",
            "metrics": f"rca_data-{day.date}/metric/",
            "logs_and_traces": sources,
        },
        "notes": [
            "alert starts_at is the data set's inject_time (UTC; inject_timestamp is ~8 h off)",
            f"alert service {day.front_service} is the root of most traces (the entry point)",
            "span status is 'error' when the span wrote an ERROR log line (the traces carry "
            "no status)",
            "front_service.csv rows are service 'frontend' (no pod label)",
            *day.notes,
            *lacking,
        ],
    }
    return Case(
        name=f"nezha-{day.date}-{index:02d}-{service}-{fault_type}",
        alert=alert,
        tables=tables,
        causes=[Cause("service", service, CATEGORIES.get(fault_type))],
        metadata=metadata,
    )


SYSTEMS = {"trainticket": "TrainTicket", "onlineboutique": "OnlineBoutique"}


def _any_within(table: pa.Table, column: str, start: datetime, end: datetime) -> bool:
    """Whether the table holds a row from start (inclusive) to end."""
    if table.num_rows == 0:
        return False
    times = table[column]
    inside = pc.and_(pc.greater_equal(times, pa.scalar(_naive(start), times.type)),
                     pc.less(times, pa.scalar(_naive(end), times.type)))
    return bool(pc.any(inside).as_py())


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def _arrow(con: duckdb.DuckDBPyConnection, query: str, params: list[Any]) -> pa.Table:
    """A query's rows as Arrow, under DuckDB 1.x and 2.x method names alike."""
    result = con.execute(query, params)
    reader = getattr(result, "to_arrow_reader", None) or result.fetch_record_batch
    return reader().read_all()
