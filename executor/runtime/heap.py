"""The Python heap of a long-lived runtime process (the driver or a worker)."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


def freeze_loaded_objects() -> None:
    """Leave the objects loaded so far out of later garbage collections.

    Ray's modules bring hundreds of thousands; every full collection would scan them all and
    stall the investigation loop (a third of its time with 10,000 invocations).
    """
    gc.collect()
    gc.freeze()


_paused = 0
_since = 0.0  # when the collector last ran (or the pause began)
_lock = threading.Lock()
# Overlapping investigations could keep the collector paused for good; whichever ends after this
# long without a collection runs one, so cycles left behind are freed at least that often.
LONGEST_PAUSE_S = 60.0
clock = time.monotonic  # read through this name so tests can script it


@contextmanager
def collection_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector while an investigation runs (usable as a decorator).

    An investigation makes a few objects per invocation and keeps them to its end, so each
    automatic collection scans all the ones made so far, to free none: at 100,000 invocations
    that was a sixth of the driver's time, growing faster than the invocations. Memory is
    still freed by reference counting meanwhile; cycles wait for the collection that follows.
    Investigations that overlap (threads of one service) share the pause: the last one to
    finish lets the collector run again, and one that finishes after `LONGEST_PAUSE_S` without a
    collection runs one.
    """
    global _paused, _since
    with _lock:
        if _paused == 0 and not gc.isenabled():
            owner = False  # someone else turned it off: leave it as it is
        else:
            owner = True
            if _paused == 0:
                _since = clock()
            _paused += 1
            gc.disable()
    try:
        yield
    finally:
        if owner:
            collect = False
            with _lock:
                _paused -= 1
                if _paused == 0:
                    gc.enable()
                elif (now := clock()) - _since > LONGEST_PAUSE_S:
                    collect, _since = True, now
            if collect:
                gc.collect()
