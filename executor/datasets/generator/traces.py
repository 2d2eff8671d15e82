"""Spans of the sampled requests, log lines, the edge's access log and the accounts table."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from casebook.executor.datasets.generator.demand import Accounts, created_at
from casebook.executor.datasets.generator.simulation import (
    OK,
    OWN,
    REASONS,
    REFUSED,
    TIMEOUT,
    TLS,
    UPSTREAM,
    Batch,
)
from casebook.executor.datasets.generator.traffic import World

LOG_CAP = 2500  # lines per (service, message kind): loggers are rate-limited
INFO = ("cache refreshed: {n} entries", "processed batch of {n} events", "GC pause {n}ms",
        "health check ok ({n} ms)", "reloaded routing table: {n} routes",
        "connection pool stats: {n} idle")


def _hex(rng: np.random.Generator, count: int, width: int) -> list[str]:
    words = rng.integers(0, 2 ** 62, size=(count, (width + 15) // 16))
    return ["".join(f"{int(w):016x}" for w in row)[:width] for row in words]


def assign_accounts(rng: np.random.Generator, world: World, batches: list[Batch],
                    accounts: Accounts) -> None:
    for batch in batches:
        usual = batch.source < 0
        batch.account[usual] = rng.choice(accounts.established, size=int(usual.sum()),
                                          p=accounts.weights)
        for k, source in enumerate(world.sources):
            mine = batch.source == k
            index = {a: i for i, a in enumerate(accounts.ids)}
            ids = np.array([index[a] for a in source.accounts])
            batch.account[mine] = ids[rng.integers(0, len(ids), int(mine.sum()))]


def spans(rng: np.random.Generator, world: World, batches: list[Batch], accounts: Accounts,
          rate: float, end: float) -> list[dict]:
    out: list[dict] = []
    topo, clock = world.topo, world.clock
    for batch in batches:
        chosen = np.nonzero((rng.random(len(batch.ts)) < rate) & (batch.ts < end))[0]
        if not len(chosen):
            continue
        traces = _hex(rng, len(chosen), 32)
        server_ids: dict[int, list[str]] = {}
        for vi, v in enumerate(batch.visits):
            client_ids = _hex(rng, len(chosen), 16)
            server_ids[vi] = _hex(rng, len(chosen), 16)
            for j, r in enumerate(chosen):
                if not v.present[r]:
                    continue
                ts = batch.ts[r]
                reason = int(v.reason[r])
                pod = topo.pods[v.pod[r]]
                parent = server_ids[v.parent][j] if v.parent >= 0 else None
                account = accounts.ids[batch.account[r]]
                if v.caller is not None:
                    caller_pod = topo.pods[batch.visits[v.parent].pod[r]]
                    attrs = {"span.kind": "client", "peer.service": v.call.service,
                             "k8s.pod.name": caller_pod.name,
                             "service.version": caller_pod.version}
                    if v.call.kind == "http":
                        attrs["http.status_code"] = _status(reason, v, r, world)
                    else:
                        attrs["db.system"] = "redis" if v.call.kind.startswith("cache") \
                            else "postgresql"
                    if v.attempt:
                        attrs["http.request.resend_count"] = str(v.attempt)
                    if reason != OK:
                        attrs["error.type"] = _etype(reason, v, r, world)
                    out.append({"trace_id": traces[j], "span_id": client_ids[j],
                                "parent_span_id": parent, "service": v.caller,
                                "name": v.call.op, "start_ts": clock.at(ts + v.client_start[r] / 1000),
                                "duration_ms": round(float(v.client_end[r] - v.client_start[r]), 3),
                                "status": "ok" if reason == OK else "error", "attributes": attrs})
                if v.call.kind != "http" or not v.served[r]:
                    continue
                attrs = {"span.kind": "server", "k8s.pod.name": pod.name,
                         "service.version": pod.version, "k8s.node.name": pod.node,
                         "http.status_code": _status(reason, v, r, world)}
                if v.parent < 0 or batch.visits[v.parent].parent < 0:
                    attrs["account"] = account
                if reason in (OWN, UPSTREAM):
                    attrs["error.type"] = _etype(reason, v, r, world)
                out.append({"trace_id": traces[j], "span_id": server_ids[vi][j],
                            "parent_span_id": client_ids[j] if v.caller else None,
                            "service": v.call.service, "name": v.call.op,
                            "start_ts": clock.at(ts + v.server_start[r] / 1000),
                            "duration_ms": round(float(v.server_end[r] - v.server_start[r]), 3),
                            "status": "error" if reason in (OWN, UPSTREAM) else "ok",
                            "attributes": attrs})
    return out


def _failure(world: World, index: int):
    if index < len(world.failures):
        return world.failures[index]
    return world.sources[index - len(world.failures)].failure


def _status(reason: int, v, r: int, world: World) -> str:
    if reason == OWN:
        return str(_failure(world, int(v.failure[r])).status)
    return {OK: "200", UPSTREAM: "502", TIMEOUT: "504", TLS: "0", REFUSED: "503"}[reason]


def _etype(reason: int, v, r: int, world: World) -> str:
    if reason == OWN:
        return _failure(world, int(v.failure[r])).etype
    return {UPSTREAM: "UpstreamError"}.get(reason, REASONS[reason])


def logs(rng: np.random.Generator, world: World, batches: list[Batch], accounts: Accounts,
         end: float) -> list[dict]:
    topo, clock = world.topo, world.clock
    lines: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for batch in batches:
        for v in batch.visits:
            bad = np.nonzero(v.present & (v.reason != OK) & (batch.ts < end))[0]
            for r in bad:
                reason = int(v.reason[r])
                at = batch.ts[r]
                pod = topo.pods[v.pod[r]]
                base = {"trace_id": None, "span_id": None}
                if reason == OWN:
                    f = _failure(world, int(v.failure[r]))
                    lines[(v.call.service, f.etype)].append({
                        **base, "ts": clock.at(at + v.server_end[r] / 1000),
                        "service": v.call.service, "level": f.level, "message": f.message,
                        "attributes": {"exception.type": f.etype, "k8s.pod.name": pod.name,
                                       "service.version": pod.version,
                                       "account": accounts.ids[batch.account[r]]}})
                if v.caller is None or v.call.kind.startswith("cache"):
                    continue
                caller = topo.pods[batch.visits[v.parent].pod[r]]
                when = clock.at(at + v.client_end[r] / 1000)
                attrs = {"k8s.pod.name": caller.name, "service.version": caller.version}
                if reason == TLS:
                    lines[(v.caller, "x509")].append({
                        **base, "ts": when, "service": v.caller, "level": "error",
                        "message": f'Get "https://{v.call.service}:8443{_path(v.call.op)}": x509: '
                                   "certificate has expired or is not yet valid",
                        "attributes": {**attrs, "exception.type": "x509.CertificateInvalidError"}})
                    lines[(v.call.service, "tls")].append({
                        "ts": when, "service": v.call.service, "level": "warn",
                        "message": f"http: TLS handshake error from 10.0.{int(r) % 250}.{int(r) % 7 + 3}:"
                                   f"{40000 + int(r) % 20000}: remote error: tls: bad certificate",
                        "attributes": {"k8s.pod.name": pod.name}})
                elif reason == TIMEOUT:
                    lines[(v.caller, "timeout")].append({
                        **base, "ts": when, "service": v.caller, "level": "error",
                        "message": f"context deadline exceeded calling {v.call.service} "
                                   f"{v.call.op} after {int(v.call.timeout_ms)}ms",
                        "attributes": {**attrs, "exception.type": "DeadlineExceeded"}})
                elif reason == REFUSED:
                    lines[(v.caller, "refused")].append({
                        **base, "ts": when, "service": v.caller, "level": "error",
                        "message": f"dial tcp 10.1.{int(r) % 250}.{int(r) % 9 + 2}:8080: connect: "
                                   "connection refused",
                        "attributes": {**attrs, "exception.type": "ConnectionRefusedError",
                                       "peer.service": v.call.service}})
                elif rng.random() < 0.3:
                    lines[(v.caller, "upstream")].append({
                        **base, "ts": when, "service": v.caller, "level": "warn",
                        "message": f"call to {v.call.service} failed with status "
                                   f"{_status(reason, v, r, world)}",
                        "attributes": {**attrs, "peer.service": v.call.service}})
    out: list[dict] = []
    for group in lines.values():
        if len(group) > LOG_CAP:
            keep = np.sort(rng.choice(len(group), LOG_CAP, replace=False))
            group = [group[i] for i in keep]
        out.extend(group)
    for s in topo.services.values():
        if s.kind not in ("app", "edge"):
            continue
        for template in rng.choice(INFO, size=2, replace=False):
            n = rng.poisson(end * 0.01)
            for at in np.sort(rng.uniform(0, end, n)):
                pods = [p for p in s.pods if p.start <= at < p.end] or s.pods
                pod = pods[int(rng.integers(len(pods)))]
                out.append({"ts": clock.at(at), "service": s.name, "level": "info",
                            "message": str(template).format(n=int(rng.integers(1, 5000))),
                            "trace_id": None, "span_id": None,
                            "attributes": {"k8s.pod.name": pod.name,
                                           "service.version": pod.version}})
    out.extend(line for line in world.logs if line["ts"] < clock.at(end))
    return out


def _path(op: str) -> str:
    return op.split(" ", 1)[1] if " " in op else "/"


def access_log(world: World, batches: list[Batch], accounts: Accounts, end: float,
               rng: np.random.Generator) -> list[dict]:
    out = []
    clock = world.clock
    for batch in batches:
        root = batch.visits[0]
        for r in np.nonzero(batch.ts < end)[0]:
            reason = int(root.reason[r])
            status = _status(reason, root, r, world) if reason != OK else "200"
            out.append({"ts": clock.at(batch.ts[r]), "service": root.call.service,
                        "route": batch.route, "account_id": accounts.ids[batch.account[r]],
                        "status": int(status), "duration_ms": round(float(root.server_end[r]), 2),
                        "bytes": int(rng.lognormal(8, 1))})
    out.sort(key=lambda row: row["ts"])
    return out


def account_rows(rng: np.random.Generator, world: World, accounts: Accounts,
                 requests: list[dict]) -> list[dict]:
    last: dict[str, object] = {}
    for row in requests:
        last[row["account_id"]] = row["ts"]
    made = created_at(world, accounts)
    out = []
    for i, account in enumerate(accounts.ids):
        seen = last.get(account)
        created = made[i].replace(tzinfo=None)
        out.append({"account_id": account, "created_at": created,
                    "last_active_at": seen.replace(tzinfo=None) if seen else created,
                    "country": str(rng.choice(["US", "DE", "BR", "IN", "JP", "FR", "GB"])),
                    "plan": str(rng.choice(["free", "free", "pro", "team"]))})
    return out
