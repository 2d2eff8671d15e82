"""casebook.sdk: what an analyzer author imports."""

from casebook.sdk.analyzer import AnalyzerDefinitionError, analyzer, from_finding
from casebook.sdk.models import (
    Alert,
    Entity,
    Evidence,
    Finding,
    FollowUp,
    Mitigation,
    Severity,
    TimeWindow,
    quoted,
)
from casebook.sdk.packs import Pack
from casebook.sdk.postprocessor import (
    Annotate,
    InvestigationView,
    Notify,
    OpenTicket,
    postprocessor,
)
from casebook.sdk.telemetry import QueryResult, Telemetry, TelemetryError

__all__ = [
    "Alert",
    "AnalyzerDefinitionError",
    "Annotate",
    "Entity",
    "Evidence",
    "Finding",
    "FollowUp",
    "InvestigationView",
    "Mitigation",
    "Notify",
    "OpenTicket",
    "Pack",
    "QueryResult",
    "Severity",
    "Telemetry",
    "TelemetryError",
    "TimeWindow",
    "analyzer",
    "from_finding",
    "postprocessor",
    "quoted",
]
