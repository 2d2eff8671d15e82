"""Live telemetry into `casebook serve`: OTLP/HTTP, Prometheus remote-write and change events.

    POST /v1/traces, /v1/logs, /v1/metrics   OTLP/HTTP, protobuf or JSON, optionally gzip
    POST /api/v1/write                       Prometheus remote-write 1.0 (snappy protobuf)
    POST /api/events                         change events (casebook's shape or Kubernetes')

Same authentication as the webhooks. A request is answered once its rows are in the spool on
disk (see spool.py), so an acknowledged batch survives a crash; when the store falls behind,
or too many requests are being decoded at once, the answer is 503 with Retry-After, which
OTLP exporters and Prometheus both retry.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import DecodeError
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs_service
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_service
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_service
from prometheus_client import Counter, Gauge
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from casebook.executor.ingest.decoding import (
    PROTOBUF,
    Decoded,
    decode_otlp,
    decode_samples,
)
from casebook.executor.ingest.events import (
    ChangeEvent,
    change_rows,
    is_kube_event,
    kube_events,
    kube_rows,
    validation_problem,
)
from casebook.executor.ingest.otlp import OtlpJsonError
from casebook.executor.ingest.otlp_rows import REQUESTS
from casebook.executor.ingest.remote_write import RemoteWriteError
from casebook.executor.intake.auth import token_matches
from casebook.executor.intake.bodies import RequestProblem, content_type, parse_json, read_body
from casebook.executor.intake.service import IntakeService
from casebook.executor.intake.spool import Spool, SpoolFull
from casebook.executor.telemetry_store import TelemetryStore

JSON = "application/json"
RETRY_AFTER_S = "5"
MAX_IN_FLIGHT = 16  # requests decoded at once; each holds at most one (inflated) body
INVALID_ARGUMENT, UNAVAILABLE = 3, 14  # google.rpc.Code
OTLP = {  # path signal -> (table, response type, partial-success counter field)
    "traces": ("spans", trace_service.ExportTraceServiceResponse, "rejected_spans"),
    "logs": ("logs", logs_service.ExportLogsServiceResponse, "rejected_log_records"),
    "metrics": ("metrics", metrics_service.ExportMetricsServiceResponse, "rejected_data_points"),
}
EVENT_LIST = TypeAdapter(list[ChangeEvent])


class Busy(Exception):
    """The receivers cannot take this request now; the client retries after Retry-After."""


def register_receivers(app: FastAPI, service: IntakeService) -> Spool:
    """Add the telemetry routes to the app, with a spool that starts and stops with it."""
    config = service.config
    spool = Spool(config.db.with_name(f"{config.db.stem}.spool"),
                  TelemetryStore.open(config.telemetry))
    rows_in = Counter("casebook_telemetry_rows", "Telemetry rows received, by table.",
                      ["table"], registry=service.metrics.registry)
    app.state.spool = spool
    Gauge("casebook_spool_pending_bytes", "Received telemetry not yet written to the store.",
          registry=service.metrics.registry).set_function(lambda: spool.pending_bytes)
    receivers = Receivers(service, spool, rows_in)
    # Outermost of the app's middleware: receiver requests are answered there, without the
    # framework's layers (the guard is checked the same way), at tens of thousands a minute.
    app.add_middleware(ReceiverRoutes, receivers=receivers)

    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(owner: FastAPI):
        spool.start()
        try:
            async with inner(owner) as state:
                yield state
        finally:
            spool.close()

    app.router.lifespan_context = lifespan
    return spool


class Receivers:
    """The receiver routes: each takes a request and answers it (refusals as RequestProblem)."""

    def __init__(self, service: IntakeService, spool: Spool, rows_in: Counter):
        self.service, self.config = service, service.config
        self.spool, self.rows_in = spool, rows_in
        self.busy = 0
        self.routes: dict[str, Callable[[Request], Awaitable[Response]]] = {
            **{f"/v1/{signal}": self._otlp_route(signal) for signal in OTLP},
            "/api/v1/write": self.remote_write,
            "/api/events": self.events,
        }

    def authorize(self, request: Request) -> None:
        token = self.config.token
        if token and not token_matches(request.headers.get("authorization"), token):
            raise RequestProblem(
                401,
                "missing or wrong token: send `Authorization: Bearer <token>` with the token "
                "given to casebook serve --token",
                "unauthorized",
                {"WWW-Authenticate": "Bearer"},
            )

    async def take(self, request: Request, route: str, decode: Callable[..., Decoded],
                   *args: Any, inflate: bool = True) -> tuple[Decoded, bool]:
        """Read, decode and spool one request: (its rows, whether they were new)."""
        self.authorize(request)
        limit = self.config.max_body_bytes
        raw = await read_body(request, limit)
        if self.busy >= MAX_IN_FLIGHT:
            raise Busy(f"{MAX_IN_FLIGHT} requests are being decoded already")
        self.busy += 1
        try:
            body = _inflated(raw, request.headers.get("content-encoding"), 16 * limit) \
                if inflate else raw
            key = hashlib.sha256(route.encode() + b"\0" + body).hexdigest()

            def decode_and_spool() -> tuple[Decoded, bool]:
                decoded = decode(*args, body)
                return decoded, self.spool.accept(key, decoded.tables)

            try:  # one trip to a worker thread: each costs a few thread switches
                decoded, new = await run_in_threadpool(decode_and_spool)
            except SpoolFull as exc:
                raise Busy(str(exc)) from None
        finally:
            self.busy -= 1
        if new:
            for table, data in decoded.tables.items():
                self.rows_in.labels(table).inc(data.num_rows)
        return decoded, new

    def _otlp_route(self, signal: str) -> Callable[[Request], Awaitable[Response]]:
        table, response_type, rejected_field = OTLP[signal]

        async def receive(request: Request) -> Response:
            kind = content_type(request)
            if kind not in (PROTOBUF, JSON):
                return _status(415, INVALID_ARGUMENT, f"expected Content-Type {PROTOBUF} or "
                               f"{JSON}, found {kind or 'none'}", JSON)
            try:
                decoded, _ = await self.take(request, f"/v1/{signal}", decode_otlp, table, kind)
            except (OtlpJsonError, DecodeError, ValueError) as exc:
                return _status(400, INVALID_ARGUMENT, _otlp_problem(exc, signal, kind), kind)
            except Busy as exc:
                return _status(503, UNAVAILABLE, f"{exc}; retry later", kind,
                               {"Retry-After": RETRY_AFTER_S})
            answer = response_type()
            if decoded.rejected:
                setattr(answer.partial_success, rejected_field, decoded.rejected)
                answer.partial_success.error_message = decoded.problem
            return _message(answer, kind)

        return receive

    async def remote_write(self, request: Request) -> Response:
        try:
            await self.take(request, "/api/v1/write", decode_samples,
                            self.config.service_labels, inflate=False)
        except RemoteWriteError as exc:
            raise RequestProblem(400, str(exc), "invalid") from None
        except Busy as exc:
            raise RequestProblem(503, f"{exc}; retry later", "busy",
                                 {"Retry-After": RETRY_AFTER_S}) from None
        return Response(status_code=204)

    async def events(self, request: Request) -> Response:
        kind = content_type(request)
        if kind != JSON and not kind.endswith("+json"):
            raise RequestProblem(415, f"expected Content-Type: {JSON}, found {kind or 'none'}",
                                 "unsupported_media_type")
        try:
            decoded, new = await self.take(request, "/api/events", _event_rows)
        except EventProblem as exc:
            raise RequestProblem(422, str(exc), "invalid") from None
        except Busy as exc:
            raise RequestProblem(503, f"{exc}; retry later", "busy",
                                 {"Retry-After": RETRY_AFTER_S}) from None
        accepted = decoded.tables["events"].num_rows
        return JSONResponse({"accepted": accepted if new else 0,
                             "duplicates": 0 if new else accepted}, status_code=202)


class ReceiverRoutes:
    """ASGI middleware answering the receiver paths itself and passing on everything else.

    A receiver request then costs its decoding and little more: no per-request task and
    streams of the framework's HTTP middleware, no routing or parameter resolution. What the
    app's guard and refusals do for every route is done here the same way: the Host and
    Origin checks, the same JSON error bodies counted in the same metric, the same headers.
    """

    def __init__(self, app: ASGIApp, receivers: Receivers):
        # Imported here: app.py imports this module to register the receivers.
        from casebook.executor.intake.app import SECURITY_HEADERS, _problem, guard_refusal

        self.app, self.receivers = app, receivers
        self.routes = receivers.routes
        self.headers, self.refused, self.refusal = SECURITY_HEADERS, _problem, guard_refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        service = self.receivers.service
        refusal = self.refusal(request, service.config)
        if refusal is not None:
            response = self.refused(request, refusal, service)
        elif request.method != "POST":
            response = JSONResponse({"detail": "Method Not Allowed"}, status_code=405,
                                    headers={"Allow": "POST"})
        else:
            try:
                response = await route(request)
            except RequestProblem as problem:
                response = self.refused(request, problem, service)
        for name, value in self.headers.items():
            response.headers.setdefault(name, value)
        await response(scope, receive, send)


class EventProblem(ValueError):
    """A change-event body that does not validate; names the field."""


def _event_rows(body: bytes) -> Decoded:
    document = parse_json(body)
    if is_kube_event(document) or (
        isinstance(document, list) and document and all(is_kube_event(d) for d in document)
    ):
        try:
            return Decoded({"events": kube_rows(kube_events(document))})
        except ValueError as exc:
            raise EventProblem(str(exc)) from None
    try:
        if isinstance(document, list):
            parsed = EVENT_LIST.validate_python(document)
        else:
            parsed = [ChangeEvent.model_validate(document)]
    except ValidationError as exc:
        where = "events" if isinstance(document, list) else ""
        raise EventProblem(
            f"{validation_problem(exc, where)}; expected an object or a list of objects "
            '{"kind", "service", "summary", "ts"?, "attributes"?}'
        ) from None
    return Decoded({"events": change_rows(parsed)})


def _otlp_problem(exc: Exception, signal: str, kind: str) -> str:
    what = REQUESTS[OTLP[signal][0]][1].__name__
    if isinstance(exc, DecodeError):
        return f"the body is not a protobuf {what} ({exc})"
    return f"the body is not an OTLP/JSON {what}: {exc}"


def _inflated(raw: bytes, encoding: str | None, limit: int) -> bytes:
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return raw
    if encoding != "gzip":
        raise RequestProblem(415, f"Content-Encoding {encoding} is not supported; send gzip or "
                             "none", "unsupported_media_type")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        body = inflater.decompress(raw, limit)
    except zlib.error as exc:
        raise RequestProblem(400, f"the body is not valid gzip ({exc})", "invalid") from None
    if inflater.unconsumed_tail:
        raise RequestProblem(413, f"the body inflates to more than {limit} bytes", "too_large")
    return body


def _message(message: Any, kind: str, status: int = 200,
             headers: dict[str, str] | None = None) -> Response:
    if kind == PROTOBUF:
        return Response(message.SerializeToString(), status_code=status, media_type=PROTOBUF,
                        headers=headers)
    return JSONResponse(MessageToDict(message), status_code=status, headers=headers)


def _status(http: int, code: int, text: str, kind: str,
            headers: dict[str, str] | None = None) -> Response:
    return _message(Status(code=code, message=text), kind, http, headers)
