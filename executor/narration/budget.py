"""Token budgets: per investigation (in memory) and per day (an atomic ledger on disk).

The ledger is one JSON object keyed by UTC day: {"YYYY-MM-DD": {"tokens_in": n, "tokens_out": n,
"cost_usd": x, "calls": n, "reserved": {"ID": {"tokens": n, "at": "ISO time"}}}}, trimmed to the
last 31 days. Before a call, a narrator *reserves* what the call may cost at most (its prompt
estimate plus `max_tokens`) under an exclusive lock, and is refused if today's spending plus every
open reservation plus its own would pass the daily budget; after the call it *settles* the
reservation to the usage the API reported. So concurrent investigations, in one process or many,
cannot together pass the budget. A reservation left by a process that died expires after an hour.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

KEEP_DAYS = 31
RESERVATION_TTL = timedelta(hours=1)


class DailyLedger:
    """Tokens spent on narration per UTC day, shared by every process that uses the same file."""

    def __init__(self, path: Path, now=lambda: datetime.now(UTC)):
        self.path = Path(path)
        self._now = now

    def today(self) -> str:
        return self._now().strftime("%Y-%m-%d")

    def spent_today(self) -> int:
        """Input plus output tokens spent today, open reservations included."""
        return self._committed(self._read().get(self.today(), {}))

    def reserve(self, tokens: int, per_day: int) -> tuple[str | None, int]:
        """Hold `tokens` of today's budget: (reservation id, committed before), or (None, committed)."""
        with self._locked():
            days = self._read()
            day = self._day(days)
            committed = self._committed(day)
            if committed + tokens > per_day:
                return None, committed
            rid = secrets.token_hex(6)
            day["reserved"][rid] = {"tokens": tokens, "at": self._now().isoformat()}
            self._write(days)
            return rid, committed

    def settle(self, rid: str | None, tokens_in: int, tokens_out: int, cost_usd: float) -> None:
        """Replace a reservation with what the call really used (zero when it used nothing)."""
        with self._locked():
            days = self._read()
            day = self._day(days)
            for other in days.values():
                other.get("reserved", {}).pop(rid or "", None)
            if tokens_in or tokens_out or cost_usd:
                day["tokens_in"] += tokens_in
                day["tokens_out"] += tokens_out
                day["cost_usd"] = round(day["cost_usd"] + cost_usd, 6)
                day["calls"] += 1
            self._write(days)

    def add(self, tokens_in: int, tokens_out: int, cost_usd: float) -> None:
        """Record one call's spending under today's date (no reservation)."""
        self.settle(None, tokens_in, tokens_out, cost_usd)

    def _day(self, days: dict[str, dict]) -> dict:
        day = days.setdefault(self.today(), {})
        for key, empty in (("tokens_in", 0), ("tokens_out", 0), ("cost_usd", 0.0), ("calls", 0)):
            day.setdefault(key, empty)
        day.setdefault("reserved", {})
        return day

    def _committed(self, day: dict) -> int:
        now = self._now()
        held = 0
        for hold in day.get("reserved", {}).values():
            try:
                fresh = now - datetime.fromisoformat(hold["at"]) < RESERVATION_TTL
            except (KeyError, TypeError, ValueError):
                fresh = False
            held += int(hold.get("tokens", 0)) if fresh else 0
        return int(day.get("tokens_in", 0)) + int(day.get("tokens_out", 0)) + held

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
        for day in days.values():
            if not day.get("reserved"):
                day.pop("reserved", None)
        kept = dict(sorted(days.items())[-KEEP_DAYS:])
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            json.dump(kept, handle, indent=1, sort_keys=True)
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
        self.reservation: str | None = None
        self.held = 0

    def reserve(self, needed: int) -> str | None:
        """Hold `needed` tokens for one call; the reason it may not be made, or None."""
        if self.spent + needed > self.per_investigation:
            return (
                f"the narration would need up to {needed:,} more tokens and this "
                f"investigation has {max(0, self.per_investigation - self.spent):,} of its "
                f"{self.per_investigation:,} left (CASEBOOK_TOKEN_BUDGET_INVESTIGATION)"
            )
        rid, committed = self.ledger.reserve(needed, self.per_day)
        if rid is None:
            return (
                f"the daily token budget is spent: {committed:,} of {self.per_day:,} tokens used "
                f"or reserved today (UTC) and this narration needs up to {needed:,} "
                "(CASEBOOK_TOKEN_BUDGET_DAY)"
            )
        self.reservation, self.held = rid, needed
        return None

    def settle(self, tokens_in: int, tokens_out: int, cost_usd: float) -> None:
        """Charge what the API reported (both budgets) and release the reservation."""
        self.spent += tokens_in + tokens_out
        self.ledger.settle(self.reservation, tokens_in, tokens_out, cost_usd)
        self.reservation, self.held = None, 0

    def forfeit(self, cost_usd: float) -> None:
        """An abandoned call may still be billed: charge its whole reservation."""
        held = self.held
        self.spent += held
        self.ledger.settle(self.reservation, held, 0, cost_usd)
        self.reservation, self.held = None, 0
