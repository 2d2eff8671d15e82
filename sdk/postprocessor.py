"""Post-processors: what a team wants done once an investigation is ranked, written like an
analyzer. One receives a read-only view of the investigation and returns actions (notify a sink,
annotate the investigation, open a ticket) that casebook performs through the configured sinks.
Nothing a post-processor returns can change production: the actions are messages.

    @postprocessor(cause={"category": "cache"}, timeout_s=5)
    def cache_owners(investigation: InvestigationView) -> Notify | None:
        top = investigation.top_cause
        return Notify(sink="cache-team", text=f"{top.entity.name} again: {investigation.report_url}")
"""

from __future__ import annotations

import inspect
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from casebook.sdk.analyzer import AnalyzerDefinitionError, Problem, _collector
from casebook.sdk.models import Alert, Entity

POSTPROCESSOR_ATTRIBUTE = "__casebook_postprocessor__"
DEFAULT_TIMEOUT_S = 10.0
CAUSE_KEYS = ("category", "entity", "kind", "name")
FINDING_KEYS = ("analyzer", "category", "severity", "entity", "kind", "name")

F = TypeVar("F", bound=Callable[..., Any])


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class CauseView(_Frozen):
    rank: int
    entity: Entity
    category: str
    score: float
    finding_ids: tuple[str, ...] = ()
    title: str = ""


class FindingView(_Frozen):
    id: str
    analyzer: str
    title: str
    summary: str
    severity: str
    confidence: float
    category: str
    entities: tuple[Entity, ...] = ()
    facts: Mapping[str, Any] = Field(default_factory=dict)


class InvestigationView(_Frozen):
    """A ranked investigation, read-only: what a post-processor decides on."""

    id: str
    alert: Alert
    status: str = "done"
    causes: tuple[CauseView, ...] = ()
    findings: tuple[FindingView, ...] = ()
    headline: str = ""
    narrative: str = ""
    report_url: str = ""

    @property
    def top_cause(self) -> CauseView | None:
        return self.causes[0] if self.causes else None

    def findings_of(self, analyzer: str) -> tuple[FindingView, ...]:
        return tuple(f for f in self.findings if f.analyzer == analyzer)


class Notify(_Frozen):
    """Send `text` to the sink named `sink` (a name under `sinks:` in casebook.yaml)."""

    kind: Literal["notify"] = "notify"
    sink: str
    text: str


class Annotate(_Frozen):
    """Add a note to the investigation (shown on its report)."""

    kind: Literal["annotate"] = "annotate"
    text: str


class OpenTicket(_Frozen):
    """Ask the sink named `sink` (a ticketing webhook, a Markdown folder) to open a ticket."""

    kind: Literal["ticket"] = "ticket"
    sink: str
    title: str
    body: str = ""


Action = Notify | Annotate | OpenTicket
ACTION_TYPES = (Notify, Annotate, OpenTicket)


@dataclass(frozen=True)
class PostprocessorSpec:
    name: str
    func: Callable[..., Any]
    module: str
    match: Mapping[str, str] = field(default_factory=dict)
    cause: Mapping[str, str] = field(default_factory=dict)
    finding: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = DEFAULT_TIMEOUT_S

    def applies(self, view: InvestigationView) -> bool:
        """Alert labels equal `match`, some cause has `cause`, some finding has `finding`."""
        labels = view.alert.labels
        if any(labels.get(k) != v for k, v in self.match.items()):
            return False
        if self.cause and not any(_has(c.category, [c.entity], self.cause, {})
                                  for c in view.causes):
            return False
        return not self.finding or any(
            _has(f.category, list(f.entities), self.finding,
                 {"analyzer": f.analyzer, "severity": f.severity})
            for f in view.findings)


def _has(category: str, entities: list[Entity], wanted: Mapping[str, str],
         extra: Mapping[str, str]) -> bool:
    for key, value in wanted.items():
        if key == "category" and category != value:
            return False
        if key in extra and extra[key] != value:
            return False
        if key == "entity" and not any(value in (str(e), e.name) for e in entities):
            return False
        if key == "kind" and not any(e.kind == value for e in entities):
            return False
        if key == "name" and not any(e.name == value for e in entities):
            return False
    return True


@dataclass(frozen=True)
class PostprocessorOutcome:
    """What one post-processor did: applied (with actions), skipped, error or timeout."""

    name: str
    status: Literal["applied", "skipped", "error", "timeout"]
    actions: tuple[Notify | Annotate | OpenTicket, ...] = ()
    error: str = ""


def postprocessor(
    func: F | None = None,
    *,
    name: str | None = None,
    match: Mapping[str, str] | None = None,
    cause: Mapping[str, str] | None = None,
    finding: Mapping[str, str] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Any:
    """Declare a post-processor; the function is returned unchanged, with its spec attached.

    `match` is on alert labels, `cause` on any ranked cause (category, entity as "kind:name" or
    name, kind, name), `finding` on any finding (analyzer, category, severity, entity, kind, name).
    """

    def decorate(fn: F) -> F:
        problems = _problems(fn, match, cause, finding, timeout_s)
        if problems:
            collector = _collector.get()
            if collector is None:
                raise AnalyzerDefinitionError(problems)
            collector.extend(problems)
            return fn
        spec = PostprocessorSpec(
            name=name or fn.__name__, func=fn, module=fn.__module__, match=dict(match or {}),
            cause=dict(cause or {}), finding=dict(finding or {}), timeout_s=timeout_s,
        )
        setattr(fn, POSTPROCESSOR_ATTRIBUTE, spec)
        return fn

    return decorate(func) if func is not None else decorate


def postprocessor_spec(fn: Any) -> PostprocessorSpec | None:
    spec = getattr(fn, POSTPROCESSOR_ATTRIBUTE, None)
    return spec if isinstance(spec, PostprocessorSpec) else None


def _problems(fn: Callable[..., Any], match: Any, cause: Any, finding: Any,
              timeout_s: float) -> list[Problem]:
    where = f"post-processor {getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', fn)}"
    problems = []
    params = list(inspect.signature(fn).parameters.values())
    if len(params) != 1:
        problems.append(Problem(where, f"it takes {len(params)} parameters",
                                "take exactly one: `investigation: InvestigationView`"))
    if not timeout_s or timeout_s <= 0:
        problems.append(Problem(where, f"timeout_s={timeout_s!r}", "give a positive number of "
                                "seconds, e.g. timeout_s=5"))
    for label, given, keys in (("cause", cause, CAUSE_KEYS), ("finding", finding, FINDING_KEYS)):
        unknown = sorted(set(given or {}) - set(keys))
        if unknown:
            problems.append(Problem(where, f"{label}= has unknown key(s) {', '.join(unknown)}",
                                    f"use {', '.join(keys)}"))
    for key, value in (match or {}).items():
        if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(key)):
            problems.append(Problem(where, f"match {key!r}: {value!r}",
                                    "give label names and exact string values"))
    return problems


def run_postprocessor(spec: PostprocessorSpec, view: InvestigationView) -> PostprocessorOutcome:
    """Run one post-processor on an investigation, within its timeout; never raises."""
    if not spec.applies(view):
        return PostprocessorOutcome(spec.name, "skipped")
    box: dict[str, Any] = {}

    def call() -> None:
        try:
            box["value"] = spec.func(view)
        except Exception as exc:  # the outcome carries it; the investigation goes on
            box["error"] = f"{type(exc).__name__}: {exc}"

    # A thread the caller stops waiting for: Python cannot kill it, but a hung post-processor
    # no longer holds anything up.
    worker = threading.Thread(target=call, name=f"postprocessor-{spec.name}", daemon=True)
    worker.start()
    worker.join(spec.timeout_s)
    if worker.is_alive():
        return PostprocessorOutcome(spec.name, "timeout",
                                    error=f"did not return within {spec.timeout_s:g} s")
    if "error" in box:
        return PostprocessorOutcome(spec.name, "error", error=box["error"])
    value = box.get("value")
    items = [] if value is None else list(value) if isinstance(value, list | tuple) else [value]
    wrong = [type(v).__name__ for v in items if not isinstance(v, ACTION_TYPES)]
    if wrong:
        return PostprocessorOutcome(
            spec.name, "error", error=f"returned {', '.join(wrong)}; return Notify, Annotate, "
            "OpenTicket, a list of them, or None")
    return PostprocessorOutcome(spec.name, "applied", tuple(items))
