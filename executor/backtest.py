"""Backtest: replay labelled incidents (case directories) through the current analyzers."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from casebook.executor.datasets.casedir import CASE_FILES
from casebook.executor.errors import UserError
from casebook.executor.record import CauseRecord, InvestigationRecord
from casebook.sdk.drilldown import parse_slice


@dataclass
class CaseResult:
    case: str
    dataset: str
    expected: list[dict[str, Any]]
    ranked: list[dict[str, Any]]
    top1: bool
    top3: bool
    categories: list[str]
    slices: tuple[int, int, int] | None = None  # tp, fp, fn
    investigation_id: str = ""
    error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    klass: str | None = None  # the fault class a generated case declares


def is_case(path: Path) -> bool:
    return path.is_dir() and all((path / name).is_file() for name in CASE_FILES) and (
        path / "telemetry").is_dir()


def find_cases(roots: Iterable[Path]) -> list[Path]:
    """Case directories: each root if it is one, else every case directory below it."""
    found: list[Path] = []
    for root in roots:
        if not root.exists():
            raise UserError(f"{root} does not exist")
        if is_case(root):
            found.append(root)
            continue
        below = sorted(p.parent for p in root.rglob("expected.json") if is_case(p.parent))
        if not below:
            raise UserError(f"{root} holds no case directory (a folder with alert.json, "
                            "expected.json and telemetry/); `casebook datasets convert` makes "
                            "them from public data sets")
        found.extend(below)
    return list(dict.fromkeys(found))


def matches(cause: dict[str, Any] | CauseRecord, expected: dict[str, Any]) -> bool:
    """A ranked cause matches an expected one on entity (kind and name) and, if given, category."""
    if isinstance(cause, CauseRecord):
        cause = cause.model_dump()
    want = expected.get("entity") or {}
    got = cause.get("entity") or {}
    if want.get("kind") != got.get("kind"):
        return False
    if want.get("kind") == "slice":
        if _slice(want.get("name", "")) != _slice(got.get("name", "")):
            return False
    elif str(want.get("name")) != str(got.get("name")):
        return False
    category = expected.get("category")
    return not category or category == cause.get("category")


def _slice(name: str) -> frozenset[tuple[str, str]]:
    """A slice as its set of (dimension, value) pairs: matching ignores their order."""
    return frozenset(parse_slice(str(name)).items())


def score_case(case: Path, record: InvestigationRecord, expected: list[dict[str, Any]],
               meta: dict[str, Any]) -> CaseResult:
    ranked = [c.model_dump(mode="json") for c in record.causes]
    top1 = bool(ranked) and any(matches(ranked[0], e) for e in expected)
    top3 = any(matches(c, e) for c in ranked[:3] for e in expected)
    slices = None
    if expected and all((e.get("entity") or {}).get("kind") == "slice" for e in expected):
        predicted = {_slice(c["entity"]["name"]) for c in ranked if c["entity"]["kind"] == "slice"}
        truth = {_slice(e["entity"]["name"]) for e in expected}
        slices = (len(predicted & truth), len(predicted - truth), len(truth - predicted))
    categories = sorted({e.get("category") or "unspecified" for e in expected})
    return CaseResult(case=case.name, dataset=dataset_of(case, meta), expected=expected,
                      ranked=ranked, top1=top1, top3=top3, categories=categories, slices=slices,
                      investigation_id=record.id, meta=meta)


def dataset_of(case: Path, meta: dict[str, Any]) -> str:
    if meta.get("dataset"):
        scenario = meta.get("scenario")
        return f"{meta['dataset']}/{scenario}" if scenario and meta["dataset"] == "petshop" \
            else str(meta["dataset"])
    return case.parent.name or "cases"


def run_backtest(
    cases: list[Path],
    *,
    registry: Any,
    runtime: Any,
    results: Any = None,
    on_case: Callable[[CaseResult], None] | None = None,
    work_dir: Path | None = None,
) -> list[CaseResult]:
    """Investigate every case with the production executor and score its ranked causes."""
    from casebook.executor.alerts import load_alerts
    from casebook.executor.ingest import ingest
    from casebook.executor.pipeline import investigate
    from casebook.executor.telemetry_store import TelemetryStore

    outcomes: list[CaseResult] = []
    with tempfile.TemporaryDirectory(prefix="casebook-backtest-", dir=work_dir) as scratch:
        for index, case in enumerate(cases):
            declared = json.loads((case / "expected.json").read_text())
            expected = declared.get("causes", [])
            meta_path = case / "case.json"
            meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
            try:
                alerts = [a for a in load_alerts(case / "alert.json") if a.status == "firing"]
                if not alerts:
                    raise UserError(f"{case}/alert.json holds no firing alert")
                store_path = Path(scratch) / f"store-{index}"
                store = TelemetryStore.open(store_path, create=True)
                files = sorted(p for p in (case / "telemetry").iterdir() if p.is_file())
                ingest(files, store)
                record = investigate(alerts[0], telemetry=store_path, registry=registry,
                                     runtime=runtime, results=results, narrate=False)
                outcome = score_case(case, record, expected, meta)
            except UserError as exc:
                outcome = CaseResult(case=case.name, dataset=dataset_of(case, meta),
                                     expected=expected, ranked=[], top1=False, top3=False,
                                     categories=sorted({e.get("category") or "unspecified"
                                                        for e in expected}),
                                     error=str(exc), meta=meta)
            outcome.klass = declared.get("class")
            outcomes.append(outcome)
            if on_case is not None:
                on_case(outcome)
    return outcomes


def summarize(results: list[CaseResult]) -> dict[str, Any]:
    """Top-1 / top-3 overall, per category and per data set; slice precision, recall, F1."""

    def accuracy(group: list[CaseResult]) -> dict[str, Any]:
        n = len(group)
        return {"cases": n, "top1": round(sum(r.top1 for r in group) / n, 4) if n else 0.0,
                "top3": round(sum(r.top3 for r in group) / n, 4) if n else 0.0}

    per_category: dict[str, list[CaseResult]] = {}
    per_dataset: dict[str, list[CaseResult]] = {}
    per_class: dict[str, list[CaseResult]] = {}
    for result in results:
        if result.klass:
            per_class.setdefault(result.klass, []).append(result)
        for category in result.categories:
            per_category.setdefault(category, []).append(result)
        per_dataset.setdefault(result.dataset, []).append(result)
        metric = result.meta.get("metric")
        if metric:
            per_dataset.setdefault(f"{result.dataset}/{metric}", []).append(result)
    summary: dict[str, Any] = {
        **accuracy(results),
        "per_category": {k: accuracy(v) for k, v in sorted(per_category.items())},
        "per_dataset": {k: accuracy(v) for k, v in sorted(per_dataset.items())},
        "errors": sum(1 for r in results if r.error),
    }
    if per_class:  # generated cases declare their fault class
        summary["per_class"] = {k: accuracy(v) for k, v in sorted(per_class.items())}
    sliced = [r.slices for r in results if r.slices is not None]
    if sliced:
        tp, fp, fn = (sum(s[i] for s in sliced) for i in range(3))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        summary["slices"] = {"cases": len(sliced), "tp": tp, "fp": fp, "fn": fn,
                             "precision": round(precision, 4), "recall": round(recall, 4),
                             "f1": round(f1, 4)}
    summary["per_case"] = [
        {"case": r.case, "dataset": r.dataset, "class": r.klass, "expected": r.expected,
         "ranked": r.ranked[:5], "top1": r.top1, "top3": r.top3, "error": r.error,
         "investigation_id": r.investigation_id}
        for r in results
    ]
    return summary
