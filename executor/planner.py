"""Planning: alert -> applicable analyzers -> invocations (fan-out) -> ready tasks as deps settle.

The plan is runtime-agnostic: runtimes receive `Task`s and hand back `Outcome`s; the plan turns
each outcome into follow-ups and newly ready tasks, so chained analyzers start as soon as the
findings they read exist.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from casebook.executor.shipped import (
    ShippedOutcome,
    confidence_of,
    followups_of,
    found,
    model_of,
)
from casebook.sdk.analyzer import AnalyzerSpec, FromFinding
from casebook.sdk.invocation import Outcome, ParameterError, Status, invocation_key, resolve_params
from casebook.sdk.models import Alert, Finding, TimeWindow
from casebook.sdk.registry import Registry
from casebook.sdk.telemetry import Telemetry


@dataclass(frozen=True)
class Limits:
    """Bounds on an investigation."""

    max_depth: int = 3
    max_invocations: int = 50_000
    deadline_s: float = 600.0
    max_fan_out: int = 20_000


@dataclass
class Task:
    """One invocation to run, with everything a worker needs (picklable)."""

    key: str
    analyzer: str
    params: dict[str, Any]
    upstream: dict[str, Finding | None]
    timeout_s: float
    depth: int = 0
    wave: int = 0
    parent: str | None = None


@dataclass(slots=True)  # one per invocation: 100,000 of them in a large investigation
class Node:
    key: str
    spec: AnalyzerSpec
    params: dict[str, Any]
    depth: int
    wave: int
    parent: str | None = None
    derived_from: str | None = None  # the invocation whose finding this one fans out over
    state: str = "waiting"  # waiting, submitted, done
    upstream_keys: dict[str, str | None] = field(default_factory=dict)


@dataclass
class Plan:
    registry: Registry
    alert: Alert
    window: TimeWindow
    telemetry: Telemetry
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.outcomes: dict[str, Outcome] = {}
        self.by_analyzer: dict[str, list[str]] = {}
        self.active: set[str] = set()
        self.expanded: set[str] = set()
        self.notes: list[str] = []
        self.dropped = 0
        self._waves: dict[str, int] = {}
        # Kept alongside `nodes` so each completion costs O(ready), not O(all invocations).
        self._waiting: dict[str, Node] = {}
        self._open: set[str] = set()
        self._open_by: dict[str, int] = {}  # per analyzer, invocations not yet done
        self._depends: dict[str, tuple[str, ...]] = {}

    # -- building -------------------------------------------------------------------------

    def start(self) -> list[Task]:
        """Activate the applicable analyzers (and what they read); return the ready tasks."""
        for spec in self.registry.applicable(self.alert):
            self._activate(spec.name)
        self._expand_ready()
        return self._ready()

    def _activate(self, name: str) -> None:
        # Dependencies are not pulled in: an analyzer runs where its own matchers say, and a
        # dependent whose upstream did not apply receives None (or is skipped).
        if name in self.active or name not in self.registry:
            return
        self.active.add(name)
        self.by_analyzer.setdefault(name, [])

    def wave_of(self, name: str) -> int:
        if name not in self._waves:
            deps = [d for d in self.registry[name].depends_on if d in self.registry]
            self._waves[name] = 1 + max((self.wave_of(d) for d in deps), default=-1)
        return self._waves[name]

    def _expand_ready(self) -> None:
        progressed = True
        while progressed:
            progressed = False
            for name in sorted(self.active - self.expanded):
                spec = self.registry[name]
                sources = [s for s in spec.fan_out.values() if isinstance(s.source, FromFinding)]
                if any(not self._settled(s.source.analyzer) for s in sources):
                    continue
                self._expand(spec)
                self.expanded.add(name)
                progressed = True

    def _expand(self, spec: AnalyzerSpec) -> None:
        choices: list[list[tuple[Any, str | None]]] = []
        for param, source in spec.fan_out.items():
            try:
                choices.append(self._fan_out_values(param, source.source, source.injections))
            except Exception as exc:
                self._record_direct(spec, {}, Status.ERROR,
                                    f"fan-out source for '{param}' failed: "
                                    f"{type(exc).__name__}: {exc}")
                return
        if any(not values for values in choices):
            upstream = [s.source.analyzer for s in spec.fan_out.values()
                        if isinstance(s.source, FromFinding)]
            why = (f"nothing to fan out over: {', '.join(upstream)} did not apply or found "
                   "nothing" if upstream else "fan-out found no values to run over")
            self._record_direct(spec, {}, Status.SKIPPED, why)
            return
        combos = itertools.product(*choices) if choices else [()]
        names = list(spec.fan_out)
        for count, combo in enumerate(combos):
            if count >= self.limits.max_fan_out:
                self.notes.append(f"{spec.name}: fan-out cut at {self.limits.max_fan_out} "
                                  "invocations (Limits.max_fan_out)")
                break
            explicit = {names[i]: value for i, (value, _) in enumerate(combo)}
            derived = next((origin for _, origin in combo if origin), None)
            self._add_node(spec, explicit, depth=0, parent=None, derived_from=derived)

    def _fan_out_values(self, param: str, source: Any,
                        injections: dict[str, str]) -> list[tuple[Any, str | None]]:
        if isinstance(source, FromFinding):
            values: list[tuple[Any, str | None]] = []
            seen: set[str] = set()
            for key in self.by_analyzer.get(source.analyzer, []):
                outcome = self.outcomes.get(key)
                finding = model_of(outcome) if outcome is not None else None
                if finding is None:
                    continue
                for value in getattr(finding, source.field, None) or []:
                    marker = repr(value)
                    if marker not in seen:
                        seen.add(marker)
                        values.append((value, key))
            return values
        injected = {"alert": self.alert, "window": self.window, "telemetry": self.telemetry}
        produced = source(**{name: injected[kind] for name, kind in injections.items()})
        unique = list(dict.fromkeys(produced or []))
        return [(value, None) for value in unique]

    def _add_node(self, spec: AnalyzerSpec, explicit: dict[str, Any], *, depth: int,
                  parent: str | None, derived_from: str | None = None) -> None:
        try:
            params = resolve_params(spec, self.alert, explicit)
        except ParameterError as exc:
            self._record_direct(spec, explicit, Status.SKIPPED, str(exc))
            return
        key = invocation_key(spec.name, params)
        if key in self.nodes:
            return
        if len(self.nodes) >= self.limits.max_invocations:
            self.dropped += 1
            return
        wave = self.wave_of(spec.name) if parent is None else max(
            self.wave_of(spec.name), self.nodes[parent].wave + 1)
        node = Node(key, spec, params, depth, wave, parent, derived_from)
        self.nodes[key] = self._waiting[key] = node
        self._open.add(key)
        self._open_by[spec.name] = self._open_by.get(spec.name, 0) + 1
        self.by_analyzer.setdefault(spec.name, []).append(key)

    def _record_direct(self, spec: AnalyzerSpec, params: dict[str, Any], status: Status,
                       reason: str) -> None:
        key = invocation_key(spec.name, {k: str(v) for k, v in params.items()})
        if key in self.nodes:
            return
        self.nodes[key] = Node(key, spec, params, 0, self.wave_of(spec.name), state="done")
        self.by_analyzer.setdefault(spec.name, []).append(key)
        self.outcomes[key] = Outcome(key, spec.name, params, status, error=reason)

    # -- progress -------------------------------------------------------------------------

    def _settled(self, name: str) -> bool:
        if name not in self.active:
            return True
        if name not in self.expanded:
            return False
        return not self._open_by.get(name)

    def _depends_on(self, spec: AnalyzerSpec) -> tuple[str, ...]:
        depends = self._depends.get(spec.name)
        if depends is None:
            depends = self._depends[spec.name] = tuple(spec.depends_on)
        return depends

    def _ready(self) -> list[Task]:
        tasks = []
        for node in list(self._waiting.values()):
            if not all(self._settled(d) for d in self._depends_on(node.spec)):
                continue
            node.state = "submitted"
            del self._waiting[node.key]
            tasks.append(Task(node.key, node.spec.name, node.params, self._upstream_for(node),
                              node.spec.timeout_s, node.depth, node.wave, node.parent))
        return tasks

    def _upstream_for(self, node: Node) -> dict[str, Finding | None]:
        chosen: dict[str, Finding | None] = {}
        for pname, ref in node.spec.upstreams.items():
            candidates = [self.outcomes[k] for k in self.by_analyzer.get(ref.analyzer, [])
                          if k in self.outcomes and found(self.outcomes[k])]
            if node.derived_from and any(c.key == node.derived_from for c in candidates):
                candidates = [c for c in candidates if c.key == node.derived_from]
            agreeing = [c for c in candidates if _agrees(c.params, node.params)]
            pool = agreeing or candidates
            best = max(pool, key=confidence_of, default=None)
            chosen[pname] = model_of(best) if best else None
            node.upstream_keys[pname] = best.key if best else None
        return chosen

    def complete(self, outcome: Outcome) -> list[Task]:
        """Record an outcome; return the tasks it made ready (follow-ups, dependents)."""
        node = self.nodes.get(outcome.key)
        if node is None or node.state == "done":
            return []
        node.state = "done"
        self._open.discard(outcome.key)
        self._open_by[node.spec.name] -= 1
        self.outcomes[outcome.key] = outcome
        for analyzer, params in followups_of(outcome):
            self._follow(node, analyzer, params)
        if isinstance(outcome, ShippedOutcome) and outcome.shipped is not None:
            outcome.shipped.followups = ()  # followed; the model keeps them if anyone asks
        self._expand_ready()
        return self._ready()

    def _follow(self, node: Node, analyzer: str, params: dict[str, Any]) -> None:
        spec = self.registry.get(analyzer)
        if spec is None:
            known = ", ".join(s.name for s in self.registry)
            self.notes.append(f"{node.spec.name} asked for a follow-up by '{analyzer}', which "
                              f"does not exist (known analyzers: {known})")
            return
        if node.depth + 1 > self.limits.max_depth:
            self.notes.append(f"follow-up {analyzer} {params} from {node.spec.name} not run: "
                              f"depth limit {self.limits.max_depth} reached")
            return
        if analyzer not in self.active:
            self._activate(analyzer)
            self.expanded.add(analyzer)  # run only where asked, not over the alert too
        self._add_node(spec, dict(params), depth=node.depth + 1, parent=node.key)

    def unfinished(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.state != "done"]

    @property
    def done(self) -> bool:
        return self.active <= self.expanded and not self._open


def _agrees(upstream: dict[str, Any], downstream: dict[str, Any]) -> bool:
    shared = set(upstream) & set(downstream)
    return all(str(upstream[k]) == str(downstream[k]) for k in shared)
