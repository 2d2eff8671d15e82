"""Running one investigation: plan, run on a runtime, rank, narrate, store."""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from casebook.executor.alert_bodies import LATEST, MIN_WINDOW_MINUTES, window_sides
from casebook.executor.attribution import attribute_changes
from casebook.executor.errors import UserError
from casebook.executor.observability import trace_investigation
from casebook.executor.planner import Limits, Plan
from casebook.executor.ranking import rank_causes
from casebook.executor.record import InvestigationRecord, finding_maker, invocation_records
from casebook.executor.runtime.contract import RunContext, Runtime
from casebook.executor.runtime.heap import collection_paused
from casebook.executor.shipped import found, record_fields
from casebook.executor.verdict import failure_of, skipped_note
from casebook.sdk.invocation import Outcome, Status
from casebook.sdk.models import Alert, TimeWindow, utc
from casebook.sdk.registry import Registry
from casebook.sdk.telemetry import TelemetrySource

DEFAULT_LOOKBACK = timedelta(minutes=60)
DEFAULT_LOOKAHEAD = timedelta(minutes=15)

Progress = Callable[[int, int, Outcome], None]


def new_investigation_id(moment: datetime | None = None) -> str:
    moment = moment or datetime.now(UTC)
    return f"inv-{moment:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def window_for(alert: Alert, lookback: timedelta = DEFAULT_LOOKBACK,
               lookahead: timedelta = DEFAULT_LOOKAHEAD) -> TimeWindow:
    """The investigation window: before the alert for the onset, a little after for spread.

    An alert may set its own with the annotations `casebook_lookback_minutes` and
    `casebook_lookahead_minutes`.
    """
    try:
        back, ahead = window_sides(alert.annotations)
    except ValueError as exc:  # intake refuses these; an alert built in code may still hold one
        raise UserError(f"alert {alert.name}: {exc}") from None
    lookback = back if back is not None else lookback
    lookahead = ahead if ahead is not None else lookahead
    moment = utc(alert.starts_at)
    # An alert at the very end of year 9999 keeps a window that ends there, a minute long.
    end = moment + lookahead if LATEST - moment > lookahead else LATEST
    start = min(moment - lookback, end - timedelta(minutes=MIN_WINDOW_MINUTES))
    return TimeWindow(start=start, end=end)


@collection_paused()
def run_investigation(
    alert: Alert,
    *,
    registry: Registry,
    source: TelemetrySource,
    runtime: Runtime,
    window: TimeWindow | None = None,
    limits: Limits | None = None,
    store_path: str | None = None,
    packs: list[str] | None = None,
    investigation_id: str | None = None,
    progress: Progress | None = None,
) -> InvestigationRecord:
    """Run every applicable analyzer for the alert and rank what they found (no narration)."""
    limits = limits or Limits()
    window = window or window_for(alert)
    record = InvestigationRecord(
        id=investigation_id or new_investigation_id(), alert=alert, window=window,
        runtime=runtime.name, packs=list(packs or []),
    )
    plan = Plan(registry, alert, window, source.open(window), limits)
    context = RunContext(record.id, alert, window, registry, source, store_path, list(packs or []))
    deadline = time.monotonic() + limits.deadline_s
    runtime.start(context)
    trace = trace_investigation(record, runtime)  # None unless OpenTelemetry export is on
    try:
        ready = plan.start()
        runtime.submit(ready)
        if trace is not None:
            trace.submitted(ready)
        finished = sum(1 for n in plan.nodes.values() if n.state == "done")
        while not plan.done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            outcomes = runtime.poll(min(remaining, 0.5))
            if not outcomes and runtime.pending() == 0 and not plan.done:
                break  # nothing running and nothing ready: a dependency that can never settle
            for outcome in outcomes:
                ready = plan.complete(outcome)
                runtime.submit(ready)
                if trace is not None:
                    trace.finished(outcome, plan.nodes.get(outcome.key))
                    trace.submitted(ready)
                finished += 1
                if progress is not None:
                    progress(finished, len(plan.nodes), outcome)
    finally:
        runtime.stop()
        plan.telemetry.close()  # its source may be kept for the next investigation

    for node in plan.unfinished():
        reason = (f"not finished: the investigation deadline of {limits.deadline_s:g} s was "
                  "reached" if time.monotonic() >= deadline else
                  "not run: an analyzer it reads never settled")
        plan.outcomes[node.key] = Outcome(node.key, node.spec.name, node.params,
                                          Status.TIMEOUT, error=reason)
        node.state = "done"
    record.notes.extend(plan.notes)
    if plan.dropped:
        record.notes.append(f"{plan.dropped} invocations were not run: the limit of "
                            f"{limits.max_invocations} per investigation was reached")
    timed_out = sum(1 for o in plan.outcomes.values()
                    if o.error and o.error.startswith("not finished"))
    if timed_out:
        record.notes.append(f"{timed_out} invocations did not finish before the deadline; "
                            "the causes below come from what did")
    _fill(record, plan)
    record.status = "partial" if timed_out or plan.dropped else "done"
    _judge(record)
    record.finished_at = datetime.now(UTC)
    if trace is not None:
        trace.close(record)
    return record


def _fill(record: InvestigationRecord, plan: Plan) -> None:
    """Make the record's invocations, findings and causes from the plan, once, at the end.

    The plan is used up: each invocation's node and outcome are let go as its record is made,
    so the driver's memory at the end holds about one of the two, not both.
    """
    nodes = plan.nodes
    order = sorted(plan.outcomes.values(),
                   key=lambda o: (nodes[o.key].wave if o.key in nodes else 0, o.analyzer, o.key))
    finding_ids: dict[str, str] = {}
    for outcome in order:
        if found(outcome):
            finding_ids[outcome.key] = f"F{len(finding_ids) + 1}"

    finding_record = finding_maker()
    for outcome in order:
        if not found(outcome):
            continue
        fields = record_fields(outcome)
        node = nodes[outcome.key]
        sources = [k for k in node.upstream_keys.values() if k]
        sources += [k for k in (node.parent, node.derived_from) if k]
        led_from = list(dict.fromkeys(finding_ids[k] for k in sources if k in finding_ids))
        explains: list[str] = []
        for name in fields.pop("explains"):
            linked = [finding_ids[k] for k in sources
                      if k in finding_ids and plan.outcomes[k].analyzer == name]
            everywhere = [finding_ids[k] for k in plan.by_analyzer.get(name, [])
                          if k in finding_ids]
            explains.extend(linked or everywhere)
        record.findings.append(finding_record(
            id=finding_ids[outcome.key], analyzer=outcome.analyzer, invocation=outcome.key,
            **fields, led_from=led_from, explains=list(dict.fromkeys(explains)),
            owner=_owner(plan, outcome.analyzer),
        ))
    pending = deque(order)
    order.clear()
    record.invocations.extend(invocation_records(_rows(pending, plan, record.created_at)))
    attribute_changes(record.findings)
    record.causes = rank_causes(record.findings)


def _judge(record: InvestigationRecord) -> None:
    """`failed` when every runnable invocation failed, with the reason first among the notes."""
    failure = failure_of(record.invocations)
    if failure is not None:
        record.status = "failed"
        record.notes.insert(0, f"The investigation failed: {failure}")
    elif (note := skipped_note(record.invocations)) is not None:
        record.notes.append(note)


def _rows(order: deque[Outcome], plan: Plan, created: datetime) -> Iterator[dict[str, object]]:
    """Each outcome as its record's fields, in order, letting go of it and its node."""
    while order:
        outcome = order.popleft()
        node = plan.nodes.pop(outcome.key, None)
        plan.outcomes.pop(outcome.key, None)
        yield {
            "key": outcome.key, "analyzer": outcome.analyzer,
            "params": _jsonable(outcome.params), "status": str(outcome.status),
            "duration_ms": float(round(outcome.duration_ms, 3)), "error": outcome.error,
            "depth": node.depth if node else 0, "parent": node.parent if node else None,
            "queries": outcome.queries, "rows_read": outcome.rows_read,
            "wave": node.wave if node else 0,
            "started_ms": float(round((outcome.started_at - created).total_seconds() * 1000, 3)),
        }


def _owner(plan: Plan, analyzer: str) -> str | None:
    spec = plan.registry.get(analyzer)
    return spec.owner if spec is not None else None


def _jsonable(params: dict[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in params.items():
        if hasattr(value, "model_dump"):
            out[key] = value.model_dump(mode="json")  # type: ignore[attr-defined]
        elif isinstance(value, (str, int, float, bool)) or value is None:
            out[key] = value
        else:
            out[key] = str(value)
    return out
