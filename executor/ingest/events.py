"""Change events as `events` rows: casebook's own shape (CI/CD deploy markers) and Kubernetes
events (`kubectl get events -o json`, and the JSON lines event exporters write).

Kubernetes reasons map to kinds (docs/telemetry.md lists the mapping):

- deploy: `Pulled` (the image, and its tag as the version, go in the attributes)
- restart: `Killing`, `OOMKilling`, `BackOff`, `Evicted`, `Preempted`, `Preempting`
- scale: `ScalingReplicaSet`, `SuccessfulRescale`, `SuccessfulCreate`, `SuccessfulDelete`
- kubernetes: any other Warning (the reason is kept in the attributes)

Other Normal events (Scheduled, Pulling, Created, Started, ...) are routine and left out.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from casebook.executor.ingest.files import IngestError, Loaded, head, open_text

KUBE_KINDS = {
    "Pulled": "deploy",
    "Killing": "restart", "OOMKilling": "restart", "BackOff": "restart", "Evicted": "restart",
    "Preempted": "restart", "Preempting": "restart",
    "ScalingReplicaSet": "scale", "SuccessfulRescale": "scale", "SuccessfulCreate": "scale",
    "SuccessfulDelete": "scale",
}  # fmt: skip
OTHER_WARNING = "kubernetes"
KUBE_START = re.compile(rb'"(involvedObject|regarding)"\s*:|"kind"\s*:\s*"(List|EventList)"')
# Pods of a Deployment are named NAME-<template hash>-<5 chars>, its ReplicaSets NAME-<hash>,
# and a StatefulSet's pods NAME-<ordinal>.
POD_OF_REPLICASET = re.compile(r"^(?P<name>.+)-[a-z0-9]{6,10}-[a-z0-9]{5}$")
REPLICASET = re.compile(r"^(?P<name>.+)-[a-z0-9]{6,10}$")
STATEFUL_POD = re.compile(r"^(?P<name>.+)-\d+$")
SERVICE_LABELS = ("app.kubernetes.io/name", "app", "k8s-app", "service")
IMAGE = re.compile(r'image "(?P<image>[^"]+)"')
EVENT_COLUMNS = {
    "ts": pa.timestamp("us"),
    "kind": pa.string(),
    "service": pa.string(),
    "summary": pa.string(),
    "attributes": pa.map_(pa.string(), pa.string()),
}


class ChangeEvent(BaseModel):
    """A change as CI/CD reports it: `{"kind", "service", "summary", "ts"?, "attributes"?}`."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=64, description="deploy, config, flag, scale, ...")
    service: str = Field(min_length=1, max_length=256)
    summary: str = Field(min_length=1, max_length=2000)
    ts: datetime | None = Field(default=None, description="when it happened; now when left out")
    attributes: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @field_validator("kind")
    @classmethod
    def _lower(cls, kind: str) -> str:
        return kind.strip().lower()


def is_kube_event(document: Any) -> bool:
    """Whether a JSON value is a Kubernetes Event, or a List of them."""
    if not isinstance(document, dict):
        return False
    if document.get("kind") in ("List", "EventList"):
        return all(is_kube_event(item) for item in document.get("items") or [])
    return "involvedObject" in document or "regarding" in document


def kube_events(document: Any) -> list[dict[str, Any]]:
    """Event objects of a List, of one Event, or of a list of either."""
    if isinstance(document, list):
        return [e for item in document for e in kube_events(item)]
    if isinstance(document, dict) and document.get("kind") in ("List", "EventList"):
        return list(document.get("items") or [])
    return [document]


def change_rows(events: list[ChangeEvent], now: datetime | None = None) -> pa.Table:
    """`events` rows of changes; a change without a time happened now."""
    now = now or datetime.now(UTC)
    rows = [
        {
            "ts": _naive(event.ts or now),
            "kind": event.kind,
            "service": event.service,
            "summary": event.summary,
            "attributes": [(k, _text(v)) for k, v in event.attributes.items()],
        }
        for event in events
    ]
    return _table(rows)


def kube_rows(events: list[dict[str, Any]]) -> pa.Table:
    """`events` rows of the Kubernetes events worth keeping (see the module's mapping)."""
    return _table([row for row in (_kube_row(e) for e in events) if row is not None])


def _kube_row(event: dict[str, Any]) -> dict[str, Any] | None:
    reason = str(event.get("reason") or "")
    kind = KUBE_KINDS.get(reason)
    if kind is None:
        if str(event.get("type") or "") != "Warning":
            return None
        kind = OTHER_WARNING
    target = event.get("involvedObject") or event.get("regarding") or {}
    message = str(event.get("message") or event.get("note") or "").strip()
    moment = (event.get("lastTimestamp") or event.get("deprecatedLastTimestamp")
              or event.get("eventTime") or event.get("firstTimestamp")
              or (event.get("metadata") or {}).get("creationTimestamp"))
    if not moment:
        raise ValueError(f"the {reason or 'unnamed'} event of {target.get('name')!r} has no "
                         "lastTimestamp, eventTime or firstTimestamp")
    attributes = {
        "reason": reason,
        "k8s.object": f"{target.get('kind', '')}/{target.get('name', '')}",
        "k8s.namespace": str(target.get("namespace") or (event.get("metadata") or {})
                             .get("namespace") or ""),
        "count": str(event.get("count") or 1),
    }
    image = IMAGE.search(message)
    if image:
        attributes["image"] = image["image"]
        tag = image["image"].rpartition(":")[2]
        if tag and "/" not in tag:
            attributes["version"] = tag
    service = service_of(target)
    return {
        "ts": _naive(datetime.fromisoformat(str(moment).replace("Z", "+00:00"))),
        "kind": kind,
        "service": service,
        "summary": f"{reason} {target.get('kind', 'object').lower()} {target.get('name', '')}: "
                   f"{message}"[:500],
        "attributes": [(k, v) for k, v in attributes.items() if v],
    }


def service_of(target: dict[str, Any]) -> str:
    """The service a Kubernetes object belongs to: its app label, else its name's stem."""
    labels = target.get("labels") or {}
    for label in SERVICE_LABELS:
        if labels.get(label):
            return str(labels[label])
    name, kind = str(target.get("name") or "unknown"), target.get("kind")
    patterns = {"Pod": (POD_OF_REPLICASET, STATEFUL_POD), "ReplicaSet": (REPLICASET,)}
    for pattern in patterns.get(kind, ()):
        found = pattern.match(name)
        if found:
            return found["name"]
    return name


def is_kube_events_file(path: Path) -> bool:
    """Whether a JSON file holds Kubernetes events (kubectl's List, or exporter lines)."""
    return bool(KUBE_START.search(head(path, 8192)))


def read_kube_events(path: Path, file: str) -> Loaded:
    """`events` rows from `kubectl get events -o json` or JSON lines of Event objects."""
    with open_text(path) as handle:
        text = handle.read()
    try:
        documents = [json.loads(text)]
    except json.JSONDecodeError:
        documents = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                documents.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise IngestError(
                    f"{file} line {number}: expected one Kubernetes Event per line (or the "
                    f"output of `kubectl get events -o json`), found malformed JSON ({exc.msg})"
                ) from None
    for document in documents:
        if not is_kube_event(document):
            found = document.get("kind") if isinstance(document, dict) else type(document).__name__
            items = document.get("items") if isinstance(document, dict) else None
            if items and isinstance(items[0], dict):
                found = f"a List of {items[0].get('kind', 'objects without a kind')}"
            raise IngestError(f"{file}: expected Kubernetes Events (the output of `kubectl get "
                              f"events -o json`, or one Event per line), found {found}")
    try:
        data = kube_rows(kube_events(documents))
    except ValueError as exc:
        raise IngestError(f"{file}: {exc}") from None
    return Loaded(file, "events", data, "kubernetes", lambda row: f"event {row + 1}")


def validation_problem(error: ValidationError, where: str = "") -> str:
    """A pydantic error as one line naming the field: `events[1].summary: field required`."""
    parts = []
    for item in error.errors()[:5]:
        path = where + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in item["loc"])
        parts.append(f"{path.lstrip('.') or 'body'}: {item['msg'].lower()}")
    return "; ".join(parts)


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.table({c: pa.array([r[c] for r in rows], t) for c, t in EVENT_COLUMNS.items()})


def _naive(moment: datetime) -> datetime:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
