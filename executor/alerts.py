"""Alert intake formats: Alertmanager (version 4) and Grafana webhooks, or one casebook alert."""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from casebook.executor.errors import UserError
from casebook.sdk.models import Alert

ZERO_TIME_PREFIX = "0001-01-01"


class AlertFormatError(UserError):
    """An alert body that none of the known formats accepts."""


def load_alerts(path: str | Path) -> list[Alert]:
    """The alerts in a file holding any supported body."""
    path = Path(path)
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError:
        raise AlertFormatError(f"alert file {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise AlertFormatError(
            f"{path} is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); expected an "
            "Alertmanager or Grafana webhook body, or a casebook alert object"
        ) from None
    return parse_alerts(body, origin=str(path))


def detect_format(body: Any) -> str:
    """'alertmanager', 'grafana', 'grafana-legacy' or 'casebook'."""
    if not isinstance(body, dict):
        raise AlertFormatError(
            f"expected a JSON object, found {type(body).__name__}; send one webhook body or one "
            "casebook alert object"
        )
    if "alerts" in body:
        if "orgId" in body or "title" in body and "state" in body:
            return "grafana"
        return "alertmanager"
    if "ruleName" in body or "evalMatches" in body:
        return "grafana-legacy"
    if "name" in body and ("starts_at" in body or "startsAt" in body):
        return "casebook"
    raise AlertFormatError(
        "this body is neither an Alertmanager/Grafana webhook (no 'alerts' list) nor a casebook "
        "alert (needs 'name' and 'starts_at'); keys found: " + ", ".join(sorted(body)[:12])
    )


def parse_alerts(body: Any, origin: str = "body") -> list[Alert]:
    """Split a webhook body into alerts (unknown fields are ignored)."""
    kind = detect_format(body)
    if kind == "casebook":
        try:
            return [Alert.model_validate(_casebook_fields(body))]
        except ValidationError as exc:
            raise AlertFormatError(f"{origin}: not a valid casebook alert: {_first(exc)}") from None
    if kind == "grafana-legacy":
        return [_grafana_legacy(body, origin)]
    alerts = body.get("alerts")
    if not isinstance(alerts, list):
        raise AlertFormatError(f"{origin}: 'alerts' must be a list, found {type(alerts).__name__}")
    common = body.get("commonLabels") or {}
    return [_webhook_alert(item, i, common, kind, origin) for i, item in enumerate(alerts)]


def _casebook_fields(body: dict[str, Any]) -> dict[str, Any]:
    if "startsAt" in body and "starts_at" not in body:
        body = {**body, "starts_at": body["startsAt"]}
    return body


def _webhook_alert(item: Any, index: int, common: dict[str, str], kind: str,
                   origin: str) -> Alert:
    where = f"{origin}: alerts[{index}]"
    if not isinstance(item, dict):
        raise AlertFormatError(f"{where} is {type(item).__name__}, expected an object")
    labels = {**{str(k): str(v) for k, v in common.items()},
              **{str(k): str(v) for k, v in (item.get("labels") or {}).items()}}
    name = labels.get("alertname") or item.get("title") or ""
    if not name:
        raise AlertFormatError(f"{where} has no 'alertname' label; every alert needs one")
    starts = item.get("startsAt")
    if not starts:
        raise AlertFormatError(f"{where} ({name}) has no 'startsAt'; expected an RFC 3339 time")
    status = item.get("status", "firing")
    if status not in ("firing", "resolved"):
        raise AlertFormatError(f"{where} ({name}) has status {status!r}; expected firing/resolved")
    ends = item.get("endsAt")
    if not ends or str(ends).startswith(ZERO_TIME_PREFIX):
        ends = None
    try:
        return Alert(
            name=name,
            status=status,
            labels=labels,
            annotations={str(k): str(v) for k, v in (item.get("annotations") or {}).items()},
            starts_at=_time(starts, where, "startsAt"),
            ends_at=_time(ends, where, "endsAt") if ends else None,
            fingerprint=str(item.get("fingerprint") or ""),
            source=kind,
            generator_url=str(item.get("generatorURL") or ""),
            dashboard_url=str(item.get("dashboardURL") or ""),
            panel_url=str(item.get("panelURL") or ""),
            silence_url=str(item.get("silenceURL") or ""),
            values=_values(item.get("values")),
        )
    except ValidationError as exc:
        raise AlertFormatError(f"{where} ({name}): {_first(exc)}") from None


def _values(raw: Any) -> dict[str, float]:
    """Grafana's `values` ({"B": 0.93}); what is not a number is left out."""
    if not isinstance(raw, dict):
        return {}
    out = {}
    for key, value in raw.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out[str(key)] = number
    return out


def _grafana_legacy(body: dict[str, Any], origin: str) -> Alert:
    state = body.get("state", "alerting")
    labels = {str(k): str(v) for k, v in (body.get("tags") or {}).items()}
    labels.setdefault("alertname", str(body.get("ruleName") or body.get("title") or "grafana"))
    moment = body.get("startsAt") or body.get("time")
    if not moment:
        raise AlertFormatError(
            f"{origin}: legacy Grafana alert has no time; casebook needs 'startsAt' to place the "
            "investigation window (add it to the notification template)"
        )
    return Alert(name=labels["alertname"], status="resolved" if state == "ok" else "firing",
                 labels=labels, annotations={"message": str(body.get("message") or "")},
                 starts_at=_time(moment, origin, "startsAt"), source="grafana")


def _time(value: Any, where: str, field: str) -> datetime:
    try:
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(value / (1000 if value > 1e11 else 1)).astimezone()
        text = str(value).replace("Z", "+00:00")
        # Alertmanager sends nanoseconds; Python keeps microseconds.
        if "." in text:
            head, _, tail = text.partition(".")
            digits = tail[:len(tail) - len(tail.lstrip("0123456789"))]  # not the zone's
            zone = tail[len(digits):]
            text = f"{head}.{digits[:6]}{zone}"
        return datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise AlertFormatError(
            f"{where}: {field} {value!r} is not a time; expected RFC 3339, e.g. "
            "2026-01-01T12:00:00Z"
        ) from None


def _first(exc: ValidationError) -> str:
    error = exc.errors()[0]
    location = ".".join(str(p) for p in error.get("loc", ()))
    return f"{location}: {error.get('msg')}" if location else str(error.get("msg"))
