"""Resident memory of a process (and of everything it started), sampled from another process.

The benchmark starts this as a sidecar so that sampling costs the measured process nothing:

    sampler = MemorySampler(os.getpid())   # starts `python memory_sampler.py PID`
    sampler.phase()                         # -> (driver_mb, tree_mb) now; peaks start afresh
    ...                                     # the work to measure
    sampler.peak()                          # -> (driver_mb, tree_mb) peaks since phase()
    sampler.close()                         # -> the tree's peak over the whole run

The sidecar reads /proc every 50 ms for the process itself and every 250 ms for the whole tree
(the tree walk reads every process's stat file, which is the costlier part).
"""

from __future__ import annotations

import os
import select
import subprocess
import sys

DRIVER_EVERY_S = 0.05
TREE_EVERY = 5  # driver samples per tree sample


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


def tree_rss_mb(root: int) -> float:
    """The resident memory of `root` and all its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        rss[pid] = int(fields[21]) * page
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total / 2**20


class MemorySampler:
    """The driver's side: a sidecar process that samples `pid` and answers on a pipe."""

    def __init__(self, pid: int) -> None:
        self._process = subprocess.Popen(
            [sys.executable, __file__, str(pid)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def _ask(self, command: str) -> list[float]:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(command + "\n")
        self._process.stdin.flush()
        return [float(v) for v in self._process.stdout.readline().split()]

    def phase(self) -> tuple[float, float]:
        driver, tree = self._ask("phase")
        return driver, tree

    def peak(self) -> tuple[float, float]:
        driver, tree = self._ask("peak")
        return driver, tree

    def close(self) -> float:
        (total,) = self._ask("total")
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=5)
        return total


def _serve(pid: int) -> None:
    phase_driver = phase_tree = total_tree = 0.0
    tick = 0
    while True:
        readable, _, _ = select.select([sys.stdin], [], [], DRIVER_EVERY_S)
        driver = rss_mb(pid)
        phase_driver = max(phase_driver, driver)
        if tick % TREE_EVERY == 0 or readable:
            tree = tree_rss_mb(pid)
            phase_tree, total_tree = max(phase_tree, tree), max(total_tree, tree)
        tick += 1
        if not readable:
            continue
        command = sys.stdin.readline().strip()
        if command == "phase":
            phase_driver, phase_tree = driver, tree
            print(f"{driver:.1f} {tree:.1f}", flush=True)
        elif command == "peak":
            print(f"{phase_driver:.1f} {phase_tree:.1f}", flush=True)
        elif command == "total" or not command:
            print(f"{total_tree:.1f}", flush=True)
            return


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
