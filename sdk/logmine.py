"""Log pattern mining: group messages into templates and find those that appeared or changed rate."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from casebook.sdk.series import seconds

# Variable parts replaced before clustering, most specific first.
MASKS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "<UUID>",
        re.compile(
            r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
        ),
    ),
    (
        "<TIME>",
        re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"),
    ),
    ("<IP>", re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?(?![\d.])")),
    (
        "<HEX>",
        re.compile(
            r"\b0[xX][0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"
        ),
    ),
    ("<NUM>", re.compile(r"(?<![A-Za-z0-9<])[-+]?\d+(?:\.\d+)?")),
)
# z-score (conditional binomial test of two Poisson rates) from which a rate counts as changed.
CHANGE_Z = 3.0

Status = Literal["new", "gone", "up", "down", "steady"]


@dataclass(frozen=True)
class TemplateChange:
    """One log template with its counts before and after, and how surprising the change is."""

    template: str
    before: int
    after: int
    status: Status
    ratio: float  # after rate / before rate (inf for a new template)
    z: float  # how many standard deviations the after count is from what the before rate predicts
    score: float  # |z| / (|z| + 3), in [0, 1]
    example: str  # one raw message (from after when there is one)


def mask_message(message: str) -> str:
    """The message with ids, addresses, times and numbers replaced by placeholders.

    >>> mask_message("user 42 from 10.0.0.7:8080 took 3.5 ms")
    'user <NUM> from <IP> took <NUM> ms'
    """
    for placeholder, pattern in MASKS:
        message = pattern.sub(placeholder, message)
    return message


def mine_templates(
    before: Iterable[str],
    after: Iterable[str],
    *,
    before_duration: float | timedelta | None = None,
    after_duration: float | timedelta | None = None,
    similarity: float = 0.4,
) -> list[TemplateChange]:
    """Cluster log messages into templates and rank them by how much their rate changed.

    The two periods are taken as equally long unless durations are given. Messages are
    masked (`mask_message`), then clustered with Drain, so `took <NUM> ms` and
    `took <*> ms for <*>` style variations fall together. Most surprising change first.

    >>> changes = mine_templates(["GET /a 200"] * 5, ["GET /b 200"] * 5 + ["DB timeout 3s"] * 9)
    >>> changes[0].template, changes[0].status, changes[0].after
    ('DB timeout <NUM>s', 'new', 9)
    """
    from drain3.drain import Drain  # a light import, kept out of `import casebook.sdk`

    drain = Drain(sim_th=similarity, depth=4, max_children=100, param_str="<*>")
    counts: dict[int, list[int]] = {}
    examples: dict[int, tuple[str, str]] = {}  # cluster -> (first before, first after)
    for period, messages in enumerate((before, after)):
        for message in messages:
            text = str(message)
            cluster, _ = drain.add_log_message(mask_message(text) or "<EMPTY>")
            counts.setdefault(cluster.cluster_id, [0, 0])[period] += 1
            first = examples.get(cluster.cluster_id, ("", ""))
            if not first[period]:
                examples[cluster.cluster_id] = (text, first[1]) if period == 0 else (first[0], text)
    share = _before_share(before_duration, after_duration)
    templates = {c.cluster_id: c.get_template() for c in drain.clusters}
    changes = []
    for cluster_id, (n_before, n_after) in counts.items():
        ex_before, ex_after = examples[cluster_id]
        changes.append(
            _change(templates[cluster_id], n_before, n_after, share, ex_after or ex_before)
        )
    changes.sort(key=lambda c: (-c.score, -c.after, c.template))
    return changes


def _before_share(before: float | timedelta | None, after: float | timedelta | None) -> float:
    """The share of the total time that the before period covers (0.5 when equally long)."""
    if before is None and after is None:
        return 0.5
    if before is None or after is None:
        raise ValueError("mine_templates: give both before_duration and after_duration, or neither")
    b, a = seconds(before), seconds(after)
    if b <= 0 or a <= 0:
        raise ValueError(
            f"mine_templates: durations must be positive, got before={before!r}, after={after!r}"
        )
    return b / (a + b)


def _change(
    template: str, n_before: int, n_after: int, share: float, example: str
) -> TemplateChange:
    total = n_before + n_after
    expected_after = total * (1 - share)
    z = (n_after - expected_after) / math.sqrt(total * share * (1 - share))
    rate_ratio = (n_after / (1 - share)) / (n_before / share) if n_before else math.inf
    status: Status
    if n_before == 0:
        status = "new"
    elif n_after == 0:
        status = "gone"
    elif abs(z) >= CHANGE_Z:
        status = "up" if z > 0 else "down"
    else:
        status = "steady"
    return TemplateChange(
        template=template,
        before=n_before,
        after=n_after,
        status=status,
        ratio=rate_ratio,
        z=z,
        score=abs(z) / (abs(z) + CHANGE_Z),
        example=example,
    )
