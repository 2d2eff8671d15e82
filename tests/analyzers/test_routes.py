"""Routes: the edge's access log names the route that took the extra traffic, and the service
behind it whose own time per request grew is the one that ran out of capacity."""

from datetime import timedelta
from functools import cache

from casebook.analyzers.abuse import account_cohort
from casebook.analyzers.capacity import traffic_surge
from casebook.analyzers.routes import route_surge
from casebook.sdk.testing import DEFAULT_START, TinyStore, make_alert, run, span

ONSET = DEFAULT_START
ALERT = make_alert("GatewayLatency", service="gw", starts_at=ONSET + timedelta(minutes=4))


def access_log(newcomers: list[str], surging: bool = True) -> list[dict]:
    """gw serves GET /orders and GET /home, 2 a minute each; from the onset GET /orders also
    gets 4 a minute from `newcomers` (or from the regular clients when there are none)."""
    rows = []
    for minute in range(-20, 10):
        ts = ONSET + timedelta(minutes=minute)
        for route in ("GET /orders", "GET /home"):
            senders = [f"u-{(minute + i) % 20}" for i in range(2)]
            if surging and route == "GET /orders" and minute >= 0:
                senders += newcomers[4 * minute:4 * minute + 4] if newcomers else senders * 2
            for k, account in enumerate(senders):
                rows.append({"ts": ts + timedelta(seconds=k), "service": "gw", "route": route,
                             "account_id": account, "status": 200})
    return rows


def traces(second: bool = False, slow: tuple[str, ...] = ("orders",)) -> list[dict]:
    """GET /orders at gw calls orders (and then `second`), which calls stock; from the onset
    the services in `slow` work 20 times longer per request."""
    rows = []
    for i in range(-12, 8):
        ts = ONSET + timedelta(minutes=i, seconds=7)
        after = i >= 0
        own = {s: (20 if after and s in slow else 1) * base
               for s, base in (("orders", 10.0), ("stock", 5.0), ("billing", 8.0))}
        t = f"t{i}"
        calls = [("orders", "o")] + ([("billing", "b")] if second else [])
        start, children = ts + timedelta(milliseconds=1), []
        for service, tag in calls:
            inner = own["stock"] + 2 if service == "orders" else 0.0
            length = own[service] + inner + 2
            children.append(span(t, f"c{tag}", "root", "gw", f"GET /{service}", start, length,
                                 **{"peer.service": service}))
            children.append(span(t, f"s{tag}", f"c{tag}", service, f"GET /{service}",
                                 start + timedelta(milliseconds=1), length - 2))
            if service == "orders":
                at = start + timedelta(milliseconds=1 + own["orders"])
                children.append(span(t, "cs", "so", "orders", "GET /stock", at, own["stock"] + 2,
                                     **{"peer.service": "stock"}))
                children.append(span(t, "ss", "cs", "stock", "GET /stock",
                                     at + timedelta(milliseconds=1), own["stock"]))
            start += timedelta(milliseconds=length)
        total = (start - ts).total_seconds() * 1000 + 1
        rows += [span(t, "root", None, "gw", "GET /orders", ts, total), *children]
    return rows


def accounts(newcomers: list[str], batch: bool) -> list[dict]:
    rows = [{"account_id": f"u-{i}", "created_at": ONSET - timedelta(days=400 - 9 * i),
             "last_active_at": ONSET} for i in range(20)]
    for i, account in enumerate(newcomers):
        created = ONSET - timedelta(hours=20, seconds=20 * i) if batch else \
            ONSET - timedelta(days=11 * i + 3)
        rows.append({"account_id": account, "created_at": created, "last_active_at": None})
    return rows


@cache
def store(newcomers: tuple[str, ...] = (), batch: bool = False, second: bool = False,
          slow: tuple[str, ...] = ("orders",)) -> TinyStore:
    """One store per shape, shared by the tests that read it (they only read)."""
    rates = [{"ts": ONSET + timedelta(minutes=minute), "name": "http_requests_total",
              "service": "stock", "value": 6.0 if minute >= 0 else 2.0}
             for minute in range(-20, 10)]
    return TinyStore().add("requests", access_log(list(newcomers))) \
        .add("spans", traces(second, slow)).add("accounts", accounts(list(newcomers), batch)) \
        .add("metrics", rates)


def surge(data: TinyStore):
    return run(route_surge, alert=ALERT, store=data).finding


def test_the_route_that_surged_names_the_service_whose_own_time_grew():
    finding = surge(store())
    assert (finding.route, finding.edge, finding.service) == ("GET /orders", "gw", "orders")
    assert finding.category == "capacity" and finding.ratio == 3.0
    assert finding.title == "GET /orders traffic up 3.0x; orders ran out of capacity"
    assert finding.summary == (
        "GET /orders at gw went from 2 to 6 requests per minute at 12:00 UTC (+4/min); "
        "orders's own time per request went from 10 to 200 ms (20x) while it served the route.")
    assert finding.reached == ["gw", "orders", "stock"]


def test_a_callee_that_ran_out_is_named_over_the_service_that_waits_on_it():
    assert surge(store(slow=("stock",))).service == "stock"


def test_of_two_callees_that_ran_out_alike_the_one_the_route_calls_first_is_named():
    finding = surge(store(second=True, slow=("orders", "billing")))
    assert finding.service == "orders"
    assert surge(store(second=True, slow=("billing",))).service == "billing"


def test_steady_routes_are_no_surge():
    steady = TinyStore().add("requests", access_log([], surging=False)).add("spans", traces())
    assert surge(steady) is None


def test_other_services_the_route_reaches_only_carried_the_surge():
    data = store()
    found = surge(data)
    carried = run(traffic_surge, alert=ALERT, store=data, params={"service": "stock"},
                  upstream={"compute_saturation": None, "route_surge": found}).finding
    assert carried.confidence == 0.2 and carried.summary.endswith(
        "it came with GET /orders at gw, which ran orders out of capacity.")


def test_a_batch_of_new_accounts_on_the_route_is_abuse_of_the_routes_service():
    newcomers = tuple(f"n-{i}" for i in range(40))
    for batch, expected in ((True, "orders"), (False, None)):
        data = store(newcomers, batch=batch)
        found = surge(data)
        assert found.new_clients == 40
        cohort = run(account_cohort, alert=ALERT, store=data, params={"service": "gw"},
                     upstream={"request_burst": None, "traffic_surge": None,
                               "route_surge": found}).finding
        assert (cohort.entities[0].name if cohort else None) == expected
        if cohort:
            assert cohort.category == "abuse" and "route_surge" in cohort.explains


def test_a_surge_every_service_kept_pace_with_explains_no_failure():
    finding = surge(store(slow=()))
    assert finding.title == "GET /orders traffic up 3.0x; nothing behind it ran out"
    assert finding.summary.endswith(
        "gw sends the route to orders first; its own time per request stayed at 1.0x the "
        "usual, and no service the route reaches ran out.")
    assert finding.confidence == 0.3 and finding.explains == [] and not finding.ran_out
    carried = run(traffic_surge, alert=ALERT, store=store(slow=()), params={"service": "stock"},
                  upstream={"compute_saturation": None, "route_surge": finding}).finding
    assert carried.summary.endswith(
        "it came with GET /orders at gw, which every service it reaches kept pace with.")


def test_a_level_already_there_when_the_window_opens_is_no_onset():
    # The period before the window was quieter, but inside the window the route never rose.
    window_start = ALERT.starts_at - timedelta(minutes=60)
    quiet = [{"ts": window_start - timedelta(minutes=m), "service": "gw", "route": "GET /orders",
              "account_id": f"u-{m % 20}", "status": 200} for m in range(1, 40)]
    busy = [{"ts": window_start + timedelta(minutes=m, seconds=k), "service": "gw",
             "route": "GET /orders", "account_id": f"u-{(m + k) % 20}", "status": 200}
            for m in range(0, 70) for k in range(3)]
    data = TinyStore().add("requests", quiet + busy).add("spans", traces())
    assert surge(data) is None
