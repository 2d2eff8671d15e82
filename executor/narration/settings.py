"""How narration is configured: environment variables, each with a default that works offline."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "claude-sonnet-5-5"

# US dollars per million tokens (input, output), matched by model-id prefix, longest first.
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "claude-opus-4-5": (5.0, 25.0),
    "claude-opus-4": (15.0, 75.0),
    "claude-sonnet": (3.0, 15.0),
    "claude-3-7-sonnet": (3.0, 15.0),
    "claude-3-5-sonnet": (3.0, 15.0),
    "claude-haiku-4": (1.0, 5.0),
    "claude-3-5-haiku": (0.8, 4.0),
}


class SettingsError(ValueError):
    """An environment variable that cannot be read; the message names it and shows a good value."""


@dataclass(frozen=True)
class NarratorSettings:
    """Everything the narrators read from the environment, resolved once."""

    api_key: str | None = None
    base_url: str | None = None
    mode: str = "auto"
    model: str = DEFAULT_MODEL
    max_tokens: int = 2000
    timeout_s: float = 30.0
    retries: int = 2
    budget_investigation: int = 40_000
    budget_day: int = 2_000_000
    ledger: Path = Path(".casebook/narrator-ledger.json")
    prices: tuple[float, float] | None = None

    @property
    def wants_claude(self) -> bool:
        return bool(self.api_key) and self.mode != "deterministic"

    def price(self) -> tuple[float, float]:
        """(input, output) dollars per million tokens for the configured model."""
        if self.prices is not None:
            return self.prices
        for prefix in sorted(PRICES_PER_MTOK, key=len, reverse=True):
            if self.model.startswith(prefix):
                return PRICES_PER_MTOK[prefix]
        return PRICES_PER_MTOK["claude-sonnet"]

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        price_in, price_out = self.price()
        return round((tokens_in * price_in + tokens_out * price_out) / 1_000_000, 6)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NarratorSettings:
        """Settings from ANTHROPIC_* and CASEBOOK_* variables (see docs/narration.md)."""
        env = os.environ if env is None else env
        mode = env.get("CASEBOOK_NARRATOR", "auto").strip().lower() or "auto"
        if mode not in ("auto", "deterministic", "claude"):
            raise SettingsError(
                f"CASEBOOK_NARRATOR is {mode!r}; expected auto, deterministic or claude "
                "(e.g. CASEBOOK_NARRATOR=deterministic to stay offline)"
            )
        return cls(
            api_key=env.get("ANTHROPIC_API_KEY") or None,
            base_url=env.get("ANTHROPIC_BASE_URL") or None,
            mode=mode,
            model=env.get("CASEBOOK_NARRATOR_MODEL") or DEFAULT_MODEL,
            max_tokens=_number(env, "CASEBOOK_NARRATOR_MAX_TOKENS", 2000, int, "2000"),
            timeout_s=_number(env, "CASEBOOK_NARRATOR_TIMEOUT_S", 30.0, float, "30", minimum=0.1),
            retries=_number(env, "CASEBOOK_NARRATOR_RETRIES", 2, int, "2", minimum=0),
            budget_investigation=_number(
                env, "CASEBOOK_TOKEN_BUDGET_INVESTIGATION", 40_000, int, "40000", minimum=0
            ),
            budget_day=_number(
                env, "CASEBOOK_TOKEN_BUDGET_DAY", 2_000_000, int, "2000000", minimum=0
            ),
            ledger=Path(env.get("CASEBOOK_NARRATOR_LEDGER") or ".casebook/narrator-ledger.json"),
            prices=_prices(env),
        )


def _number(env: Mapping[str, str], name: str, default, kind, example: str, minimum: float = 1):
    raw = env.get(name, "").strip().replace("_", "")
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or value < minimum:
        what = "a whole number" if kind is int else "a number"
        raise SettingsError(
            f"{name} is {raw!r}; expected {what} of at least {minimum:g} (e.g. {name}={example})"
        )
    return value


def _prices(env: Mapping[str, str]) -> tuple[float, float] | None:
    raw = env.get("CASEBOOK_NARRATOR_PRICES", "").strip()
    if not raw:
        return None
    try:
        price_in, price_out = (float(p) for p in raw.split(","))
    except ValueError:
        raise SettingsError(
            f"CASEBOOK_NARRATOR_PRICES is {raw!r}; expected input and output dollars per million "
            "tokens, comma-separated (e.g. CASEBOOK_NARRATOR_PRICES=3,15)"
        ) from None
    return price_in, price_out
