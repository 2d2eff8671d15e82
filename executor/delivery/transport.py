"""Sending one stored message to its sink: an HTTP POST (webhook, Slack, PagerDuty) or a file
written whole (Markdown). The body is sent exactly as stored, so a retry carries the same bytes,
the same signature and the same idempotency key."""

from __future__ import annotations

import hashlib
import hmac
import os
import urllib.error
import urllib.request
from pathlib import Path

from casebook.executor.config.schema import Sink
from casebook.executor.delivery.outbox import Delivery

SIGNATURE_HEADER = "X-Casebook-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
# Answers worth trying again later; any other 4xx means the message itself is refused.
RETRYABLE = {408, 409, 425, 429}


class DeliveryFailed(Exception):
    """A failed attempt; `permanent` when retrying cannot help."""

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


def signature(body: bytes, secret: str) -> str:
    """`sha256=HEX`: HMAC-SHA256 of the body with the sink's secret (as inbound webhooks)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send(sink: Sink, delivery: Delivery, timeout_s: float) -> str:
    """Deliver; returns what happened in a few words, raises DeliveryFailed otherwise."""
    if sink.type == "markdown":
        return _write_file(sink, delivery)
    headers = {
        "Content-Type": delivery.content_type,
        "User-Agent": "casebook",
        IDEMPOTENCY_HEADER: delivery.key,
        **sink.headers,
    }
    if sink.secret:
        headers[SIGNATURE_HEADER] = signature(delivery.body, sink.secret)
    request = urllib.request.Request(sink.target, data=delivery.body, headers=headers,
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            return f"HTTP {answer.status}"
    except urllib.error.HTTPError as error:
        text = error.read(300).decode(errors="replace").strip()
        detail = f"HTTP {error.code} from {sink.target}" + (f": {text}" if text else "")
        raise DeliveryFailed(detail, permanent=400 <= error.code < 500
                             and error.code not in RETRYABLE) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DeliveryFailed(f"cannot reach {sink.target}: {reason}") from None


def _write_file(sink: Sink, delivery: Delivery) -> str:
    assert sink.directory is not None
    target = Path(sink.directory) / delivery.name
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_bytes(delivery.body)
        os.replace(partial, target)  # whole or not at all, even if the process dies here
    except OSError as error:
        raise DeliveryFailed(f"cannot write {target}: {error.strerror or error}") from None
    return f"wrote {target}"
