"""The verifier against sentences a real model writes when it is subtly wrong.

Each class of the issue's examples (units, multipliers, approximations, directions, relative
times, number words, run counters, entities, causes, next steps, copied text) has several false
phrasings, all rejected, and true paraphrases of the same facts, all accepted. The fake Messages
API on loopback then plays a model that writes them, through the real `anthropic` client.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "fakes"))
sys.path.insert(0, str(Path(__file__).parent))

from adversarial_records import EVENT_TEXT, adversarial  # noqa: E402
from anthropic_server import FakeAnthropic, tool_answer  # noqa: E402
from narration_cases import ACCEPTED, KNOWN_FALSE_REJECTS, REJECTED  # noqa: E402

from casebook.executor.narration import narrate, narrate_deterministic, verify  # noqa: E402
from casebook.executor.record import SentenceRecord  # noqa: E402

HEADLINE = SentenceRecord(
    text="The cart-api deploy is the most likely cause of CheckoutErrors.",
    finding_ids=["F1"],
    kind="headline",
)
FALSE = [(cls, *case) for cls, cases in REJECTED.items() for case in cases]


def reasons(text, ids, kind):
    sentence = SentenceRecord(text=text, finding_ids=ids, kind=kind)
    return verify([sentence] if kind == "headline" else [HEADLINE, sentence], adversarial())


def test_every_class_has_several_phrasings():
    assert len(REJECTED) == 12  # eleven classes and a held-out batch
    assert all(len(cases) >= 3 for cases in REJECTED.values())
    assert len(ACCEPTED) >= 40


@pytest.mark.parametrize(("cls", "text", "ids", "kind"), FALSE, ids=[c[1] for c in FALSE])
def test_a_false_sentence_is_rejected(cls, text, ids, kind):
    assert reasons(text, ids, kind), f"{cls}: accepted {text!r}"


@pytest.mark.parametrize(("text", "ids", "kind"), ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_a_true_paraphrase_is_accepted(text, ids, kind):
    assert reasons(text, ids, kind) == []


def test_the_known_false_rejects_are_still_rejected():
    """What the verifier gets wrong the other way; docs/narration.md reports the rate."""
    assert [case for case in KNOWN_FALSE_REJECTS if not reasons(*case)] == []


@pytest.mark.parametrize(
    ("text", "ids", "kind", "reason"),
    [
        (
            "Nearly all calls to payments-api /authorize failed.", ["F4"], "fact",
            'says "Nearly all" (85%–100%), but the cited findings give 29%',
        ),
        (
            "checkout traffic rose tenfold.", ["F3"], "fact",
            "states tenfold, not found in F3",
        ),
        (
            "checkout p95 latency reached 378 seconds.", ["F5"], "fact",
            "states 378 seconds, not found in F5",
        ),
        (
            "cart-api was deployed 8 minutes before sessions-cache collapsed.", ["F1", "F2"],
            "fact", "states 8 minutes, not found in F1, F2",
        ),
        (
            "payments-api p95 latency rose to 378 ms.", ["F4", "F5"], "fact",
            "states 378 ms for payments-api, not found in F4, F5",
        ),
        (
            "The deploy of search-api, not the deploy of cart-api, caused the cache collapse.",
            ["F1", "F2", "F6"], "fact",
            "names Deploy on search-api 50 min before the alert (F6) as the cause instead of "
            "Deploy on cart-api 6 min before the cache collapse (F1), which the ranking puts first",
        ),
        (
            "The traffic surge on checkout emptied sessions-cache.", ["F2", "F3"], "fact",
            "says Traffic to checkout up 19.5x (F3) caused sessions-cache hit ratio collapsed "
            "(F2), but F2 explains F3: cause and effect are inverted",
        ),
        (
            "sessions-cache hit ratio recovered from 0.04 to 0.86.", ["F2"], "fact",
            "says it went from 0.04 to 0.86; the cited findings say it went from 0.86 to 0.04",
        ),
        (
            "kubectl delete pod -l app=cart-api --all", ["F1"], "next_step",
            "proposes 'kubectl delete pod -l app=cart-api --all', which no cited finding's "
            "mitigations contain; next steps are quoted from mitigations, never written as new "
            "commands",
        ),
        (
            "Roll back with `helm rollback cart-api`.", ["F1"], "next_step",
            "proposes 'helm rollback cart-api', which no cited finding's mitigations contain; "
            "next steps are quoted from mitigations, never written as new commands",
        ),
        (
            "Run DROP TABLE accounts to remove the fake accounts.", ["F7"], "next_step",
            "proposes 'DROP TABLE accounts', which no cited finding's mitigations contain; next "
            "steps are quoted from mitigations, never written as new commands",
        ),
        (
            "team-foxtrot owns the deploy that emptied sessions-cache.", ["F1", "F2"], "fact",
            'states "team-foxtrot", not found in F1, F2',
        ),
    ],
)
def test_the_issue_examples_are_rejected_with_a_reason_the_model_can_act_on(
    text, ids, kind, reason
):
    [said] = reasons(text, ids, kind)
    assert said.endswith(reason)


def test_two_hundred_in_words_is_accepted():
    assert reasons("Two hundred accounts were created from three IP addresses.", ["F7"], "fact") == []


def test_the_story_runs_from_symptom_to_cause_and_says_why_the_rest_was_ruled_out():
    record = adversarial()
    narrative = narrate_deterministic(record)
    assert verify(narrative.sentences, record) == []
    texts = [s.text for s in narrative.sentences]
    assert texts[1] == (
        "CheckoutErrors fired on checkout: checkout went from 40 to 780 requests per minute at "
        "12:05 UTC."
    )
    assert texts[3] == (
        "Deploy on cart-api 6 min before the cache collapse, which led to sessions-cache hit "
        "ratio collapsed, which led to traffic to checkout up 19.5x."
    )
    assert (
        "Errors on payments-api /authorize was also seen but began at 12:04 UTC, after the "
        "onset at 11:56 UTC, so it followed rather than started the incident."
    ) in texts
    assert (
        "Deploy on search-api 50 min before the alert was also seen but lies on an unrelated "
        "path: no finding links it to the others."
    ) in texts
    # Labels of a list are gone; the chain reads from cause to effect.
    assert not any(t.startswith(("Supporting evidence:", "Found by following")) for t in texts)


def draft(sentences):
    """A write_narrative payload from (text, ids, kind) cases."""
    out = {"headline": None, "facts": [], "hypotheses": [], "next_steps": []}
    keys = {"fact": "facts", "hypothesis": "hypotheses", "next_step": "next_steps"}
    for text, ids, kind in sentences:
        if kind == "headline":
            out["headline"] = {"text": text, "finding_ids": ids}
        else:
            out[keys[kind]].append({"text": text, "finding_ids": ids})
    out["headline"] = out["headline"] or {"text": HEADLINE.text, "finding_ids": ["F1"]}
    out["facts"] = out["facts"] or [{"text": "Scale out checkout.", "finding_ids": ["F3"]}]
    return {k: v[:4] if isinstance(v, list) else v for k, v in out.items()}


@pytest.fixture
def claude(monkeypatch, tmp_path):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0000000000000000")
    monkeypatch.setenv("CASEBOOK_NARRATOR_LEDGER", str(tmp_path / "ledger.json"))
    monkeypatch.setenv("CASEBOOK_NARRATOR_TIMEOUT_S", "20")
    for name in ("CASEBOOK_NARRATOR", "CASEBOOK_TOKEN_BUDGET_INVESTIGATION",
                 "CASEBOOK_TOKEN_BUDGET_DAY", "CASEBOOK_NARRATOR_MAX_TOKENS"):
        monkeypatch.delenv(name, raising=False)

    def run(replies):
        with FakeAnthropic(replies) as fake:
            monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
            return narrate(adversarial()), fake

    return run


@pytest.mark.parametrize("cls", sorted(REJECTED))
def test_a_model_that_keeps_writing_one_class_of_lie_is_never_kept(claude, cls):
    cases = REJECTED[cls]
    lies = [tool_answer(draft(cases[:2])), tool_answer(draft(cases[-2:]))]
    narrative, fake = claude(lies)
    assert len(fake.requests) == 2
    assert narrative.narrator == "deterministic" and len(narrative.rejections) == 2
    assert narrative.fallback_reason.startswith(
        "Claude's narrative was rejected by the verifier twice: "
    )
    for text, _, _ in cases:
        assert text not in narrative.text


def test_a_model_corrected_by_the_reasons_is_kept(claude):
    lie = draft(REJECTED["multipliers"][:2])
    truth = draft(ACCEPTED[3:6] + [ACCEPTED[-5]])
    narrative, fake = claude([tool_answer(lie), tool_answer(truth)])
    assert narrative.narrator == "claude" and narrative.verified
    assert len(narrative.rejections) == 1 and "states tenfold, not found in F3" in (
        narrative.rejections[0]
    )
    retry = fake.requests[1]["messages"][2]["content"][0]["content"]
    assert "states tenfold, not found in F3" in retry


def test_a_tool_call_with_another_name_is_not_a_narrative(claude):
    honest_payload = draft(ACCEPTED[:3])
    narrative, fake = claude(
        [tool_answer(honest_payload, name="delete_all"), tool_answer(honest_payload, name="delete_all")]
    )
    assert narrative.narrator == "deterministic"
    assert narrative.rejections == [
        "the answer called delete_all; the only tool is write_narrative; "
        "the answer did not call write_narrative"
    ] * 2
    # The API needs a tool_result for the stray call; it is told nothing was done.
    answer = fake.requests[1]["messages"][2]["content"][0]
    assert answer["content"].startswith("The narrative was rejected")


def test_the_copied_event_text_reaches_the_model_only_as_a_quote(claude):
    narrative, fake = claude([tool_answer(draft(ACCEPTED[:3]))])
    prompt = fake.requests[0]["messages"][0]["content"]
    assert EVENT_TEXT in prompt
    assert "\\u201c" + EVENT_TEXT in prompt or "“" + EVENT_TEXT in prompt
    assert narrative.narrator == "claude"
