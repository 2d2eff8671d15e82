"""The stored shape of an investigation: what reports, narration and the JSON output read."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from casebook.executor.redaction import redact_value, redactor
from casebook.sdk.invocation import _KEY_ENCODER
from casebook.sdk.models import Alert, Entity, Evidence, Mitigation, TimeWindow

# Passed as the validation context by `finding_maker`, which redacts before it validates; no
# one else holds this object, so no other caller can skip the step.
_ALREADY_REDACTED: dict[str, Any] = {}


class Redacted(BaseModel):
    """A record whose text passes the one redaction step as it is made (docs/narration.md).

    Findings, alerts, errors and narratives become records here, whoever makes them (the
    executor, the intake service, the results store when it reads), so nothing that leaves an
    analyzer reaches a report, the store or a model request with a secret in it.
    """

    @model_validator(mode="before")
    @classmethod
    def _redacted(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict) or info.context is _ALREADY_REDACTED:
            return data
        if all(name in cls.model_fields for name in data):
            # The names are the record's own fields: only the values can hold a secret.
            redact = redactor()
            return {name: redact(value) for name, value in data.items()}
        return redact_value(data)


class InvocationRecord(Redacted):
    key: str
    analyzer: str
    params: dict[str, Any] = Field(default_factory=dict)
    status: str
    duration_ms: float = 0.0
    error: str | None = None
    depth: int = 0
    parent: str | None = None
    queries: int = 0
    rows_read: int = 0
    wave: int = 0
    started_ms: float | None = Field(
        default=None, description="when it started, in ms after the investigation began"
    )


_OTHER_TEXT = ("analyzer", "status", "error")  # besides the key, the parent and the params
_FLAT = (str, int, float, bool, type(None))
_set = object.__setattr__


def invocation_records(rows: Iterable[dict[str, Any]]) -> list[InvocationRecord]:
    """Many invocation records at once, as an investigation ends.

    The same redaction step as `Redacted`, applied to the fields that hold text; the other
    fields are numbers the executor made. Not validated one by one: at 100,000 invocations
    validation was a large part of the driver's time, and these values are built by the
    executor with the declared types. A row that holds every field, and nothing else, becomes
    its record's fields as it is (what `model_construct` does, without its per-field loop).
    """
    # Parents are other invocations' keys, parameter values repeat across analyzers (a service
    # name in many keys): each distinct text is redacted once here, whatever the size of the
    # redaction step's own cache.
    redact = redactor(remember=True)

    def flat(params: Any) -> bool:
        return isinstance(params, dict) and all(
            isinstance(k, str) and isinstance(v, _FLAT) for k, v in params.items()
        )

    def clean_params(params: Any, is_flat: bool) -> Any:
        if is_flat:
            # Flat parameters, the usual case: the same result as walking them.
            return {redact(k): redact(v) if isinstance(v, str) else v for k, v in params.items()}
        return redact(params)

    pairs: dict[tuple[str, Any], str] = {}
    keys: dict[str, str] = {}  # key -> redacted, for the parents that name them

    def key_text(key: str, analyzer: Any, params: Any, is_flat: bool) -> str:
        """The key redacted pair by pair: `"name":value` once each, not every key whole.

        A key is its analyzer's name and its parameters as JSON (`invocation_key`); a service
        name is in the keys of every analyzer that runs on it, so at 100,000 invocations
        redacting whole keys ran the detectors over 100,000 texts, pairs over a fifth of that.
        Each pair keeps its name beside its value (`"token":"..."` is still an assignment).
        Only a key that is exactly its pairs' text is taken apart; any other is redacted whole.
        """
        if not isinstance(analyzer, str) or not params or not is_flat:
            return redact(key)
        parts = []
        for name in sorted(params):
            value = params[name]
            pair = pairs.get((name, value))
            if pair is None:
                pair = pairs[(name, value)] = _KEY_ENCODER.encode(name) + ":" + \
                    _KEY_ENCODER.encode(value)
            parts.append(pair)
        if key != analyzer + "{" + ",".join(parts) + "}":
            return redact(key)
        done = keys[key] = redact(analyzer) + "{" + ",".join(redact(p) for p in parts) + "}"
        return done

    order = list(InvocationRecord.__pydantic_fields__)
    every = set(order)
    direct = not InvocationRecord.__pydantic_post_init__
    records = []
    new = InvocationRecord.__new__
    for row in rows:
        key, parent, params = row.get("key"), row.get("parent"), row.get("params")
        is_flat = flat(params)
        if isinstance(key, str):
            row["key"] = key_text(key, row.get("analyzer"), params, is_flat)
        if params is not None:
            row["params"] = clean_params(params, is_flat)
        if isinstance(parent, str):
            # As its own record's key reads (a parent's record comes first, a wave earlier).
            row["parent"] = keys.get(parent) or redact(parent)
        for name in _OTHER_TEXT:
            value = row.get(name)
            if value is not None:
                row[name] = redact(value)
        if not direct or row.keys() != every:
            records.append(InvocationRecord.model_construct(every, **row))
            continue
        record = new(InvocationRecord)
        # In the declared order, as validation would make it (a report may list the fields).
        _set(record, "__dict__", row if list(row) == order
             else {name: row[name] for name in order})
        _set(record, "__pydantic_fields_set__", every)
        _set(record, "__pydantic_extra__", None)
        _set(record, "__pydantic_private__", None)
        records.append(record)
    return records


class FindingRecord(Redacted):
    id: str
    analyzer: str
    invocation: str
    title: str
    summary: str
    severity: str
    confidence: float
    category: str
    entities: list[Entity] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)
    mitigations: list[Mitigation] = Field(default_factory=list)
    onset: datetime | None = None
    facts: dict[str, Any] = Field(default_factory=dict)
    led_from: list[str] = Field(
        default_factory=list, description="ids of findings that led to this one"
    )
    explains: list[str] = Field(default_factory=list, description="ids of findings it explains")
    owner: str | None = Field(default=None, description="team that owns the analyzer")


def finding_maker() -> Callable[..., FindingRecord]:
    """`FindingRecord(**fields)` for the findings of one investigation, made faster.

    The same redaction step, value by value (what `Redacted` does), with each distinct text
    redacted once: entity names, facts and keys repeat across the findings of a large
    investigation, more than the redaction step's own cache holds. Then validated as usual.
    """
    clean = redactor(remember=True)

    def make(**data: Any) -> FindingRecord:
        clean_data = {name: clean(value) for name, value in data.items()}
        return FindingRecord.model_validate(clean_data, context=_ALREADY_REDACTED)

    return make


class CauseRecord(Redacted):
    rank: int
    entity: Entity
    category: str
    score: float
    finding_ids: list[str]
    title: str = ""


class SentenceRecord(BaseModel):
    text: str
    finding_ids: list[str] = Field(default_factory=list)
    kind: str = "fact"  # fact, hypothesis, next_step, headline


class NarrativeRecord(Redacted):
    narrator: str
    text: str
    sentences: list[SentenceRecord] = Field(default_factory=list)
    verified: bool = True
    model: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    fallback_reason: str | None = None
    headline: str = ""
    rejections: list[str] = Field(
        default_factory=list, description="the verifier's reasons, one per rejected model answer"
    )


class InvestigationRecord(BaseModel):
    id: str
    alert: Alert
    window: TimeWindow
    status: str = "running"  # running, done, partial, failed
    runtime: str = "local"
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    invocations: list[InvocationRecord] = Field(default_factory=list)
    findings: list[FindingRecord] = Field(default_factory=list)
    causes: list[CauseRecord] = Field(default_factory=list)
    narrative: NarrativeRecord | None = None
    notes: list[str] = Field(default_factory=list, description="what did not finish, and why")
    packs: list[str] = Field(default_factory=list)
    sources: list[dict[str, Any]] = Field(
        default_factory=list,
        description="telemetry pulled at alert time: name, ok, duration_ms, rows, error",
    )

    @field_validator("alert", "notes", mode="before")
    @classmethod
    def _redacted(cls, value: Any) -> Any:
        return redact_value(value)

    def finding(self, finding_id: str) -> FindingRecord | None:
        return next((f for f in self.findings if f.id == finding_id), None)

    def status_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for invocation in self.invocations:
            counts[invocation.status] = counts.get(invocation.status, 0) + 1
        return counts

    def contract_json(self) -> dict[str, Any]:
        """The JSON that `casebook investigate --json` prints (DESIGN.md contract)."""
        data = self.model_dump(mode="json")
        data["invocations"] = [
            {k: inv[k] for k in ("analyzer", "params", "status", "duration_ms", "error", "key",
                                 "depth", "parent")}
            for inv in data["invocations"]
        ]
        return data
