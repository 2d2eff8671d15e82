"""The collector is held while investigations run and comes back when the last one ends."""

import gc
import threading

from casebook.executor.runtime.heap import collection_paused


def test_collection_is_paused_inside_and_back_after():
    assert gc.isenabled()
    with collection_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_overlapping_investigations_resume_it_only_when_the_last_ends():
    first_in, second_done = threading.Event(), threading.Event()
    seen = []

    @collection_paused()
    def long_one():
        first_in.set()
        second_done.wait(5)
        seen.append(gc.isenabled())

    thread = threading.Thread(target=long_one)
    thread.start()
    first_in.wait(5)
    with collection_paused():
        pass
    seen.append(gc.isenabled())  # the first is still running: still paused
    second_done.set()
    thread.join(5)
    assert seen == [False, False]
    assert gc.isenabled()


def test_an_error_inside_still_resumes_it():
    try:
        with collection_paused():
            raise ValueError("analyzer blew up")
    except ValueError:
        pass
    assert gc.isenabled()


def test_a_collector_turned_off_elsewhere_stays_off():
    gc.disable()
    try:
        with collection_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_investigations_that_always_overlap_still_collect(monkeypatch):
    import casebook.executor.runtime.heap as heap

    readings = iter([0.0, heap.LONGEST_PAUSE_S + 1])  # the pause begins; the inner one ends
    monkeypatch.setattr(heap, "clock", lambda: next(readings))
    collections = []
    monkeypatch.setattr(gc, "collect", lambda *a: collections.append(a) or 0)
    with collection_paused():
        with collection_paused():
            pass  # ends while the other runs, past the longest pause: it collects
        assert collections == [()]
        assert not gc.isenabled()
    assert gc.isenabled()


def test_overlaps_shorter_than_the_longest_pause_do_not_collect(monkeypatch):
    import casebook.executor.runtime.heap as heap

    readings = iter([0.0, heap.LONGEST_PAUSE_S - 1])
    monkeypatch.setattr(heap, "clock", lambda: next(readings))
    collections = []
    monkeypatch.setattr(gc, "collect", lambda *a: collections.append(a) or 0)
    with collection_paused():
        with collection_paused():
            pass
        assert collections == []
    assert gc.isenabled()
