"""The seed incidents: realistic telemetry with noise plus the alert that fires.

- `nye`: New Year's Eve HTTP 500s that are really abuse by a cohort of fake accounts.
- `kv_cache`: an inference request and compute surge caused by a KV cache collapse.
- `capacity`: a genuine traffic increase from new clients, with a healthy cache (the control).
"""

from casebook.examples.seeds import capacity, kv_cache, nye

SCENARIOS = {"nye": nye, "kv_cache": kv_cache, "capacity": capacity}

__all__ = ["SCENARIOS"]
