"""The Python heap of a long-lived runtime process (the driver or a worker)."""

from __future__ import annotations

import gc


def freeze_loaded_objects() -> None:
    """Leave the objects loaded so far out of later garbage collections.

    Ray's modules bring hundreds of thousands; every full collection would scan them all and
    stall the investigation loop (a third of its time with 10,000 invocations).
    """
    gc.collect()
    gc.freeze()
