"""Connecting to Ray, and the pool of long-lived worker actors that outlives investigations."""

from __future__ import annotations

import logging
import os
from typing import Any

from casebook.executor.errors import UserError
from casebook.executor.runtime.batches import Slot
from casebook.executor.runtime.heap import freeze_loaded_objects
from casebook.executor.runtime.joining import (
    casebook_version,
    check_address,
    join_error,
    start_error,
    store_error,
    store_problem,
    version_error,
    whereabouts,
)

READY_TIMEOUT_S = 120.0
log = logging.getLogger("casebook.runtime")


class WorkerPool:
    """One worker actor per CPU (or `workers`), started once and replaced when one is lost."""

    def __init__(
        self,
        address: str | None,
        workers: int | None,
        duckdb_threads: int | None,
        memory_mb: int | None = None,
    ) -> None:
        self.address = address
        self.workers = workers
        self.duckdb_threads = duckdb_threads
        self.memory_mb = memory_mb  # each worker's ceiling; None: memory_guard's default
        self.slots: list[Slot] = []
        self.scans: Any = None  # the SharedScans actor: one grouped scan per investigation
        self.replaced = 0
        self.started_ray = False
        self._threads = 1
        self._ray: Any = None
        self._where: dict[int, Any] = {}  # slot index -> its worker's whereabouts (a ref)
        self._stores_read: set[str] = set()

    @property
    def ray(self) -> Any:
        """The `ray` module, connected (a local Ray starts when none is running)."""
        if self._ray is None:
            import ray

            if not ray.is_initialized():
                options: dict[str, Any] = {
                    "include_dashboard": False,
                    "log_to_driver": False,
                    "logging_level": logging.WARNING,
                }
                if self.address:
                    check_address(self.address)  # seconds, where Ray would retry for minutes
                    try:
                        ray.init(address=self.address, **options)
                    except Exception as exc:
                        raise join_error(self.address, exc) from None
                else:
                    # A local cluster started here keeps Ray's token authentication on; its
                    # note saying so would greet every command, so it is kept off the terminal.
                    logging.getLogger(
                        "ray._private.authentication.authentication_token_setup"
                    ).setLevel(logging.ERROR)
                    ray.init(num_cpus=max(self.workers or 0, os.cpu_count() or 1), **options)
                self.started_ray = True
            keep_stdout_clean()
            freeze_loaded_objects()
            self._ray = ray
        return self._ray

    def warm(self) -> list[Slot]:
        """Start the workers (once) and wait until at least one is up."""
        if self.slots:
            return self.slots
        ray = self.ray
        count = self.workers or max(1, int(ray.cluster_resources().get("CPU", os.cpu_count())))
        # DuckDB threads sized to the CPUs a worker holds: one on a cluster (each claims one),
        # its share of this machine's otherwise.
        self._threads = self.duckdb_threads or (
            1 if self.address else max(1, (os.cpu_count() or 1) // count)
        )
        self.slots = [Slot(i, *self._new_actor(i)) for i in range(count)]
        self.scans = self._new_scans() if self.shares_scans else None
        # On a cluster every worker is heard from, so a node without casebook (or with another
        # version) is named now rather than costing invocations later; locally one suffices.
        wanted = len(self.slots) if self.address else 1
        ready, _ = ray.wait(list(self._where.values()), num_returns=wanted,
                            timeout=READY_TIMEOUT_S)
        if self.scans is not None:
            # The first investigation's scans should not wait for the actor to start either.
            ray.wait([self.scans.ready.remote()], timeout=READY_TIMEOUT_S)
        for ref in ready:
            try:
                where = ray.get(ref)
            except ray.exceptions.RayError as exc:
                self.shutdown_workers()
                raise start_error(None, exc) from None
            if where["casebook"] != casebook_version():
                self.shutdown_workers()
                raise version_error(where["node_ip"], where["casebook"], casebook_version())
        if 0 < len(ready) < wanted:
            log.warning(
                "%d of the %d casebook workers have not started on the Ray cluster at %s after "
                "%g s (no free CPU for them yet); the others start working now",
                wanted - len(ready), wanted, self.address, READY_TIMEOUT_S,
            )
        if not ready:
            where = f"the Ray cluster at {self.address}" if self.address else "local Ray"
            raise UserError(
                f"no casebook worker started on {where} within {READY_TIMEOUT_S:g} s: it has "
                f"no free CPU for the {count} workers (one CPU each); free some, pass fewer "
                "workers, or run in this process with --local"
            )
        return self.slots

    def _new_actor(self, index: int) -> tuple[Any, Any]:
        from casebook.executor.runtime.worker import InvestigationWorker

        # Locally the pool is sized to the machine, so it claims no CPU from Ray's accounting
        # (a claim could leave a replacement waiting for the CPU of the worker it replaces).
        options: dict[str, Any] = {"num_cpus": 1 if self.address else 0}
        if self.address:
            options["scheduling_strategy"] = "SPREAD"
        actor = InvestigationWorker.options(**options).remote(self._threads, self.memory_mb)
        self._where[index] = actor.__ray_call__.remote(whereabouts)
        return actor, actor.ready.remote()

    def _new_scans(self) -> Any:
        from casebook.executor.runtime.scans import SharedScans

        # It runs while the workers that asked wait, so it claims no CPU and uses them all.
        return SharedScans.options(num_cpus=0).remote(None, self.memory_mb)

    @property
    def shares_scans(self) -> bool:
        """Whether grouped scans go through the scans actor: only when several workers would
        each run them. A single worker runs each once per investigation anyway, and through the
        actor its results would cross the object store for nothing (the pickling, a third of
        the actor's time for an alert over a day of metrics, and the worker's wait)."""
        return len(self.slots) > 1

    def scans_alive(self) -> Any:
        """The scans actor, started afresh if the last one died (workers then scan alone);
        None for a pool of one worker (`shares_scans`)."""
        if not self.shares_scans:
            return None
        if self.scans is not None:
            ready, _ = self.ray.wait([self.scans.ready.remote()], timeout=READY_TIMEOUT_S)
            if ready:
                try:
                    self.ray.get(ready[0])
                    return self.scans
                except self.ray.exceptions.RayError:
                    pass
        self.scans = self._new_scans()
        return self.scans

    def replace(self, slot: Slot) -> None:
        """Kill the slot's worker (whatever it is doing) and start a fresh one in its place."""
        self.ray.kill(slot.actor, no_restart=True)
        slot.forget()
        slot.actor, slot.ready = self._new_actor(slot.index)
        self.replaced += 1

    def whereabouts(self, slot: Slot) -> dict[str, Any] | None:
        """The slot's worker's pid, node id and node IP, once it has said (never waits)."""
        ref = self._where.get(slot.index)
        if ref is None or not self.ray.wait([ref], timeout=0)[0]:
            return None
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayError:
            return None

    def check_store(self, store_url: str) -> None:
        """On a cluster, raise UserError unless every node with a worker opens the store.

        Asked once per store of this pool, of one worker per node, before the first
        investigation reads it.
        """
        if not self.address or store_url in self._stores_read:
            return
        self.warm()
        ray = self.ray
        by_node: dict[tuple[str, str], Any] = {}
        for slot in self.slots:
            where = self.whereabouts(slot)
            if where is not None:
                by_node.setdefault((where["node_id"], where["node_ip"]), slot.actor)
        asked = [(node_ip, actor.__ray_call__.remote(store_problem, store_url))
                 for (_, node_ip), actor in by_node.items()]
        problems: dict[str, str] = {}
        for node_ip, ref in asked:
            try:
                problem = ray.get(ref, timeout=READY_TIMEOUT_S)
            except (ray.exceptions.RayError, TimeoutError):
                continue  # a worker lost now is the runtime's to replace, not a store problem
            if problem is not None:
                problems[node_ip] = problem
        if problems:
            raise store_error(store_url, problems)
        self._stores_read.add(store_url)

    def pids(self) -> list[int]:
        """Process ids of the workers that are up."""
        for slot in self.slots:
            if slot.pid is None and self.ray.wait([slot.ready], timeout=0)[0]:
                slot.pid = self.ray.get(slot.ready)
        return [s.pid for s in self.slots if s.pid is not None]

    def shutdown_workers(self) -> None:
        """Stop the workers; Ray stays up."""
        if self._ray is None:
            return
        for slot in self.slots:
            self._ray.kill(slot.actor, no_restart=True)
        if self.scans is not None:
            self._ray.kill(self.scans, no_restart=True)
            self.scans = None
        self.slots = []
        self._where = {}
        self._stores_read = set()

    def shutdown(self) -> None:
        """Stop the workers, and Ray itself when this pool started it."""
        if self._ray is None:
            return
        self.shutdown_workers()
        if self.started_ray:
            self._ray.shutdown()
            self.started_ray = False
        self._ray = None


def keep_stdout_clean() -> None:
    """Send what Ray prints about the cluster (`(raylet) A worker died ...`) to stderr.

    Ray's driver prints those messages to stdout from a thread of its own, whatever
    `log_to_driver` says, which breaks `casebook investigate --json | jq`. Its printing function
    is looked up by name on every message, so wrapping it here routes them all to stderr
    (kept for people, out of the document).
    """
    from ray._private import worker

    printer = getattr(worker, "print_to_stdstream", None)
    if printer is None or getattr(printer, "casebook_stderr", False):
        return  # a Ray without it (a private name) or already wrapped

    def to_stderr(data: dict[str, Any], ignore_prefix: bool) -> None:
        printer({**data, "is_err": True}, ignore_prefix)

    to_stderr.casebook_stderr = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = to_stderr
