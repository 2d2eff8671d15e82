"""Whether an investigation that ran to the end answered anything, and if not, why.

An investigation whose every runnable invocation failed (error, timeout, crashed, oom; none
found or nothing) has no basis for its "no cause found": it is `failed`, and the reason names
what the failures have in common, so a misconfiguration (a store the workers cannot read, a
missing pack on a node) reads as one line instead of as a quiet empty report.

`skipped` invocations are not runnable: an analyzer skips by design when the store holds none of
the data it declares for the window, or when the upstream finding it reads is absent (which
includes an upstream that failed: that failure is counted where it happened). An investigation
of only skipped invocations ran correctly and learnt that nothing it knows applies to this
data; it stays `done`, with a note saying so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from casebook.executor.record import InvocationRecord

ANSWERED = ("found", "nothing")
FAILED = ("error", "timeout", "crashed", "oom")
STORE_UNREADABLE = "the worker could not open the investigation"


def failure_of(invocations: Sequence[InvocationRecord]) -> str | None:
    """Why the investigation failed, or None when at least one invocation answered.

    >>> failure_of([InvocationRecord(key="a", analyzer="a", status="error", error="boom")])
    'every invocation failed: boom'
    """
    runnable = [i for i in invocations if i.status != "skipped"]
    if not runnable or any(i.status in ANSWERED for i in runnable):
        return None
    reasons = Counter(_first_line(i.error) or f"ended {i.status}" for i in runnable)
    reason, count = reasons.most_common(1)[0]
    if reason.startswith(STORE_UNREADABLE):
        reason += (
            " (on a Ray cluster every node must read the telemetry store at the same path, "
            "or from s3://; see docs/scale.md)"
        )
    if len(reasons) == 1:
        return f"every invocation failed: {reason}"
    statuses = Counter(i.status for i in runnable)
    tally = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    return (
        f"every invocation failed ({tally}); the most common reason, {count} of "
        f"{len(runnable)}: {reason}"
    )


def skipped_note(invocations: Sequence[InvocationRecord]) -> str | None:
    """A note for an investigation whose every invocation was skipped, else None."""
    if not invocations or any(i.status != "skipped" for i in invocations):
        return None
    reasons = Counter(_first_line(i.error) for i in invocations if i.error)
    why = f" (most often: {reasons.most_common(1)[0][0]})" if reasons else ""
    return f"No analyzer ran: all {len(invocations)} applicable invocations were skipped{why}"


def _first_line(text: str | None) -> str:
    return text.strip().splitlines()[0].strip() if text and text.strip() else ""
