"""The @analyzer decorator: reads a function's signature once and attaches its spec."""

from __future__ import annotations

import contextvars
import inspect
import re
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, get_args, get_origin

from pydantic import BaseModel

from casebook.sdk.models import (
    Alert,
    Finding,
    TimeWindow,
    known_categories,
    unknown_category_message,
)
from casebook.sdk.telemetry import Telemetry

F = TypeVar("F", bound=Callable[..., Any])

SPEC_ATTRIBUTE = "__casebook_analyzer__"
DEFAULT_TIMEOUT_S = 30.0
INJECTED = {Alert: "alert", TimeWindow: "window", Telemetry: "telemetry"}
PLAIN_TYPES = (str, int, float, bool)
NAME_PATTERN = re.compile(r"^[a-z_][a-z0-9_]*$")
READ_PATTERN = re.compile(r"^([a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_.]*)?|"
                          r"(metrics|labels|attributes|annotation):[A-Za-z0-9_.*]+)$")


@dataclass(frozen=True)
class LabelMatcher:
    """One label condition: exact value or a fully matching regular expression."""

    label: str
    value: str | None = None
    pattern: re.Pattern[str] | None = None

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.label)
        if actual is None:
            return False
        if self.pattern is not None:
            return self.pattern.fullmatch(actual) is not None
        return actual == self.value

    def describe(self) -> str:
        if self.pattern is not None:
            return f"{self.label}=~{self.pattern.pattern!r}"
        return f"{self.label}={self.value!r}"


@dataclass(frozen=True)
class FromFinding:
    """Fan-out over the values of a list field of an upstream analyzer's finding."""

    analyzer: str
    field: str


def from_finding(analyzer: str, field: str) -> FromFinding:
    """Fan out over `field` (a list) of the finding that `analyzer` returned."""
    return FromFinding(analyzer, field)


@dataclass(frozen=True)
class DataNeed:
    """One declared read: a table, a column, a metric name (or pattern), or a label, attribute
    or annotation key.

    Written as `"logs"`, `"logs.message"`, `"metrics:http_requests_total"`,
    `"metrics:*_disk_usage_ratio"`, `"labels:pod"`, `"attributes:account"`.
    """

    table: str
    name: str | None = None
    column: str | None = None

    # Keys inside maps and tables an alert names: documented, not checked before a run.
    UNCHECKED: ClassVar[tuple[str, ...]] = ("labels", "attributes", "annotation")

    @classmethod
    def parse(cls, text: str) -> DataNeed:
        kind, colon, name = text.partition(":")
        if colon:
            return cls(kind, name or None)
        table, _, column = text.partition(".")
        return cls(table, None, column or None)

    @property
    def checkable(self) -> bool:
        return self.table not in self.UNCHECKED

    def __str__(self) -> str:
        if self.name:
            return f"{self.table}:{self.name}"
        return f"{self.table}.{self.column}" if self.column else self.table

    def describe(self) -> str:
        if self.name and self.table == "metrics":
            return f"metric {self.name!r}"
        if self.name:
            return f"{self.table} key {self.name!r}"
        if self.column:
            return f"column {self.table}.{self.column}"
        return f"table {self.table!r}"


@dataclass(frozen=True)
class Upstream:
    analyzer: str
    finding_type: type[Finding]
    optional: bool


@dataclass(frozen=True)
class Param:
    name: str
    type: Any
    required: bool
    default: Any = None


@dataclass(frozen=True)
class FanOutSource:
    param: str
    source: Callable[..., Iterable[Any]] | FromFinding
    injections: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AnalyzerSpec:
    """Everything the executor needs to know about an analyzer, built once at decoration."""

    name: str
    func: Callable[..., Any]
    module: str
    description: str
    matchers: tuple[LabelMatcher, ...]
    predicate: Callable[[Alert], bool] | None
    injections: dict[str, str]
    upstreams: dict[str, Upstream]
    params: dict[str, Param]
    fan_out: dict[str, FanOutSource]
    returns: type[Finding]
    timeout_s: float
    category: str
    tags: tuple[str, ...]
    location: str
    owner: str | None = None
    reads: tuple[str, ...] = ()  # as declared; `needs` parses them
    memory_mb: int | None = None  # the invocation's memory ceiling; None: the worker's ceiling

    @property
    def needs(self) -> tuple[DataNeed, ...]:
        """The declared reads, parsed."""
        return tuple(DataNeed.parse(item) for item in self.reads)

    @property
    def qualified_name(self) -> str:
        return f"{self.module}.{self.func.__name__}"

    @property
    def depends_on(self) -> set[str]:
        names = {u.analyzer for u in self.upstreams.values()}
        names.update(s.source.analyzer for s in self.fan_out.values()
                     if isinstance(s.source, FromFinding))
        return names

    def applies_to(self, alert: Alert) -> bool:
        """Whether the declarative matchers (and the predicate, if any) accept the alert."""
        if not all(m.matches(alert.labels) for m in self.matchers):
            return False
        return self.predicate is None or bool(self.predicate(alert))

    def describe_match(self) -> str:
        parts = [m.describe() for m in self.matchers]
        if self.predicate is not None:
            parts.append(f"when {getattr(self.predicate, '__name__', 'predicate')}()")
        return ", ".join(parts) or "every alert"


@dataclass
class Problem:
    where: str
    what: str
    fix: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}\n    fix: {self.fix}"


class AnalyzerDefinitionError(Exception):
    """One or more analyzers are defined wrongly; every problem is listed."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        count = len(problems)
        header = f"{count} problem{'s' if count != 1 else ''} in analyzer definitions:"
        super().__init__("\n".join([header, *(f"  - {p}" for p in problems)]))


# While a registry imports a pack it collects problems instead of failing on the first one.
_collector: contextvars.ContextVar[list[Problem] | None] = contextvars.ContextVar(
    "casebook_problem_collector", default=None
)


def collecting_problems() -> _Collecting:
    return _Collecting()


class _Collecting:
    def __enter__(self) -> list[Problem]:
        self.problems: list[Problem] = []
        self.token = _collector.set(self.problems)
        return self.problems

    def __exit__(self, *exc: object) -> None:
        _collector.reset(self.token)


def analyzer(
    func: F | None = None,
    *,
    name: str | None = None,
    match: dict[str, str | re.Pattern[str]] | None = None,
    when: Callable[[Alert], bool] | None = None,
    fan_out: dict[str, Callable[..., Iterable[Any]] | FromFinding] | None = None,
    timeout_s: float | None = None,
    category: str = "other",
    tags: Iterable[str] = (),
    owner: str | None = None,
    reads: Iterable[str] = (),
    memory_mb: int | None = None,
) -> Any:
    """Declare an analyzer. The function is returned unchanged, with its spec attached.

    `owner` names the team to ask (default: the pack's owner); `reads` declares the data it
    needs (`"logs"`, `"metrics:http_requests_total"`), so an invocation without that data is
    skipped with the reason and coverage can say what is missing.

    >>> @analyzer(match={"alertname": "HighErrorRate"}, reads=["logs"])
    ... def error_spike(telemetry: Telemetry, service: str) -> ErrorSpike | None: ...

    `reads` names the telemetry the analyzer needs, as `table`, `table.column`,
    `metrics:<name pattern>`, `labels:<key>`, `attributes:<key>` or `annotation:<key>` (a table
    the alert names); docs/telemetry.md lists them.
    """

    def decorate(fn: F) -> F:
        spec, problems = _build_spec(fn, name, match, when, fan_out, timeout_s, category, tags,
                                     owner, reads, memory_mb)
        if problems:
            collector = _collector.get()
            if collector is None:
                raise AnalyzerDefinitionError(problems)
            collector.extend(problems)
            return fn
        setattr(fn, SPEC_ATTRIBUTE, spec)
        return fn

    if func is not None:
        return decorate(func)
    return decorate


def spec_of(fn: Any) -> AnalyzerSpec | None:
    """The spec attached by @analyzer, or None for any other object."""
    spec = getattr(fn, SPEC_ATTRIBUTE, None)
    return spec if isinstance(spec, AnalyzerSpec) else None


def _location(fn: Callable[..., Any]) -> str:
    code = getattr(fn, "__code__", None)
    if code is None:
        return getattr(fn, "__module__", "?")
    return f"{code.co_filename}:{code.co_firstlineno}"


def _finding_type(annotation: Any) -> tuple[type[Finding] | None, bool]:
    """(Finding subclass, optional) when the annotation is one, else (None, False)."""
    optional = False
    if get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        optional = len(members) < len(get_args(annotation))
        if len(members) != 1:
            return None, False
        annotation = members[0]
    if inspect.isclass(annotation) and issubclass(annotation, Finding):
        return annotation, optional
    return None, False


def _build_spec(
    fn: Callable[..., Any],
    name: str | None,
    match: dict[str, str | re.Pattern[str]] | None,
    when: Callable[[Alert], bool] | None,
    fan_out: dict[str, Callable[..., Iterable[Any]] | FromFinding] | None,
    timeout_s: float | None,
    category: str,
    tags: Iterable[str],
    owner: str | None = None,
    reads: Iterable[str] = (),
    memory_mb: int | None = None,
) -> tuple[AnalyzerSpec | None, list[Problem]]:
    problems: list[Problem] = []
    qualified = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
    where = f"analyzer {qualified} ({_location(fn)})"

    def problem(what: str, fix: str) -> None:
        problems.append(Problem(where, what, fix))

    if not inspect.isfunction(fn):
        problem(f"@analyzer was applied to {type(fn).__name__}, not a function",
                "decorate a plain `def` function")
        return None, problems
    if inspect.iscoroutinefunction(fn) or inspect.isgeneratorfunction(fn):
        problem("analyzers must be plain functions, not async functions or generators",
                "use `def` and `return` the finding")
    analyzer_name = name or fn.__name__
    if not NAME_PATTERN.match(analyzer_name):
        problem(f"name {analyzer_name!r} is not a lower_snake_case identifier",
                "name analyzers for what they find, e.g. `cache_collapse`")
    hints_ok = True
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:  # NameError for an annotation that does not resolve
        problem(f"its annotations cannot be resolved ({exc})",
                "import every type used in the signature at module level")
        hints, hints_ok = {}, False

    signature = inspect.signature(fn)
    injections: dict[str, str] = {}
    upstreams: dict[str, Upstream] = {}
    params: dict[str, Param] = {}
    for parameter in signature.parameters.values():
        pname = parameter.name
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            problem(f"parameter *{pname} / **{pname} is not supported",
                    "declare each input as its own typed parameter")
            continue
        if pname not in hints:
            if hints_ok:
                problem(
                    f"parameter '{pname}' has no type annotation",
                    f"annotate it: `{pname}: Telemetry` (or Alert, TimeWindow, str, a Finding "
                    "subclass named after its analyzer, ...)",
                )
            continue
        annotation = hints[pname]
        if annotation in INJECTED:
            injections[pname] = INJECTED[annotation]
            continue
        finding_type, optional = _finding_type(annotation)
        if finding_type is not None:
            upstreams[pname] = Upstream(pname, finding_type, optional)
            continue
        plain = annotation
        if get_origin(annotation) in (typing.Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            plain = members[0] if len(members) == 1 else annotation
        ok = plain in PLAIN_TYPES or (inspect.isclass(plain) and issubclass(plain, BaseModel))
        if not ok:
            problem(
                f"parameter '{pname}' has type {getattr(annotation, '__name__', annotation)!s}, "
                "which casebook cannot fill",
                "use Alert, TimeWindow, Telemetry, a Finding subclass (chaining), str/int/float/"
                "bool, or a pydantic model of parameters",
            )
            continue
        has_default = parameter.default is not inspect.Parameter.empty
        params[pname] = Param(pname, plain, not has_default,
                              parameter.default if has_default else None)

    returns = hints.get("return", inspect.Signature.empty)
    finding_type, _ = _finding_type(returns)
    if "return" not in hints and hints_ok:
        problem("it has no return annotation",
                "declare what it returns, e.g. `-> MyFinding | None` (MyFinding subclasses "
                "casebook.sdk.Finding)")
    elif "return" in hints and finding_type is None:
        problem(f"it returns {returns!r}, not a Finding subclass",
                "return a subclass of casebook.sdk.Finding, or None when nothing is notable")

    matchers: list[LabelMatcher] = []
    for label, value in (match or {}).items():
        if isinstance(value, re.Pattern):
            matchers.append(LabelMatcher(label, pattern=value))
        elif isinstance(value, str):
            matchers.append(LabelMatcher(label, value=value))
        else:
            problem(f"match[{label!r}] is {type(value).__name__}, not a string or regex",
                    f"use match={{{label!r}: 'value'}} or {{{label!r}: re.compile('pat.*')}}")
    if when is not None and not callable(when):
        problem("when= is not callable", "pass a function taking the Alert and returning bool")

    sources: dict[str, FanOutSource] = {}
    for pname, source in (fan_out or {}).items():
        if pname not in params:
            known = ", ".join(sorted(params)) or "none"
            problem(f"fan_out names '{pname}', which is not a plain parameter (plain: {known})",
                    f"add a parameter `{pname}: str` or fan out over an existing one")
            continue
        if isinstance(source, FromFinding):
            sources[pname] = FanOutSource(pname, source)
        elif callable(source):
            source_injections, source_problems = _source_injections(source)
            for text in source_problems:
                problem(f"fan_out[{pname!r}] source {text}",
                        "give the source parameters typed Alert, TimeWindow or Telemetry")
            sources[pname] = FanOutSource(pname, source, source_injections)
        else:
            problem(f"fan_out[{pname!r}] is {type(source).__name__}, not a function or "
                    "from_finding(...)",
                    "pass a function returning the values, or from_finding('analyzer', 'field')")

    if timeout_s is not None and (not isinstance(timeout_s, (int, float)) or timeout_s <= 0):
        problem(f"timeout_s={timeout_s!r} is not a positive number of seconds",
                "use e.g. timeout_s=10")
    if memory_mb is not None and (
        isinstance(memory_mb, bool) or not isinstance(memory_mb, int) or memory_mb <= 0
    ):
        problem(f"memory_mb={memory_mb!r} is not a positive whole number of megabytes",
                "use e.g. memory_mb=512, or leave it out for the worker's ceiling")

    if category not in known_categories():
        problem(unknown_category_message(category),
                f"use one of the categories above, or add it to the pack: "
                f"`PACK = Pack(categories=[{category!r}])`")
    if owner is not None and (not isinstance(owner, str) or not owner.strip()):
        problem(f"owner={owner!r} is not a team name", "use e.g. owner='payments-sre'")

    declared = [reads] if isinstance(reads, str) else list(reads)
    for item in declared:
        if not isinstance(item, str) or not READ_PATTERN.match(item):
            problem(f"reads entry {item!r} is not a table or a `kind:name` declaration",
                    "use e.g. reads=['events', 'logs.message', 'metrics:http_requests_total', "
                    "'labels:pod', 'attributes:account']")
    if problems:
        return None, problems
    doc = inspect.getdoc(fn) or ""
    spec = AnalyzerSpec(
        name=analyzer_name,
        func=fn,
        module=fn.__module__,
        description=doc,
        matchers=tuple(matchers),
        predicate=when,
        injections=injections,
        upstreams=upstreams,
        params=params,
        fan_out=sources,
        returns=finding_type or Finding,
        timeout_s=float(timeout_s or DEFAULT_TIMEOUT_S),
        category=category,
        tags=tuple(tags),
        location=_location(fn),
        owner=owner,
        reads=tuple(declared),
        memory_mb=memory_mb,
    )
    return spec, problems


def _source_injections(source: Callable[..., Any]) -> tuple[dict[str, str], list[str]]:
    try:
        hints = typing.get_type_hints(source)
    except Exception as exc:
        return {}, [f"has annotations that cannot be resolved ({exc})"]
    injections: dict[str, str] = {}
    problems: list[str] = []
    for pname in inspect.signature(source).parameters:
        annotation = hints.get(pname)
        if annotation in INJECTED:
            injections[pname] = INJECTED[annotation]
        else:
            problems.append(f"parameter '{pname}' is not typed Alert, TimeWindow or Telemetry")
    return injections, problems
