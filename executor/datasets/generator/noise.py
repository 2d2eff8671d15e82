"""What happens in every case besides the fault: harmless changes (also next to the faulty
service), short unrelated error blips, and one noisy service."""

from __future__ import annotations

import numpy as np

from casebook.executor.datasets.generator import changes
from casebook.executor.datasets.generator.faults import EXCEPTIONS, Fault
from casebook.executor.datasets.generator.traffic import Failure, World


def add_noise(rng: np.random.Generator, world: World, fault: Fault, cause: str) -> dict:
    topo = world.topo
    guilty = {cause, fault.cause.name}
    others = [s for s in topo.apps() if s not in guilty]
    span = world.clock.seconds
    made = {"innocent_changes": 0, "blips": 0, "noisy": ""}
    # harmless changes anywhere, at least one near the onset
    times = [fault.onset + float(rng.uniform(-600, 300))] + list(
        rng.uniform(120, span - 60, int(rng.integers(1, 4))))
    for at in times:
        changes.innocent(rng, world, str(rng.choice(others)), float(at))
        made["innocent_changes"] += 1
    # harmless changes on the faulty service's neighbours, shortly before the onset
    neighbours = sorted((topo.callers(cause) | topo.callees(cause)) - guilty - {topo.edge})
    for name in list(rng.permutation(neighbours))[: int(rng.integers(1, 3))]:
        changes.innocent(rng, world, str(name), fault.onset - float(rng.uniform(30, 600)))
        made["innocent_changes"] += 1
    # unrelated error blips
    for _ in range(int(rng.integers(1, 3))):
        s = str(rng.choice(others))
        begin = float(rng.uniform(60, span - 300))
        etype, text = EXCEPTIONS[int(rng.integers(len(EXCEPTIONS)))]
        world.failures.append(Failure(
            s, world.clock.after(begin, begin + float(rng.uniform(30, 180))) *
            float(rng.uniform(0.05, 0.3)), etype, text.format(obj=s.split("-")[0] + "Job")))
        made["blips"] += 1
    # one noisy service: latency that wanders and a background of errors
    noisy = str(rng.choice(others))
    walk = np.exp(np.convolve(rng.normal(0, 0.5, world.clock.ticks), np.ones(6) / 6, "same"))
    for p in topo.services[noisy].pods:
        world.slow[p.index] *= walk
    world.failures.append(Failure(noisy, np.clip(rng.gamma(0.6, 0.02, world.clock.ticks), 0, 0.2),
                                  "TimeoutError", "TimeoutError: request to partner API timed "
                                  "out after 2s", status=504, level="warn"))
    made["noisy"] = noisy
    return made
