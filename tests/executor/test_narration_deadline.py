"""The narration deadline and the token budgets, through the real `anthropic` client.

No wall-time assertions: the recorded fallback reason says the deadline was reached and the call
was abandoned (benchmarks/narration_deadline.py measures how long each case takes).
"""

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "fakes"))

from anthropic_server import (  # noqa: E402
    FakeAnthropic,
    Reply,
    never_answers,
    slow,
    status,
    tool_answer,
    trickled,
)
from investigation_records import good_answer, investigation  # noqa: E402

from casebook.executor.narration import narrate  # noqa: E402
from casebook.executor.narration.budget import DailyLedger  # noqa: E402

API_KEY = "sk-ant-test-0000000000000000"


@pytest.fixture
def env(monkeypatch, tmp_path):
    for name in ("CASEBOOK_NARRATOR", "CASEBOOK_NARRATOR_MODEL", "CASEBOOK_NARRATOR_MAX_TOKENS",
                 "CASEBOOK_TOKEN_BUDGET_INVESTIGATION", "CASEBOOK_TOKEN_BUDGET_DAY",
                 "CASEBOOK_NARRATOR_PRICES", "ANTHROPIC_CUSTOM_HEADERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    monkeypatch.setenv("CASEBOOK_NARRATOR_LEDGER", str(tmp_path / "ledger.json"))
    monkeypatch.setenv("CASEBOOK_NARRATOR_RETRIES", "20")
    monkeypatch.setenv("CASEBOOK_NARRATOR_TIMEOUT_S", "1")
    return monkeypatch


def run(env, replies):
    with FakeAnthropic(replies) as fake:
        env.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        narrative = narrate(investigation())
    return narrative, fake


def retry_after(code: int, seconds: str) -> Reply:
    reply = status(code, retry_after_ms=None)
    reply.headers["retry-after"] = seconds
    return reply


def test_a_retry_after_beyond_the_deadline_falls_back_at_once(env):
    narrative, fake = run(env, [retry_after(429, "3600")])
    assert len(fake.requests) == 1
    assert narrative.narrator == "deterministic"
    reason = narrative.fallback_reason
    assert reason.startswith(
        "The Claude API rate-limited the request (HTTP 429) and asked to retry after 3600 s, "
        "more than the "
    )
    assert reason.endswith(
        " s left of the narration deadline of 1 s, so the call was abandoned "
        "(CASEBOOK_NARRATOR_TIMEOUT_S)."
    )


@pytest.mark.parametrize("code", [529, 500, 503])
def test_overload_and_server_errors_are_retried_only_inside_the_deadline(env, code):
    narrative, fake = run(env, [status(code, retry_after_ms=300)] * 50)
    # How many retries fit in the second depends on the machine's load; that it stops well
    # before the 50 answers run out does not.
    assert 1 <= len(fake.requests) < 50
    assert narrative.narrator == "deterministic"
    reason = narrative.fallback_reason
    assert f"HTTP {code}" in reason and "narration deadline of 1 s" in reason
    assert reason.endswith("the call was abandoned (CASEBOOK_NARRATOR_TIMEOUT_S).")


def test_a_body_trickled_a_byte_at_a_time_is_cut_off_at_the_deadline(env):
    narrative, fake = run(env, [trickled(0.2, tool_answer(good_answer()))])
    assert len(fake.requests) == 1
    assert narrative.narrator == "deterministic"
    assert narrative.fallback_reason == (
        "The narration deadline of 1 s was reached while waiting for Claude's answer "
        "(attempt 1); the call was abandoned (CASEBOOK_NARRATOR_TIMEOUT_S)."
    )


def test_a_server_that_never_answers_is_abandoned_at_the_deadline(env):
    narrative, fake = run(env, [never_answers()])
    assert len(fake.requests) == 1
    assert narrative.fallback_reason == (
        "The narration deadline of 1 s was reached while waiting for Claude's answer "
        "(attempt 1); the call was abandoned (CASEBOOK_NARRATOR_TIMEOUT_S)."
    )
    # An abandoned call may have been billed: its reservation is charged, not forgotten.
    assert narrative.tokens_in > 0 and narrative.tokens_out == 0


def test_the_deadline_covers_the_retry_after_a_rejected_answer(env):
    # Room for the first answer and its verification on a loaded machine; the second attempt
    # never answers, so the deadline ends the call whatever the machine's speed.
    env.setenv("CASEBOOK_NARRATOR_TIMEOUT_S", "3")
    wrong = good_answer()
    wrong["facts"][0]["text"] = "sessions-cache hit ratio fell to 35% at 12:02 UTC."
    narrative, fake = run(env, [tool_answer(wrong), never_answers()])
    assert len(fake.requests) == 2 and len(narrative.rejections) == 1
    assert narrative.fallback_reason.endswith(
        "(attempt 1); the call was abandoned (CASEBOOK_NARRATOR_TIMEOUT_S)."
    )


def test_the_budget_is_charged_what_the_api_reports_not_the_estimate(env):
    env.setenv("CASEBOOK_TOKEN_BUDGET_INVESTIGATION", "6000")
    wrong = good_answer()
    wrong["facts"][0]["finding_ids"] = ["F9"]
    narrative, fake = run(env, [tool_answer(wrong, tokens_in=15000, tokens_out=1900)])
    assert len(fake.requests) == 1
    assert (narrative.tokens_in, narrative.tokens_out) == (15000, 1900)
    assert narrative.fallback_reason.endswith(
        "this investigation has 0 of its 6,000 left (CASEBOOK_TOKEN_BUDGET_INVESTIGATION)."
    )


def test_a_call_is_refused_when_the_budget_left_cannot_cover_max_tokens(env):
    env.setenv("CASEBOOK_NARRATOR_MAX_TOKENS", "4000")
    env.setenv("CASEBOOK_TOKEN_BUDGET_DAY", "4500")
    narrative, fake = run(env, [])
    assert fake.requests == []
    assert narrative.fallback_reason.startswith(
        "Claude was not asked: the daily token budget is spent: 0 of 4,500 tokens used or "
        "reserved today (UTC) and this narration needs up to "
    )


def test_concurrent_investigations_cannot_together_pass_the_daily_budget(env, tmp_path):
    env.setenv("CASEBOOK_TOKEN_BUDGET_DAY", "8000")
    env.setenv("CASEBOOK_NARRATOR_TIMEOUT_S", "10")
    narratives = []
    with FakeAnthropic([slow(0.5, tool_answer(good_answer(), tokens_in=3000, tokens_out=400))
                        for _ in range(3)]) as fake:
        env.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        threads = [threading.Thread(target=lambda: narratives.append(narrate(investigation())))
                   for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    narrators = sorted(n.narrator for n in narratives)
    assert narrators == ["claude", "deterministic", "deterministic"]
    assert len(fake.requests) == 1
    refused = [n.fallback_reason for n in narratives if n.narrator == "deterministic"]
    assert all("the daily token budget is spent" in reason for reason in refused)
    [day] = json.loads((tmp_path / "ledger.json").read_text()).values()
    assert day == {"tokens_in": 3000, "tokens_out": 400, "cost_usd": 0.015, "calls": 1}


def test_the_ledger_holds_a_reservation_for_other_processes(tmp_path):
    ledger = DailyLedger(tmp_path / "ledger.json")
    rid, before = ledger.reserve(5000, per_day=8000)
    assert rid is not None and before == 0
    code = (
        "import sys; from pathlib import Path; "
        "from casebook.executor.narration.budget import DailyLedger; "
        f"print(DailyLedger(Path({str(tmp_path / 'ledger.json')!r})).reserve(5000, 8000))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(None, 5000)"
    ledger.settle(rid, 1200, 300, 0.0081)
    assert ledger.spent_today() == 1500
