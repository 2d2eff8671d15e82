"""Who may talk to the service: a bearer token, and Grafana's HMAC signature on the raw body.

Secrets are compared in constant time. Browsers can send the token too: the HTML pages answer
401 with a Basic challenge, and a token typed as the password is accepted like a bearer token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping


def token_matches(authorization: str | None, token: str) -> bool:
    """True when an Authorization header carries the token (Bearer, or Basic with it as password)."""
    if not authorization:
        return False
    scheme, _, credentials = authorization.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        offered = credentials.strip()
    elif scheme == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        offered = decoded.partition(":")[2]
    else:
        return False
    return hmac.compare_digest(offered.encode(), token.encode())


def grafana_signature_problem(
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    *,
    signature_header: str,
    timestamp_header: str | None,
    max_skew_s: float,
    now: float | None = None,
) -> str | None:
    """Why a Grafana request's HMAC-SHA256 signature is not valid, or None when it is.

    Grafana signs the raw body, or `timestamp:body` when a timestamp header is configured, and
    sends the hex digest in the signature header.
    """
    signature = headers.get(signature_header)
    if not signature:
        return (
            f"the request has no {signature_header} header; configure the HMAC secret of "
            "the Grafana contact point, or start casebook serve without --grafana-secret"
        )
    message = body
    if timestamp_header:
        stamp = headers.get(timestamp_header)
        if not stamp:
            return (
                f"the request has no {timestamp_header} header, which --grafana-timestamp-"
                "header requires; set the same Timestamp Header in the Grafana contact point"
            )
        try:
            skew = abs((now if now is not None else time.time()) - float(stamp))
        except ValueError:
            return f"{timestamp_header} is {stamp[:40]!r}, not a Unix timestamp"
        if skew > max_skew_s:
            return (
                f"{timestamp_header} is {skew:.0f} s away from this machine's clock (at most "
                f"{max_skew_s:.0f} s is accepted, to refuse replayed requests)"
            )
        message = stamp.encode() + b":" + body
    expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature.strip().lower().encode(), expected.encode()):
        return (
            f"the {signature_header} signature does not match the body; check that Grafana "
            "and casebook serve use the same secret"
        )
    return None
