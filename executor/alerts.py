"""Alert intake formats: Alertmanager (version 4) and Grafana webhooks, or one casebook alert.

The bodies are checked against the models in alert_bodies first, so anything wrong is refused
here, naming the field, and never reaches the queue.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from casebook.executor.alert_bodies import (
    AlertmanagerBody,
    CasebookAlertBody,
    GrafanaBody,
    GrafanaLegacyBody,
    WebhookAlert,
)
from casebook.executor.errors import UserError
from casebook.executor.json_input import JSONInputError, describe_errors, kind_of, load_json
from casebook.sdk.models import Alert

EXPECTED = "expected an Alertmanager or Grafana webhook body, or a casebook alert object"
MAX_FILE_BYTES = 64 * 1024 * 1024
MODELS: dict[str, type[BaseModel]] = {
    "alertmanager": AlertmanagerBody,
    "grafana": GrafanaBody,
    "grafana-legacy": GrafanaLegacyBody,
    "casebook": CasebookAlertBody,
}


class AlertFormatError(UserError):
    """An alert body that none of the known formats accepts; `status` is the HTTP answer."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


def load_alerts(path: str | Path) -> list[Alert]:
    """The alerts in a file holding any supported body."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise AlertFormatError(f"alert file {path} does not exist") from None
    except IsADirectoryError:
        raise AlertFormatError(f"{path} is a directory; name the alert file in it") from None
    try:
        body = load_json(raw, max_bytes=MAX_FILE_BYTES, what=str(path))
    except JSONInputError as exc:
        raise AlertFormatError(f"{exc}; {EXPECTED}", status=exc.status) from None
    return parse_alerts(body, origin=str(path))


def detect_format(body: Any) -> str:
    """'alertmanager', 'grafana', 'grafana-legacy' or 'casebook'."""
    if not isinstance(body, dict):
        raise AlertFormatError(
            f"expected a JSON object, found {kind_of(body)}; send one webhook body or one "
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
        "alert (needs 'name' and 'starts_at'); keys found: "
        + ", ".join(str(k)[:40] for k in sorted(body)[:12])
    )


def parse_alerts(body: Any, origin: str = "body") -> list[Alert]:
    """Split a webhook body into alerts (unknown fields are ignored)."""
    kind = detect_format(body)
    try:
        model = MODELS[kind].model_validate(body)
    except ValidationError as exc:
        raise AlertFormatError(f"{origin}: {describe_errors(exc)}") from None
    if isinstance(model, CasebookAlertBody):
        return [Alert(**model.model_dump())]
    if isinstance(model, GrafanaLegacyBody):
        return [_grafana_legacy(model, origin)]
    assert isinstance(model, AlertmanagerBody)
    return [
        _webhook_alert(item, i, model.common_labels, kind, origin)
        for i, item in enumerate(model.alerts)
    ]


def _webhook_alert(
    item: WebhookAlert, index: int, common: dict[str, str], kind: str, origin: str
) -> Alert:
    where = f"{origin}: alerts[{index}]"
    labels = {**common, **item.labels}
    name = labels.get("alertname") or item.title
    if not name:
        raise AlertFormatError(f"{where} has no 'alertname' label; every alert needs one")
    if item.starts_at is None:
        raise AlertFormatError(f"{where} ({name}) has no 'startsAt'; expected an RFC 3339 time")
    if item.status not in ("firing", "resolved"):
        raise AlertFormatError(
            f"{where} ({name}) has status {item.status[:40]!r}; expected firing/resolved"
        )
    return Alert(
        name=name,
        status=item.status,  # type: ignore[arg-type]  # checked just above
        labels=labels,
        annotations=item.annotations,
        starts_at=item.starts_at,
        ends_at=item.ends_at,
        fingerprint=item.fingerprint,
        source=kind,
        generator_url=item.generator_url,
        dashboard_url=item.dashboard_url,
        panel_url=item.panel_url,
        silence_url=item.silence_url,
        values=_values(item.values),
    )


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


def _grafana_legacy(body: GrafanaLegacyBody, origin: str) -> Alert:
    labels = dict(body.tags)
    labels.setdefault("alertname", body.rule_name or body.title or "grafana")
    moment = body.starts_at or body.time
    if moment is None:
        raise AlertFormatError(
            f"{origin}: legacy Grafana alert has no time; casebook needs 'startsAt' to place the "
            "investigation window (add it to the notification template)"
        )
    return Alert(
        name=labels["alertname"],
        status="resolved" if body.state == "ok" else "firing",
        labels=labels,
        annotations={"message": body.message},
        starts_at=moment,
        source="grafana",
    )
