"""Token budgets: per investigation (in memory) and per day (a small JSON ledger on disk).

The ledger is one JSON object, {"YYYY-MM-DD": {"tokens_in": n, "tokens_out": n, "cost_usd": x,
"calls": n}}, keyed by UTC day and trimmed to the last 31 days. Writers take an exclusive lock on
a sibling `.lock` file and replace the ledger atomically, so concurrent investigations (the intake
service runs several) never lose each other's spending.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

KEEP_DAYS = 31


class DailyLedger:
    """Tokens spent on narration per UTC day, shared by every process that uses the same file."""

    def __init__(self, path: Path, now=lambda: datetime.now(UTC)):
        self.path = Path(path)
        self._now = now

    def today(self) -> str:
        return self._now().strftime("%Y-%m-%d")

    def spent_today(self) -> int:
        """Input plus output tokens spent today."""
        day = self._read().get(self.today(), {})
        return int(day.get("tokens_in", 0)) + int(day.get("tokens_out", 0))

    def add(self, tokens_in: int, tokens_out: int, cost_usd: float) -> None:
        """Record one call's spending under today's date."""
        with self._locked():
            days = self._read()
            day = days.setdefault(
                self.today(), {"tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0, "calls": 0}
            )
            day["tokens_in"] += tokens_in
            day["tokens_out"] += tokens_out
            day["cost_usd"] = round(day["cost_usd"] + cost_usd, 6)
            day["calls"] += 1
            kept = dict(sorted(days.items())[-KEEP_DAYS:])
            self._write(kept)

    def _read(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, json.JSONDecodeError):
            # A damaged ledger must not stop narration; it restarts from zero for the day.
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, days: dict[str, dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            json.dump(days, handle, indent=1, sort_keys=True)
        os.replace(tmp, self.path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


class Budget:
    """What one investigation may still spend, given its own and the day's budget."""

    def __init__(self, per_investigation: int, per_day: int, ledger: DailyLedger):
        self.per_investigation = per_investigation
        self.per_day = per_day
        self.ledger = ledger
        self.spent = 0

    def refusal(self, needed: int) -> str | None:
        """Why a call needing about `needed` tokens may not be made; None when it may."""
        if self.spent + needed > self.per_investigation:
            return (
                f"the narration would need about {needed:,} more tokens and this "
                f"investigation has {self.per_investigation - self.spent:,} of its "
                f"{self.per_investigation:,} left (CASEBOOK_TOKEN_BUDGET_INVESTIGATION)"
            )
        today = self.ledger.spent_today()
        if today + needed > self.per_day:
            return (
                f"the daily token budget is spent: {today:,} of {self.per_day:,} tokens used "
                f"today (UTC) and this narration needs about {needed:,} "
                "(CASEBOOK_TOKEN_BUDGET_DAY)"
            )
        return None

    def charge(self, tokens_in: int, tokens_out: int, cost_usd: float) -> None:
        self.spent += tokens_in + tokens_out
        self.ledger.add(tokens_in, tokens_out, cost_usd)
