"""A local HTTP server that speaks the Anthropic Messages API wire format, for tests.

The real `anthropic` client talks to it through ANTHROPIC_BASE_URL. Each request takes the next
scripted reply: a tool call (`tool_answer`), an HTTP error (`status`), a slow answer (`slow`), or a
function of the request body that returns one of those (a model that reads its prompt), a
body trickled a byte at a time (`trickled`) or no answer at all (`never_answers`). Every
request body and its headers are kept for assertions.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    trickle_s: float = 0.0  # seconds between bytes of the body
    hang: bool = False  # read the request, never answer


def tool_answer(
    payload: dict[str, Any],
    *,
    tokens_in: int = 1500,
    tokens_out: int = 400,
    stop_reason: str = "tool_use",
    name: str = "write_narrative",
) -> Reply:
    """A 200 answer whose content is one tool_use block with `payload` as its input."""
    return Reply(
        body={
            "type": "message",
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_fake", "name": name, "input": payload}],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out},
        }
    )


def text_answer(text: str, *, tokens_in: int = 1500, tokens_out: int = 50) -> Reply:
    """A 200 answer with a text block and no tool call."""
    return Reply(
        body={
            "type": "message",
            "role": "assistant",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out},
        }
    )


def status(code: int, message: str = "", retry_after_ms: int | None = 5) -> Reply:
    """An API error with the body shape the real API sends."""
    headers = {} if retry_after_ms is None else {"retry-after-ms": str(retry_after_ms)}
    return Reply(
        status=code,
        headers=headers,
        body={
            "type": "error",
            "error": {
                "type": ERROR_TYPES.get(code, "api_error"),
                "message": message or f"HTTP {code}",
            },
        },
    )


def slow(seconds: float, then: Reply) -> Reply:
    """`then`, after `seconds` (longer than the client's timeout makes a timeout)."""
    return Reply(status=then.status, body=then.body, headers=then.headers, delay_s=seconds)


def trickled(seconds_per_byte: float, then: Reply) -> Reply:
    """`then`, its headers at once and its body one byte every `seconds_per_byte`."""
    return Reply(status=then.status, body=then.body, headers=then.headers,
                 trickle_s=seconds_per_byte)


def never_answers() -> Reply:
    """A server that takes the request and never sends a byte back."""
    return Reply(hang=True)


Script = Reply | Callable[[dict[str, Any]], Reply]


class FakeAnthropic:
    """The fake API on 127.0.0.1, serving `replies` in order; use as a context manager."""

    def __init__(self, replies: list[Script]):
        self.replies = list(replies)
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._stopping = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server hook name
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append(body)
                fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                reply = fake._next(self.path, body)
                if reply.hang:
                    fake._stopping.wait()
                    return
                if reply.delay_s and fake._stopping.wait(reply.delay_s):
                    return
                payload = dict(reply.body)
                if reply.status == 200:
                    payload.setdefault("id", f"msg_fake_{len(fake.requests)}")
                    payload.setdefault("model", body.get("model", "unknown"))
                data = json.dumps(payload).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.send_header("request-id", f"req_fake_{len(fake.requests)}")
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    if reply.trickle_s:
                        for i in range(len(data)):
                            self.wfile.write(data[i : i + 1])
                            self.wfile.flush()
                            if fake._stopping.wait(reply.trickle_s):
                                return
                    else:
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test); nothing to answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def _next(self, path: str, body: dict[str, Any]) -> Reply:
        if path.rstrip("/") != "/v1/messages":
            return status(404, f"the fake API serves /v1/messages, not {path}", None)
        if not self.replies:
            return status(400, "the fake API has no reply scripted for this request", None)
        script = self.replies.pop(0)
        return script(body) if callable(script) else script

    def __enter__(self) -> FakeAnthropic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self.server.shutdown()
        self.server.server_close()
