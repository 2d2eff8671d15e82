"""Post-processors of the example team: what happens after casebook ranks an investigation.

Loaded with the pack (`--pack casebook.examples.team_pack`, or `packs:` in casebook.yaml); the
sinks they name are the ones under `sinks:` in casebook.yaml.
"""

from casebook.sdk import Annotate, InvestigationView, Notify, OpenTicket, postprocessor


@postprocessor(match={"team": "inference"}, cause={"category": "cache"}, timeout_s=5)
def cache_ticket(investigation: InvestigationView) -> list[Annotate | OpenTicket]:
    """When a cache is the top cause, tell the reader who owns it and open a ticket for them."""
    top = investigation.top_cause
    if top is None or top.category != "cache":
        return []  # a cache further down the list is not worth a ticket
    evidence = "\n".join(
        f"- {f.title}" for f in investigation.findings if f.id in top.finding_ids
    )
    return [
        Annotate(text=f"{top.entity.name} is owned by the cache team (#cache-oncall)."),
        OpenTicket(
            sink="cache-tickets",
            title=f"{top.entity.name}: cache collapse behind {investigation.alert.name}",
            body=f"Score {top.score:.2f}. Findings:\n{evidence}\n\n{investigation.report_url}",
        ),
    ]


@postprocessor(finding={"analyzer": "slow_operation"})
def slow_operation_owners(investigation: InvestigationView) -> Notify | None:
    """A slow operation goes to the team's chat with its numbers."""
    [finding, *_] = investigation.findings_of("slow_operation")
    return Notify(sink="team-chat", text=f"{finding.title} ({investigation.report_url})")
