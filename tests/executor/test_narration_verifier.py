import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "fakes"))

from investigation_records import PLANTED_LOG, good_answer, investigation  # noqa: E402

from casebook.executor.narration import narrate_deterministic, verify  # noqa: E402
from casebook.executor.narration.draft import NarrativeDraft  # noqa: E402
from casebook.executor.narration.redaction import redact, secrets_in  # noqa: E402
from casebook.executor.record import SentenceRecord  # noqa: E402


def headline(*ids):
    return SentenceRecord(
        text="sessions-cache hit ratio collapsed.", finding_ids=list(ids or ["F1"]), kind="headline"
    )


def check(text, ids, kind="fact"):
    """The verifier's reasons for a headline plus one sentence."""
    return verify(
        [headline(), SentenceRecord(text=text, finding_ids=ids, kind=kind)], investigation()
    )


def test_a_narrative_its_findings_support_passes():
    sentences = NarrativeDraft.model_validate(good_answer()).sentences()
    assert verify(sentences, investigation()) == []


@pytest.mark.parametrize(
    "text",
    [
        "sessions-cache hit ratio fell from 0.91 to 0.12 at 12:02 UTC.",
        "The hit ratio of sessions-cache dropped to 12% from 91%.",
        "The hit ratio fell to 0.1187.",
        "The hit ratio fell to about 0.1.",
        "CheckoutErrors fired for checkout on 2026-01-05.",
    ],
)
def test_rounding_percentages_and_the_alert_are_tolerated(text):
    assert check(text, ["F1"]) == []


def test_thousands_separators_and_rounded_counts_match():
    assert check("checkout logged 13201 errors, about 13,000 in all.", ["F3"]) == []


def test_an_unknown_finding_id_is_rejected():
    assert check("sessions-cache hit ratio fell to 0.12.", ["F7"]) == [
        'sentence 2 ("sessions-cache hit ratio fell to 0.12.") cites F7, which is not a finding '
        "of this investigation (the findings are F2, F1, F3)"
    ]


def test_a_number_no_cited_finding_contains_is_rejected():
    assert check("sessions-cache hit ratio fell to 0.35 at 12:02 UTC.", ["F1"]) == [
        'sentence 2 ("sessions-cache hit ratio fell to 0.35 at 12:02 UTC.") states 0.35, '
        "not found in F1"
    ]


def test_a_number_from_another_finding_needs_that_finding_cited():
    reasons = check("sessions-cache collapsed and traffic reached 655 requests per minute.", ["F1"])
    assert reasons == [
        'sentence 2 ("sessions-cache collapsed and traffic reached 655 requests '
        'p…") states 655, not found in F1'
    ]
    assert (
        check("sessions-cache collapsed and traffic reached 655 requests per minute.", ["F1", "F2"])
        == []
    )


def test_times_dates_and_names_are_checked_together():
    reasons = check(
        "A deploy of payments-v9 at 11:47 on 2026-01-04 emptied sessions-cache.", ["F1"]
    )
    assert reasons == [
        'sentence 2 ("A deploy of payments-v9 at 11:47 on 2026-01-04 emptied '
        'sess…") states 11:47, 2026-01-04 and "payments-v9", not found in '
        "F1"
    ]


def test_a_class_name_in_camel_case_counts_as_an_entity():
    assert check("checkout raised TimeoutError.", ["F3"]) == [
        'sentence 2 ("checkout raised TimeoutError.") states "TimeoutError", not found in F3'
    ]


def test_text_planted_in_a_log_line_never_supports_a_claim():
    assert "payments-v9" in PLANTED_LOG and "11:47" in PLANTED_LOG and "97%" in PLANTED_LOG
    reasons = check("The root cause is deploy payments-v9 at 11:47; 97% of orders failed.", ["F3"])
    assert reasons == [
        'sentence 2 ("The root cause is deploy payments-v9 at 11:47; 97% of '
        'order…") states 97%, 11:47 and "payments-v9", not found in F3',
        'sentence 2 ("The root cause is deploy payments-v9 at 11:47; 97% of '
        'order…") names PaymentDeclinedError on checkout (F3) as the cause; the ranked cause '
        "is sessions-cache hit ratio collapsed (F1)",
    ]


def test_log_lines_nested_in_facts_support_nothing_either():
    record = investigation()
    record.findings[2].facts["samples"] = [PLANTED_LOG, {"line": PLANTED_LOG}]
    sentence = SentenceRecord(text="A deploy of payments-v9 broke checkout.", finding_ids=["F3"])
    assert verify([headline(), sentence], record) == [
        'sentence 2 ("A deploy of payments-v9 broke checkout.") states "payments-v9", '
        "not found in F3"
    ]


def test_a_sentence_must_cite_and_must_say_something_its_findings_say():
    assert check("sessions-cache collapsed.", []) == [
        'sentence 2 ("sessions-cache collapsed.") cites no finding; every sentence must cite '
        "the findings it rests on"
    ]
    assert check("Nothing needs to be done tonight.", ["F1"]) == [
        'sentence 2 ("Nothing needs to be done tonight.") shares no name, number or word with '
        "F1: say what those findings say"
    ]


def test_mentioning_a_finding_without_citing_it_is_rejected():
    assert check("F2 came first.", ["F1"]) == [
        'sentence 2 ("F2 came first.") mentions F2 without citing it'
    ]


def test_secrets_in_a_sentence_are_rejected():
    reasons = check("sessions-cache failed for alice@example.com.", ["F1"])
    assert reasons[0] == (
        'sentence 2 ("sessions-cache failed for alice@example.com.") contains '
        "what looks like a secret (email)"
    )


def test_a_narrative_needs_exactly_one_headline():
    fact = SentenceRecord(text="sessions-cache hit ratio fell to 0.12.", finding_ids=["F1"])
    assert verify([fact], investigation()) == ["the narrative needs exactly one headline, found 0"]


def test_the_deterministic_narrator_passes_its_own_verifier():
    for record in (investigation(), investigation(with_findings=False)):
        narrative = narrate_deterministic(record)
        assert narrative.verified
        assert verify(narrative.sentences, record) == []


def test_deterministic_prose_tells_a_story_from_cause_to_effect():
    narrative = narrate_deterministic(investigation())
    assert [(s.kind, s.text, s.finding_ids) for s in narrative.sentences] == [
        (
            "headline",
            "sessions-cache hit ratio collapsed — the most likely cause of "
            "CheckoutErrors on checkout.",
            ["F1"],
        ),
        # What the alert saw, then the cause behind it, then the chain from cause to effect.
        (
            "fact",
            "CheckoutErrors fired on checkout: checkout went from 210 to 655 requests per "
            "minute at 12:05 UTC.",
            ["F2"],
        ),
        (
            "fact",
            "Behind it, sessions-cache hit ratio fell from 0.91 to 0.12 at 12:02 UTC.",
            ["F1"],
        ),
        (
            "fact",
            "sessions-cache hit ratio collapsed, which led to traffic to checkout up 3.1x.",
            ["F1", "F2"],
        ),
        (
            "hypothesis",
            "PaymentDeclinedError on checkout may also contribute (code on checkout).",
            ["F3"],
        ),
        # "Scale out checkout" (F2's remedy) is left out: the cause explains F2.
        ("next_step", "Warm sessions-cache before adding capacity.", ["F1"]),
    ]
    assert narrative.text.startswith("sessions-cache hit ratio collapsed — the most likely")
    assert narrative.text.endswith("\n\nNext steps: Warm sessions-cache before adding capacity.")


def test_when_nothing_was_found_the_narrative_says_what_ran():
    narrative = narrate_deterministic(investigation(with_findings=False))
    assert [s.text for s in narrative.sentences] == [
        "No analyzer found anything notable for CheckoutErrors on checkout.",
        "1 invocation ran (1 timeout).",
        "1 did not finish; the cause may be in what they would have checked.",
    ]


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        (
            "GET https://bob:hunter2@db.internal/x",
            "GET https://bob:[redacted password]@db.internal/x",
            "password",
        ),
        (
            "Authorization: Bearer abc123def456ghi789",
            "Authorization: Bearer [redacted bearer-token]",
            "bearer-token",
        ),
        (
            "key sk-ant-api03-abcdefghijklmnop used",
            "key [redacted anthropic-key] used",
            "anthropic-key",
        ),
        ("aws AKIAABCDEFGHIJKLMNOP", "aws [redacted aws-access-key-id]", "aws-access-key-id"),
        ("login by alice.smith@example.co.uk", "login by [redacted email]", "email"),
        ("password=s3cret&user=bob", "password=[redacted password]&user=bob", "password"),
        ('{"api_key": "abc123XYZ789"}', '{"api_key": "[redacted secret]"}', "secret"),
    ],
)
def test_redaction_replaces_secrets_and_names_them(text, expected, kind):
    assert redact(text) == expected
    assert kind in secrets_in(text)
    assert redact(expected) == expected


def test_redaction_leaves_ordinary_telemetry_alone():
    text = "image-api logged 13,201 errors at 23:30 UTC; basic understanding of bearer tokens"
    assert redact(text) == text
    assert secrets_in(text) == []
