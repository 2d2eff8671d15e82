"""Reading request bodies: raw bytes within a size limit (signatures need them raw), then JSON."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from casebook.executor.json_input import DEFAULT_MAX_DEPTH, JSONInputError, load_json


class RequestProblem(Exception):
    """A request the service refuses; `reason` labels the metric."""

    def __init__(
        self, status: int, message: str, reason: str, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        self.headers = headers or {}


def content_type(request: Request) -> str:
    """The declared media type, lower case, without parameters."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def require_json_content(request: Request) -> None:
    """Refuse bodies not declared as JSON (a browser cannot send those across sites unasked)."""
    declared = content_type(request)
    if declared != "application/json" and not declared.endswith("+json"):
        raise RequestProblem(
            415,
            f"expected Content-Type: application/json, found {declared or 'none'}",
            "unsupported_media_type",
        )


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it passes `limit` bytes."""
    too_large = RequestProblem(
        413,
        f"the body is larger than the limit of {limit} bytes; raise "
        "it with casebook serve --max-body-bytes",
        "too_large",
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """The body as JSON, or a 400 that says where it broke (or that it nests too deeply)."""
    try:
        return load_json(raw, max_depth=max_depth)
    except JSONInputError as exc:
        raise RequestProblem(exc.status, str(exc), "invalid") from None
