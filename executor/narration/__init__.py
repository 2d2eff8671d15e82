"""Narration: findings (never raw telemetry) in, sentences that cite finding ids out."""

from casebook.executor.narration.deterministic import narrate_deterministic
from casebook.executor.record import InvestigationRecord, NarrativeRecord

__all__ = ["narrate", "narrate_deterministic"]


def narrate(record: InvestigationRecord) -> NarrativeRecord:
    """The narrative for an investigation."""
    return narrate_deterministic(record)
