"""From typed sentences to the stored narrative: the same plain-text layout for every narrator."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from casebook.executor.record import NarrativeRecord, SentenceRecord

SECTION_TITLES = {"hypothesis": "Hypotheses", "next_step": "Next steps"}


def plain_text(sentences: Sequence[SentenceRecord]) -> str:
    """Headline, then facts, then hypotheses and next steps, each block a paragraph."""
    blocks = []
    headline = [s.text for s in sentences if s.kind == "headline"]
    if headline:
        blocks.append(" ".join(headline))
    facts = [s.text for s in sentences if s.kind == "fact"]
    if facts:
        blocks.append(" ".join(facts))
    for kind, title in SECTION_TITLES.items():
        texts = [s.text for s in sentences if s.kind == kind]
        if texts:
            blocks.append(f"{title}: " + " ".join(texts))
    return "\n\n".join(blocks)


def assemble(
    sentences: Sequence[SentenceRecord], *, narrator: str, verified: bool, **details: Any
) -> NarrativeRecord:
    """A NarrativeRecord whose text and headline come from its sentences."""
    headline = next((s.text for s in sentences if s.kind == "headline"), "")
    return NarrativeRecord(
        narrator=narrator,
        text=plain_text(sentences),
        sentences=list(sentences),
        verified=verified,
        headline=headline,
        **details,
    )
