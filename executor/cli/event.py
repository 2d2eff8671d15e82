"""`casebook event`: record a change (deploy, config push, flag flip) as it happens, from CI/CD."""

from __future__ import annotations

from typing import Annotated

import typer

from casebook.executor.cli.errors import reported
from casebook.executor.errors import UserError


def register(app: typer.Typer) -> None:
    app.command("event")(event_command)


def event_command(
    kind: Annotated[str, typer.Argument(help="deploy, config, flag, scale, restart, ...")],
    service: Annotated[str, typer.Argument(help="The service that changed.")],
    summary: Annotated[str, typer.Option("--summary", help="One line a person can read.")],
    ts: Annotated[str | None, typer.Option(
        "--ts", help="When it happened (ISO 8601 or epoch seconds); now when left out.")] = None,
    version: Annotated[str | None, typer.Option(
        "--version", help="The version deployed (kept as the attribute `version`).")] = None,
    attr: Annotated[list[str] | None, typer.Option(
        "--attr", metavar="K=V", help="Another attribute; repeatable.")] = None,
    url: Annotated[str | None, typer.Option(
        "--url", help="A running `casebook serve`, e.g. http://casebook:9095.")] = None,
    telemetry: Annotated[str | None, typer.Option(  # str: a Path would turn s3:// into s3:/
        "--telemetry", help="Write into this store directly instead (created if missing).")] = None,
    token: Annotated[str | None, typer.Option(
        "--token", envvar="CASEBOOK_TOKEN", show_default=False,
        help="Bearer token of the serve at --url (better set through CASEBOOK_TOKEN).")] = None,
) -> None:
    """Record a change event for the `events` table, through a serve or straight to a store."""
    with reported():
        if (url is None) == (telemetry is None):
            raise UserError("name where the event goes: --url SERVE_URL (a running casebook "
                            "serve) or --telemetry PATH (a store), one of the two")
        attributes = dict(_pair(item) for item in attr or [])
        if version is not None:
            attributes["version"] = version
        body = {"kind": kind, "service": service, "summary": summary, "attributes": attributes}
        if ts is not None:
            body["ts"] = ts
        from pydantic import ValidationError

        from casebook.executor.ingest.events import ChangeEvent, validation_problem

        try:
            event = ChangeEvent.model_validate(body)
        except ValidationError as exc:
            raise UserError(validation_problem(exc).replace("ts:", "--ts:", 1)) from None
        if url is not None:
            _post(url, event, token)
            where = url
        else:
            from casebook.executor.ingest.events import change_rows
            from casebook.executor.telemetry_store import TelemetryStore

            TelemetryStore.open(telemetry, create=True).append("events", change_rows([event]))
            where = str(telemetry)
        typer.echo(f"recorded {event.kind} of {event.service} in {where}")


def _pair(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--attr {item!r}: expected KEY=VALUE, e.g. --attr commit=3f2a1c9")
    return key.strip(), value


def _post(url: str, event, token: str | None) -> None:
    import httpx

    target = url.rstrip("/") + "/api/events"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        answer = httpx.post(target, content=event.model_dump_json(exclude_none=True),
                            headers={**headers, "Content-Type": "application/json"}, timeout=30)
    except httpx.HTTPError as exc:
        raise UserError(f"could not reach {target}: {exc}; is casebook serve running there?") \
            from None
    if answer.status_code >= 300:
        try:
            reason = answer.json().get("error") or answer.text
        except ValueError:
            reason = answer.text
        raise UserError(f"{target} answered {answer.status_code}: {reason[:300]}")
