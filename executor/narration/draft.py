"""The narrative a model must return, as pydantic models; the tool schema is derived from them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from casebook.executor.record import SentenceRecord

TOOL_NAME = "write_narrative"


class DraftSentence(BaseModel):
    """One sentence and the findings it rests on."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(
        min_length=1,
        max_length=400,
        description="one plain-text sentence, no finding ids or markup in it",
    )
    finding_ids: list[str] = Field(
        min_length=1, max_length=8, description='ids of the findings it rests on, e.g. ["F3"]'
    )


class NarrativeDraft(BaseModel):
    """A headline, established facts, hypotheses kept apart, and next steps."""

    model_config = ConfigDict(extra="forbid")

    headline: DraftSentence = Field(description="the most likely cause, in under 20 words")
    facts: list[DraftSentence] = Field(
        min_length=1, max_length=8, description="what the findings establish, most important first"
    )
    hypotheses: list[DraftSentence] = Field(
        default_factory=list,
        max_length=4,
        description="interpretations the findings suggest but do not establish",
    )
    next_steps: list[DraftSentence] = Field(
        default_factory=list,
        max_length=4,
        description="what the on-call engineer should do or check next",
    )

    def sentences(self) -> list[SentenceRecord]:
        """The draft as typed sentences, in reading order."""
        out = [
            SentenceRecord(
                text=self.headline.text.strip(),
                finding_ids=self.headline.finding_ids,
                kind="headline",
            )
        ]
        for kind, items in (
            ("fact", self.facts),
            ("hypothesis", self.hypotheses),
            ("next_step", self.next_steps),
        ):
            out.extend(
                SentenceRecord(text=s.text.strip(), finding_ids=s.finding_ids, kind=kind)
                for s in items
            )
        return out


def tool_definition() -> dict[str, Any]:
    """The write_narrative tool, its input schema derived from NarrativeDraft."""
    return {
        "name": TOOL_NAME,
        "description": "Record the narrative of the investigation. Every sentence cites the ids "
        "of the findings it rests on.",
        "input_schema": _inlined(NarrativeDraft.model_json_schema()),
    }


def parse_draft(payload: Any) -> tuple[NarrativeDraft | None, list[str]]:
    """The draft in a tool call's input, or the reasons it does not fit the schema."""
    try:
        return NarrativeDraft.model_validate(payload), []
    except ValidationError as exc:
        return None, [
            f"{'.'.join(str(p) for p in error['loc']) or 'input'}: {error['msg']}"
            for error in exc.errors()
        ]


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with its $defs references replaced by the definitions themselves."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                target = resolve(defs[node["$ref"].rsplit("/", 1)[-1]])
                return {**target, **{k: resolve(v) for k, v in node.items() if k != "$ref"}}
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)
