from casebook.examples.team_pack.followups import cache_ticket, slow_operation_owners
from casebook.sdk import Annotate, Notify, OpenTicket
from casebook.sdk.testing import make_alert, make_investigation, run_postprocessor

ALERT = make_alert("HighRequestVolume", service="inference-api", team="inference")


def test_a_cache_on_top_opens_a_ticket_and_annotates():
    investigation = make_investigation(
        ALERT,
        causes=[("service:kv-cache", "cache", ["f1"]), ("service:inference-api", "symptom")],
        findings=[{"id": "f1", "analyzer": "cache_collapse", "title": "kv-cache hit rate fell"}],
    )
    outcome = run_postprocessor(cache_ticket, investigation)
    assert outcome.status == "applied"
    assert outcome.actions == (
        Annotate(text="kv-cache is owned by the cache team (#cache-oncall)."),
        OpenTicket(
            sink="cache-tickets",
            title="kv-cache: cache collapse behind HighRequestVolume",
            body="Score 0.90. Findings:\n- kv-cache hit rate fell\n\n"
            "http://casebook.test/investigations/inv-test",
        ),
    )


def test_it_is_skipped_for_other_teams_and_causes():
    other_team = make_investigation(make_alert("HighRequestVolume", team="payments"),
                                    causes=[("service:kv-cache", "cache")])
    no_cache = make_investigation(ALERT, causes=[("service:api", "deploy")])
    assert run_postprocessor(cache_ticket, other_team).status == "skipped"
    assert run_postprocessor(cache_ticket, no_cache).status == "skipped"
    # A cache ranked second matches, but the post-processor itself decides to do nothing.
    second = make_investigation(ALERT, causes=[("service:api", "deploy"),
                                               ("service:kv-cache", "cache")])
    assert run_postprocessor(cache_ticket, second).actions == ()


def test_a_slow_operation_notifies_the_team_chat():
    investigation = make_investigation(
        make_alert("LatencyHigh", service="cart"),
        findings=[{"analyzer": "slow_operation", "title": "cart checkout is 9.0x slower"}],
    )
    outcome = run_postprocessor(slow_operation_owners, investigation)
    assert outcome.actions == (Notify(
        sink="team-chat",
        text="cart checkout is 9.0x slower (http://casebook.test/investigations/inv-test)"),)
