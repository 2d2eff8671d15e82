"""The one function that runs an invocation, whoever calls it (tests, local or Ray runtime)."""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ValidationError

from casebook.sdk.analyzer import AnalyzerSpec, Param
from casebook.sdk.models import Alert, Finding, TimeWindow
from casebook.sdk.telemetry import Telemetry
from casebook.sdk.watchdog import WATCHDOG


class Status(StrEnum):
    FOUND = "found"
    NOTHING = "nothing"
    SKIPPED = "skipped"
    ERROR = "error"
    TIMEOUT = "timeout"
    CRASHED = "crashed"
    OOM = "oom"  # went past its memory ceiling; the error gives the figure reached


# Skip reasons that begin with this are counted by coverage as "could not run: data missing".
MISSING_DATA = "missing data: "


# One encoder for every key: `json.dumps` with options builds a new encoder on each call.
_KEY_ENCODER = json.JSONEncoder(sort_keys=True, default=str, separators=(",", ":"))


def invocation_key(analyzer: str, params: dict[str, Any]) -> str:
    """The identity of an invocation: analyzer name plus canonical parameters."""
    if not params:
        return analyzer
    return analyzer + _KEY_ENCODER.encode(params)


@dataclass(slots=True)  # the executor holds one per invocation, 100,000 in a large investigation
class Outcome:
    """What one invocation produced."""

    key: str
    analyzer: str
    params: dict[str, Any]
    status: Status
    finding: Finding | None = None
    error: str | None = None
    duration_ms: float = 0.0
    queries: int = 0
    rows_read: int = 0
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class ParameterError(Exception):
    """No value could be found for a parameter."""


def coerce(param: Param, value: Any) -> Any:
    """A raw value (often a label string) as the parameter's declared type."""
    kind = param.type
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return value if isinstance(value, kind) else kind.model_validate(value)
    if kind is bool and isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    if kind in (str, int, float, bool) and not isinstance(value, kind):
        return kind(value)
    return value


def resolve_params(
    spec: AnalyzerSpec, alert: Alert, explicit: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Fill the plain parameters: explicit values, then alert labels by name, then defaults."""
    explicit = explicit or {}
    values: dict[str, Any] = {}
    for name, param in spec.params.items():
        if name in explicit:
            raw: Any = explicit[name]
        elif isinstance(param.type, type) and issubclass(param.type, BaseModel):
            raw = {**alert.labels, **explicit}
        elif name in alert.labels:
            raw = alert.labels[name]
        elif name == "service" and alert.service is not None:
            raw = alert.service
        elif not param.required:
            values[name] = param.default
            continue
        else:
            raise ParameterError(
                f"no value for parameter '{name}': the alert has no label '{name}' and nothing "
                "fanned out over it; add the label to the alert rule, give the parameter a "
                f"default, or declare fan_out={{'{name}': ...}}"
            )
        try:
            values[name] = coerce(param, raw)
        except (ValueError, TypeError, ValidationError) as exc:
            raise ParameterError(
                f"parameter '{name}' expects {getattr(param.type, '__name__', param.type)}, "
                f"got {raw!r}: {exc}"
            ) from exc
    return values


def run_invocation(
    spec: AnalyzerSpec,
    params: dict[str, Any],
    *,
    alert: Alert,
    window: TimeWindow,
    telemetry: Telemetry,
    upstream: dict[str, Finding | None] | None = None,
    timeout_s: float | None = None,
) -> Outcome:
    """Call the analyzer with its inputs and contain whatever it does."""
    key = invocation_key(spec.name, params)
    started = datetime.now(UTC)
    upstream = upstream or {}
    for name, ref in spec.upstreams.items():
        if upstream.get(name) is None and not ref.optional:
            return Outcome(key, spec.name, params, Status.SKIPPED,
                           error=f"upstream analyzer '{name}' found nothing", started_at=started)
    needs = spec.needs
    if needs and all(need.checkable for need in needs):
        # Skipped only when nothing it declares is there: analyzers often read one of several
        # sources (spans or logs), and one present source is enough to run.
        try:
            absent = telemetry.missing(needs)
        except Exception as exc:  # a store that cannot answer is the analyzer's own problem
            absent = [f"(could not check: {exc})"]
        if len(absent) == len(needs):
            return Outcome(key, spec.name, params, Status.SKIPPED, started_at=started,
                           error=f"{MISSING_DATA}{', '.join(absent)} (declared in reads=); "
                                 "send that telemetry, or fix the analyzer's reads=")
    kwargs: dict[str, Any] = dict(params)
    injected = {"alert": alert, "window": window, "telemetry": telemetry}
    for name, kind in spec.injections.items():
        kwargs[name] = injected[kind]
    for name in spec.upstreams:
        kwargs[name] = upstream.get(name)

    budget = spec.timeout_s if timeout_s is None else timeout_s
    queries_before, rows_before = telemetry.stats.queries, telemetry.stats.rows
    alarm = WATCHDOG.arm(budget, telemetry.interrupt)
    clock = time.perf_counter()
    try:
        result = spec.func(**kwargs)
        status, error = _judge(spec, result)
        finding = result if status is Status.FOUND else None
    except TimeoutError as exc:
        status, error, finding = Status.TIMEOUT, f"timed out after {budget:g} s: {exc}", None
    except MemoryError as exc:
        status, error, finding = Status.OOM, f"ran out of memory: {exc or type(exc).__name__}", None
    except Exception as exc:
        status, finding = Status.ERROR, None
        error = f"{type(exc).__name__}: {exc}\n{_short_traceback(exc)}"
    finally:
        WATCHDOG.disarm(alarm)
    elapsed_ms = (time.perf_counter() - clock) * 1000
    if status is Status.ERROR and elapsed_ms / 1000 >= budget and "Interrupt" in (error or ""):
        status = Status.TIMEOUT
    return Outcome(
        key, spec.name, params, status, finding, error, elapsed_ms,
        telemetry.stats.queries - queries_before, telemetry.stats.rows - rows_before, started,
    )


def _judge(spec: AnalyzerSpec, result: Any) -> tuple[Status, str | None]:
    if result is None:
        return Status.NOTHING, None
    if isinstance(result, spec.returns):
        return Status.FOUND, None
    return Status.ERROR, (
        f"returned {type(result).__name__}, expected {spec.returns.__name__} or None; "
        f"return {spec.returns.__name__}(...) when something is notable, None otherwise"
    )


def _short_traceback(exc: BaseException, frames: int = 6) -> str:
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return "".join(lines[-frames:]).rstrip()
