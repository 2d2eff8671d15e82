"""Redaction as narration and reports import it; the detectors live in casebook.executor.redaction."""

from casebook.executor.redaction import redact, redact_value, secrets_in

__all__ = ["redact", "redact_value", "secrets_in"]
