"""How long narration takes to give up on a misbehaving Messages API, against its deadline.

Runs the real `anthropic` client against the loopback fake of the API used by the tests
(tests/fakes/anthropic_server.py) with CASEBOOK_NARRATOR_TIMEOUT_S=3 and prints, per case, the
seconds narration took and the recorded fallback reason. Usage:

    python benchmarks/narration_deadline.py [--deadline 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fakes"))

from anthropic_server import (  # noqa: E402
    FakeAnthropic,
    never_answers,
    status,
    tool_answer,
    trickled,
)
from investigation_records import good_answer, investigation  # noqa: E402


def retry_after(code: int, seconds: str):
    reply = status(code, retry_after_ms=None)
    reply.headers["retry-after"] = seconds
    return reply


CASES = {
    "429 retry-after 3600": lambda: [retry_after(429, "3600")],
    "529 overloaded (retry-after 0.3 s), forever": lambda: [status(529, retry_after_ms=300)] * 500,
    "500 server error, forever": lambda: [status(500, retry_after_ms=None)] * 500,
    "body trickled 1 byte/s": lambda: [trickled(1.0, tool_answer(good_answer()))],
    "never answers": lambda: [never_answers()],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deadline", type=float, default=3.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from casebook.executor.narration import narrate

    os.environ.update({
        "ANTHROPIC_API_KEY": "sk-ant-bench-0000000000000000",
        "CASEBOOK_NARRATOR_TIMEOUT_S": str(args.deadline),
        "CASEBOOK_NARRATOR_RETRIES": "1000",
        "CASEBOOK_NARRATOR_LEDGER": str(Path(tempfile.mkdtemp()) / "ledger.json"),
    })
    import anthropic  # noqa: F401 - imported before timing: its import is not narration time

    results = []
    for name, replies in CASES.items():
        with FakeAnthropic(replies()) as fake:
            os.environ["ANTHROPIC_BASE_URL"] = fake.base_url
            started = time.monotonic()
            narrative = narrate(investigation())
            elapsed = time.monotonic() - started
        results.append({"case": name, "deadline_s": args.deadline, "elapsed_s": round(elapsed, 2),
                        "requests": len(fake.requests), "reason": narrative.fallback_reason})
    if args.json:
        print(json.dumps(results, indent=1))
        return
    for row in results:
        print(f"{row['case']:<46} {row['elapsed_s']:>6.2f} s  ({row['requests']} requests) "
              f"{row['reason']}")


if __name__ == "__main__":
    main()
