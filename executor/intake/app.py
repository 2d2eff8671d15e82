"""The web app of `casebook serve`: webhooks in, investigations and reports out.

Only the routes below exist: no docs pages, no static directory, and ids are checked against
a strict pattern before they reach the results database.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from casebook.executor.alerts import AlertFormatError
from casebook.executor.errors import UserError
from casebook.executor.intake.auth import grafana_signature_problem, token_matches
from casebook.executor.intake.bodies import (
    RequestProblem,
    content_type,
    parse_json,
    read_body,
    require_json_content,
)
from casebook.executor.intake.config import LOOPBACK_HOSTS
from casebook.executor.intake.coverage_routes import register_coverage_routes
from casebook.executor.intake.feedback import FORM, read_feedback
from casebook.executor.intake.metrics import CONTENT_TYPE
from casebook.executor.intake.pages import investigations_page, message_page, waiting_page
from casebook.executor.intake.queue import QueueFull
from casebook.executor.intake.receivers import register_receivers
from casebook.executor.intake.service import IntakeService

INVESTIGATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
RETRY_AFTER_S = "30"
# Self-contained pages: nothing is loaded from elsewhere and nothing is posted elsewhere.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # with no-referrer, form posts carry Origin: null
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "img-src data:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
}


def create_app(service: IntakeService, *, run_worker: bool = True) -> FastAPI:
    """The FastAPI app over a service; starting it starts the worker, stopping it closes all."""
    config = service.config

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if run_worker:
            service.start()
        try:
            yield
        finally:
            service.close()

    app = FastAPI(
        title="casebook", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )

    @app.middleware("http")
    async def guard(request: Request, call_next):
        refusal = guard_refusal(request, config)
        if refusal is not None:
            return _problem(request, refusal, service)
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(RequestProblem)
    async def refused(request: Request, problem: RequestProblem) -> Response:
        return _problem(request, problem, service)

    def authorize(request: Request) -> None:
        if config.token and not token_matches(request.headers.get("authorization"), config.token):
            page = _wants_html(request)
            raise RequestProblem(
                401,
                "missing or wrong token: send `Authorization: Bearer <token>` with the "
                "token given to casebook serve --token",
                "unauthorized",
                {"WWW-Authenticate": 'Basic realm="casebook"' if page else "Bearer"},
            )

    async def take_alerts(
        request: Request, source: str, *, manual: bool = False, signed: bool = False
    ) -> JSONResponse:
        if not signed:
            authorize(request)
        require_json_content(request)
        raw = await read_body(request, config.max_body_bytes)
        if signed and config.grafana_secret:
            problem = grafana_signature_problem(
                raw,
                request.headers,
                config.grafana_secret,
                signature_header=config.grafana_signature_header,
                timestamp_header=config.grafana_timestamp_header,
                max_skew_s=config.grafana_max_skew_s,
            )
            if problem:
                raise RequestProblem(401, problem, "bad_signature")
        elif signed:
            authorize(request)
        body = parse_json(raw)
        try:
            receipts = await run_in_threadpool(service.accept, body, source, manual=manual)
        except AlertFormatError as exc:
            raise RequestProblem(exc.status, str(exc), "invalid") from None
        except QueueFull as exc:
            raise RequestProblem(
                503, str(exc), "queue_full", {"Retry-After": RETRY_AFTER_S}
            ) from None
        new = [r for r in receipts if not r.duplicate]
        payload: dict[str, Any] = {
            "accepted": len(new),
            "duplicates": len(receipts) - len(new),
            "alerts": [r.as_json() for r in receipts],
        }
        headers = {}
        if manual:
            ids = [r.investigation_id for r in receipts if r.investigation_id]
            payload["investigations"] = ids
            if len(ids) == 1:
                headers["Location"] = f"/api/investigations/{ids[0]}"
        return JSONResponse(payload, status_code=202, headers=headers)

    @app.post("/webhook/alertmanager")
    async def alertmanager_webhook(request: Request) -> JSONResponse:
        return await take_alerts(request, "alertmanager")

    @app.post("/webhook/grafana")
    async def grafana_webhook(request: Request) -> JSONResponse:
        return await take_alerts(request, "grafana", signed=True)

    @app.post("/api/investigations")
    async def manual_investigation(request: Request) -> JSONResponse:
        return await take_alerts(request, "manual", manual=True)

    @app.get("/api/investigations")
    def list_investigations(request: Request, limit: int = 100) -> JSONResponse:
        authorize(request)
        rows, pending, recorded = _listing(service, limit)
        for row in rows:
            row.update(recorded.get(row["id"], {"resolved_at": None, "repeats": 0}))
            row["report_url"] = f"/investigations/{row['id']}"
        return JSONResponse(jsonable_encoder({"investigations": rows, "pending": pending}))

    @app.get("/api/investigations/{investigation_id}")
    def get_investigation(request: Request, investigation_id: str) -> JSONResponse:
        authorize(request)
        record = service.results.get(_checked_id(investigation_id))
        if record is not None:
            return JSONResponse(jsonable_encoder(service.describe(record)))
        state = service.queue.state_of(investigation_id)
        if state in ("queued", "running"):
            return JSONResponse({"id": investigation_id, "state": state}, status_code=202)
        raise _not_found(investigation_id)

    @app.post("/api/investigations/{investigation_id}/feedback")
    async def feedback(request: Request, investigation_id: str) -> Response:
        authorize(request)
        _checked_id(investigation_id)
        from_form = content_type(request) == FORM
        if not from_form:
            require_json_content(request)
        raw = await read_body(request, 64 * 1024)
        given = read_feedback(raw, content_type(request), investigation_id)
        try:
            await run_in_threadpool(
                service.results.add_feedback,
                investigation_id,
                given.helpful,
                finding_id=given.finding_id,
                comment=given.comment,
                source="web",
            )
        except UserError as exc:
            raise RequestProblem(404, str(exc), "not_found") from None
        if from_form:  # back to the report the form was on
            return RedirectResponse(f"/investigations/{investigation_id}", status_code=303)
        return JSONResponse(
            {
                "recorded": True,
                "investigation_id": investigation_id,
                "finding_id": given.finding_id,
                "helpful": given.helpful,
            },
            status_code=201,
        )

    @app.get("/investigations/{investigation_id}", response_class=HTMLResponse)
    def report_page(request: Request, investigation_id: str) -> HTMLResponse:
        authorize(request)
        record = service.results.get(_checked_id(investigation_id))
        if record is None:
            state = service.queue.state_of(investigation_id)
            if state in ("queued", "running"):
                return HTMLResponse(waiting_page(investigation_id, state), status_code=202)
            raise _not_found(investigation_id)
        if record.status == "running":
            return HTMLResponse(waiting_page(investigation_id, "running"), status_code=202)
        from casebook.executor.reports.html import render_html

        return HTMLResponse(
            render_html(
                record,
                feedback_url=f"/api/investigations/{investigation_id}/feedback",
                context=service.context(record),
            )
        )

    register_coverage_routes(app, service, authorize)

    @app.get("/", response_class=HTMLResponse)
    def list_page(request: Request, limit: int = 100) -> HTMLResponse:
        authorize(request)
        rows, pending, recorded = _listing(service, limit)
        return HTMLResponse(investigations_page(rows, pending, recorded, service.queue.depth()))

    register_receivers(app, service)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        alive = service.alive or not run_worker
        body = {"status": "ok" if alive else "worker stopped", "queue_depth": service.queue.depth()}
        return JSONResponse(body, status_code=200 if alive else 503)

    @app.get("/metrics")
    def metrics(request: Request) -> Response:
        authorize(request)
        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE)

    return app


def guard_refusal(request: Request, config: Any) -> RequestProblem | None:
    """Why every route refuses this request, or None (the receivers check it too)."""
    # A loopback service refuses other Host names, so a web page cannot reach it through
    # DNS rebinding.
    allowed_hosts = None if not config.loopback else {*LOOPBACK_HOSTS, config.host}
    if allowed_hosts is not None and _host_name(request) not in allowed_hosts:
        return RequestProblem(
            421, f"this service answers to {', '.join(sorted(allowed_hosts))} only", "wrong_host"
        )
    # Browsers name the page a POST comes from; one from another site is refused, so a
    # page elsewhere cannot queue alerts or cast feedback through a visitor's browser.
    origin = request.headers.get("origin")
    if request.method == "POST" and origin and not _same_origin(origin, request):
        return RequestProblem(
            403,
            f"cross-site request refused: Origin {origin[:100]} is not this service",
            "cross_site",
        )
    return None


def _listing(
    service: IntakeService, limit: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, dict[str, Any]]]:
    limit = max(1, min(limit, 1000))
    rows = service.results.list(limit=limit)
    recorded = service.queue.recorded_against([str(r["id"]) for r in rows])
    return rows, service.queue.pending(limit), recorded


def _checked_id(investigation_id: str) -> str:
    if not INVESTIGATION_ID.fullmatch(investigation_id):
        raise _not_found(investigation_id)
    return investigation_id


def _not_found(investigation_id: str) -> RequestProblem:
    shown = investigation_id[:80]
    return RequestProblem(
        404, f"no investigation '{shown}'; GET /api/investigations lists them", "not_found"
    )


def _host_name(request: Request) -> str:
    host = request.headers.get("host", "")
    if host.startswith("["):  # [::1]:9095
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def _same_origin(origin: str, request: Request) -> bool:
    return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()


def _wants_html(request: Request) -> bool:
    path = request.url.path
    if path.endswith("/feedback"):  # the report's forms want a page back, scripts want JSON
        return content_type(request) == FORM
    return path == "/" or path.startswith("/investigations/")


def _problem(request: Request, problem: RequestProblem, service: IntakeService) -> Response:
    service.metrics.rejected.labels(problem.reason).inc()
    headers = {**problem.headers, **SECURITY_HEADERS}
    if _wants_html(request):
        title = {401: "Sign in with the casebook token", 404: "Not found"}.get(
            problem.status, "Request refused"
        )
        return HTMLResponse(
            message_page(title, problem.message), status_code=problem.status, headers=headers
        )
    return JSONResponse({"error": problem.message}, status_code=problem.status, headers=headers)
