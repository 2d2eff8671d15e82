"""Fixtures shared by the whole test suite, one section per concern."""

from __future__ import annotations

import logging

import pytest

# --- Ray ------------------------------------------------------------------------------------
# One local Ray for the whole session: starting it takes seconds, so every test that needs Ray
# asks for `ray_session` (or `ray_runtime`) instead of calling ray.init itself.

RAY_CPUS = 2
RAY_OBJECT_STORE_BYTES = 100 * 1024 * 1024


@pytest.fixture(scope="session")
def ray_session():
    """The session's Ray (started on first use, shut down at the end)."""
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(
            num_cpus=RAY_CPUS,
            include_dashboard=False,
            log_to_driver=False,
            object_store_memory=RAY_OBJECT_STORE_BYTES,
            logging_level=logging.WARNING,
        )
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="session")
def ray_runtime(ray_session):
    """A warm `RayRuntime` with two workers, shared by the tests of the session."""
    from casebook.executor.runtime.cluster import RayRuntime

    runtime = RayRuntime(workers=RAY_CPUS)
    runtime.warm()
    yield runtime
    runtime.shutdown()
