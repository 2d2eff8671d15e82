"""Results as workers send them back: compact columns per batch, findings in the shape records need.

A batch of results travels as a few columns (statuses as bytes, numbers as arrays, errors and
findings only where there are some), not as one tuple of Python objects per invocation. A
finding travels as what the driver reads (its confidence, its follow-ups as plain pairs, the
fields of its record, computed in the worker) and as the pickled model, which the driver
unpickles only if something needs the model itself (an analyzer that reads it upstream, a
fan-out over one of its fields). Unpickling every finding's models was a seventh of the
driver's time at 100,000 invocations, and holding them most of its memory.

    columns = ResultColumns.of(outcomes)              # in the worker
    outcomes = columns.outcomes(tasks)                 # in the driver, one per task it answers
    followups_of(outcome), model_of(outcome)           # what the plan reads, either way
"""

from __future__ import annotations

import pickle
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from casebook.sdk.invocation import Outcome, Status
from casebook.sdk.models import Finding

STATUSES = tuple(Status)
_STATUS_INDEX = {status: index for index, status in enumerate(STATUSES)}
_FINDING_FIELDS = set(Finding.model_fields)


class ShippedFinding:
    """A finding as a worker sends it: what the plan and the record read, and the model pickled."""

    __slots__ = ("_model", "blob", "confidence", "fields", "followups")

    def __init__(self, blob: bytes, confidence: float,
                 followups: tuple[tuple[str, dict[str, Any]], ...], fields: dict[str, Any]):
        self.blob = blob
        self.confidence = confidence
        self.followups = followups
        self.fields = fields
        self._model: Finding | None = None

    @classmethod
    def of(cls, finding: Finding, keep_model: bool = True) -> ShippedFinding:
        """`keep_model=False` when no analyzer reads this one's findings: nothing will ask for
        the model, so it is not pickled (the largest part of a finding's cost in the worker)."""
        dumped = finding.model_dump(include={"entities", "evidence", "mitigations"})
        fields = {
            "title": finding.title, "summary": finding.summary,
            "severity": str(finding.severity), "confidence": finding.confidence,
            "category": finding.category, "entities": dumped["entities"],
            "evidence": dumped["evidence"], "mitigations": dumped["mitigations"],
            "onset": finding.onset, "facts": finding.facts(), "explains": list(finding.explains),
        }
        followups = tuple((f.analyzer, dict(f.params)) for f in finding.followups)
        blob = pickle.dumps(finding, protocol=5) if keep_model else b""
        return cls(blob, finding.confidence, followups, fields)

    def model(self) -> Finding:
        """The finding itself (unpickled on first use)."""
        if self._model is None:
            if not self.blob:
                raise LookupError(
                    f"the finding '{self.fields.get('title', '')}' was sent without its model: "
                    "no analyzer of the registry reads its analyzer (upstream or fan-out)"
                )
            self._model = pickle.loads(self.blob)
            self.blob = b""
        return self._model

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.blob, self.confidence, self.followups, self.fields)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.blob, self.confidence, self.followups, self.fields = state
        self._model = None


@dataclass(slots=True)
class ShippedOutcome(Outcome):
    """An outcome from a worker: `finding` stays None and `shipped` carries it."""

    shipped: ShippedFinding | None = None


@dataclass
class ResultColumns:
    """One batch's results, column by column; `len` is how many invocations it answers."""

    statuses: bytes
    durations: array
    queries: array
    rows: array
    started: array
    errors: dict[int, str]
    findings: dict[int, ShippedFinding]

    @classmethod
    def of(cls, outcomes: list[Outcome], read: set[str] | None = None) -> ResultColumns:
        """The outcomes as columns; `read` names the analyzers whose findings others read (their
        models travel too), None keeps every model."""
        return cls(
            bytes(_STATUS_INDEX[Status(o.status)] for o in outcomes),
            array("d", (o.duration_ms for o in outcomes)),
            array("q", (o.queries for o in outcomes)),
            array("q", (o.rows_read for o in outcomes)),
            array("d", (o.started_at.timestamp() for o in outcomes)),
            {i: o.error for i, o in enumerate(outcomes) if o.error is not None},
            {i: ShippedFinding.of(o.finding, read is None or o.analyzer in read)
             for i, o in enumerate(outcomes) if o.finding is not None},
        )

    @classmethod
    def failed(cls, count: int, status: Status, error: str, at: float) -> ResultColumns:
        """Every invocation of a batch ended the same way (the batch could not run)."""
        return cls(bytes([_STATUS_INDEX[status]]) * count, array("d", [0.0] * count),
                   array("q", [0] * count), array("q", [0] * count), array("d", [at] * count),
                   dict.fromkeys(range(count), error), {})

    def __len__(self) -> int:
        return len(self.statuses)

    def outcomes(self, tasks: list[Any]) -> Iterator[ShippedOutcome]:
        """An outcome per task (`key`, `analyzer`, `params`), in order, for the first len()."""
        errors, findings = self.errors, self.findings
        for index, task in enumerate(tasks[: len(self)]):
            yield ShippedOutcome(
                task.key, task.analyzer, task.params, STATUSES[self.statuses[index]], None,
                errors.get(index), self.durations[index], self.queries[index],
                self.rows[index], datetime.fromtimestamp(self.started[index], UTC),
                findings.get(index),
            )


def found(outcome: Outcome) -> bool:
    """Whether the invocation produced a finding."""
    if outcome.finding is not None:
        return True
    return isinstance(outcome, ShippedOutcome) and outcome.shipped is not None


def model_of(outcome: Outcome) -> Finding | None:
    """The finding as a model (unpickled here if it was shipped)."""
    if outcome.finding is not None:
        return outcome.finding
    if isinstance(outcome, ShippedOutcome) and outcome.shipped is not None:
        return outcome.shipped.model()
    return None


def confidence_of(outcome: Outcome) -> float:
    if isinstance(outcome, ShippedOutcome) and outcome.shipped is not None:
        return outcome.shipped.confidence
    return outcome.finding.confidence if outcome.finding is not None else 0.0


def followups_of(outcome: Outcome) -> list[tuple[str, dict[str, Any]]]:
    """The follow-ups the finding asks for, as (analyzer, params)."""
    if isinstance(outcome, ShippedOutcome) and outcome.shipped is not None:
        return list(outcome.shipped.followups)
    if outcome.finding is None:
        return []
    return [(f.analyzer, f.params) for f in outcome.finding.followups]


def record_fields(outcome: Outcome) -> dict[str, Any]:
    """The finding's part of its record: everything but ids, links and owner.

    Read once, as the investigation ends and its record is made: a shipped finding hands its
    fields over and lets go of its pickled model (nothing reads models after the plan ran), so
    the records are the driver's memory at the end of a large investigation, not copies.
    """
    if isinstance(outcome, ShippedOutcome) and outcome.shipped is not None:
        shipped = outcome.shipped
        fields, shipped.fields = shipped.fields, {}
        if shipped._model is None:
            shipped.blob = b""
        return fields
    finding = outcome.finding
    assert finding is not None
    return {
        "title": finding.title, "summary": finding.summary, "severity": str(finding.severity),
        "confidence": finding.confidence, "category": finding.category,
        "entities": list(finding.entities), "evidence": list(finding.evidence),
        "mitigations": list(finding.mitigations), "onset": finding.onset,
        "facts": finding.facts(), "explains": list(finding.explains),
    }
