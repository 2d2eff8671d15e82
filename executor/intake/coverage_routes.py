"""`GET /api/coverage`: the coverage report of the running service, read through the connection
serve already holds (another process cannot open the database while serve writes it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from casebook.executor.errors import UserError
from casebook.executor.intake.bodies import RequestProblem

Format = Literal["json", "markdown", "html"]


def register_coverage_routes(app: FastAPI, service, authorize: Callable[[Request], None]) -> None:
    """Add the coverage route to the service's app."""

    @app.get("/api/coverage")
    async def coverage(request: Request, since: str | None = None, until: str | None = None,
                       format: str = "json") -> Response:
        authorize(request)
        if format not in ("json", "markdown", "html"):
            raise RequestProblem(400, f"format={format[:20]!r} is not known; use json, markdown "
                                 "or html", "invalid")
        try:
            report = await run_in_threadpool(coverage_report, service, since, until)
        except UserError as exc:
            raise RequestProblem(400, str(exc).replace("--since", "since").replace(
                "--until", "until"), "invalid") from None
        if format == "markdown":
            from casebook.executor.coverage.markdown import render_markdown

            return PlainTextResponse(render_markdown(report), media_type="text/markdown")
        if format == "html":
            from casebook.executor.coverage.html import render_html

            return HTMLResponse(render_html(report))
        return JSONResponse(jsonable_encoder(report_json(report)))


def coverage_report(service, since: str | None, until: str | None):
    """The report for the period, built under the results store's lock."""
    from casebook.executor.coverage.report import build_report, parse_moment, period_for

    period = period_for(
        parse_moment(since, option="--since") if since else None,
        parse_moment(until, option="--until", end=True) if until else None,
    )
    with service.results.reading() as con:
        return build_report(con, period, registry=service.worker.registry,
                            database=str(service.results.path))


def report_json(report) -> dict:
    """The report's dataclasses as JSON, figures with their display text and change."""
    from dataclasses import asdict

    data = asdict(report)
    data["period"] = {"since": report.period.start, "until": report.period.end,
                      "label": report.period.label}
    data["figures"] = [
        {**asdict(f), "text": f.text, "change": f.change} for f in report.figures
    ]
    return data
