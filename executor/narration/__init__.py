"""Narration: findings (never raw telemetry) in, sentences that cite finding ids out.

`narrate(record)` is the one entry point: the deterministic narrator unless ANTHROPIC_API_KEY is
set, in which case Claude writes the narrative and the verifier checks it (docs/narration.md).
"""

from casebook.executor.narration.deterministic import narrate_deterministic
from casebook.executor.narration.settings import NarratorSettings, SettingsError
from casebook.executor.narration.verifier import verify
from casebook.executor.record import InvestigationRecord, NarrativeRecord

__all__ = ["NarratorSettings", "narrate", "narrate_deterministic", "verify"]


def narrate(
    record: InvestigationRecord, settings: NarratorSettings | None = None
) -> NarrativeRecord:
    """The narrative for an investigation; narration never sinks the investigation."""
    narrative = _narrate(record, settings)
    # The one exit: whatever path made it, the narrative passes the redaction step.
    return NarrativeRecord.model_validate(narrative.model_dump())


def _narrate(record: InvestigationRecord, settings: NarratorSettings | None) -> NarrativeRecord:
    try:
        settings = settings or NarratorSettings.from_env()
    except SettingsError as exc:
        return _with_reason(record, f"The narrator settings are wrong: {exc}.")
    if not settings.wants_claude:
        if settings.mode == "claude":
            return _with_reason(
                record,
                "CASEBOOK_NARRATOR=claude but ANTHROPIC_API_KEY is not "
                "set; export it to let Claude narrate.",
            )
        return narrate_deterministic(record)
    if not record.findings:
        return narrate_deterministic(record)
    from casebook.executor.narration.claude import narrate_with_claude

    try:
        return narrate_with_claude(record, settings)
    except Exception as exc:  # noqa: BLE001 - a narrator bug must not lose the investigation
        return _with_reason(record, f"The Claude narrator failed ({type(exc).__name__}: {exc}).")


def _with_reason(record: InvestigationRecord, reason: str) -> NarrativeRecord:
    return narrate_deterministic(record).model_copy(update={"fallback_reason": reason})
