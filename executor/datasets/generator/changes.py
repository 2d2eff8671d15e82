"""Changes people and the platform make: rolling and canary releases, config and flag pushes,
scaling, restarts. Faults use them to cause harm; the noise uses them harmlessly."""

from __future__ import annotations

import numpy as np

from casebook.executor.datasets.generator.topology import Pod, pod_name, token, version
from casebook.executor.datasets.generator.traffic import World

AUTHORS = ("alice", "bob", "chen", "dana", "emeka", "farah", "goran", "hana", "deploy-bot",
           "argo-cd", "spinnaker")
FLAGS = ("new_checkout_flow", "async_writes", "batch_size_v2", "use_grpc_client",
         "strict_validation", "prefetch_recommendations", "dark_mode_api", "fast_path_pricing")
KEYS = ("http.client.timeout_ms", "pool.max_connections", "cache.ttl_seconds", "log.level",
        "retry.max_attempts", "feature.rate_limit_per_minute", "tls.min_version",
        "worker.threads")


def _event(world: World, at: float, kind: str, service: str, summary: str,
           attributes: dict[str, str]) -> None:
    world.events.append({"ts": world.clock.at(at), "kind": kind, "service": service,
                         "summary": summary, "attributes": attributes})


def rolling_deploy(rng: np.random.Generator, world: World, service: str, at: float,
                   *, canary: bool = False) -> list[Pod]:
    """Release a new version at `at`: every pod replaced one by one (or one canary pod added).
    Returns the new pods."""
    svc = world.topo.services[service]
    old_version, new = svc.version, version(rng)
    live = [p for p in svc.pods if p.start <= at < p.end]
    replica_set = token(rng, int(rng.integers(8, 11)))
    step = float(rng.uniform(20, 60))
    new_pods = []
    targets = live[:1] if canary else live
    for i, old in enumerate(targets):
        ready = at + step * (i + 1) * (0.5 if canary else 1.0)
        pod = world.topo.add_pod(Pod(pod_name(rng, svc, len(svc.pods), replica_set), service,
                                     new, str(rng.choice(world.topo.nodes)), ready, 1e12))
        if not canary:
            old.end = ready + float(rng.uniform(2, 8))
        new_pods.append(pod)
    if not canary:
        svc.version = new
    world.grow()
    author = str(rng.choice(AUTHORS))
    strategy = "canary" if canary else "rolling"
    summary = (f"canary {new} of {service} on 1 pod" if canary
               else f"deploy {service} {old_version} -> {new}")
    _event(world, at, "deploy", service, summary,
           {"version": new, "previous_version": old_version, "strategy": strategy,
            "author": author, "replicas": str(len(new_pods))})
    return new_pods


def config_push(rng: np.random.Generator, world: World, service: str, at: float) -> str:
    key = str(rng.choice(KEYS))
    _event(world, at, "config", service, f"config push to {service}: {key} changed",
           {"key": key, "author": str(rng.choice(AUTHORS))})
    return key


def flag_push(rng: np.random.Generator, world: World, service: str, at: float) -> str:
    flag = str(rng.choice(FLAGS))
    value = str(rng.choice(["true", "false", "25%", "50%", "100%"]))
    _event(world, at, "flag", service, f"flag {flag} set to {value} for {service}",
           {"flag": flag, "value": value, "author": str(rng.choice(AUTHORS))})
    return flag


def scale(rng: np.random.Generator, world: World, service: str, at: float) -> None:
    """Add one replica (an autoscaler or a person)."""
    svc = world.topo.services[service]
    live = [p for p in svc.pods if p.start <= at < p.end]
    replica_set = svc.pods[-1].name.split("-")[-2] if live else token(rng, 9)
    world.topo.add_pod(Pod(pod_name(rng, svc, len(svc.pods), replica_set), service, svc.version,
                           str(rng.choice(world.topo.nodes)), at + float(rng.uniform(10, 40)),
                           1e12))
    world.grow()
    _event(world, at, "scale", service, f"scale {service} {len(live)} -> {len(live) + 1} replicas",
           {"replicas": str(len(live) + 1), "previous_replicas": str(len(live)),
            "author": str(rng.choice(("hpa", *AUTHORS)))})


def restart(world: World, pod: Pod, at: float, reason: str, down_s: float) -> None:
    """The platform restarts a container: down for a while, one more restart, an event."""
    t0, t1 = world.clock.tick(at), world.clock.tick(at + down_s)
    world.down[pod.index, t0:t1 + 1] = True
    world.restarts.setdefault(pod.index, []).append(at)
    code = "137" if reason == "OOMKilled" else "1"
    _event(world, at, "restart", pod.service,
           f"container {pod.service} in pod {pod.name} restarted ({reason}, exit code {code})",
           {"pod": pod.name, "reason": reason, "exit_code": code, "author": "kubelet"})


def innocent(rng: np.random.Generator, world: World, service: str, at: float) -> None:
    """A change that harms nothing."""
    kind = str(rng.choice(["deploy", "deploy", "config", "flag", "scale"]))
    if kind == "deploy" and world.topo.services[service].kind in ("app", "edge"):
        rolling_deploy(rng, world, service, at)
    elif kind == "flag":
        flag_push(rng, world, service, at)
    elif kind == "scale" and world.topo.services[service].kind in ("app", "edge"):
        scale(rng, world, service, at)
    else:
        config_push(rng, world, service, at)
