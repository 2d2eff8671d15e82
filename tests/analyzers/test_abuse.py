"""Abuse: 130 new accounts, each under any per-account limit, read from the documented
`account` attribute on spans, are a cohort of fake accounts, not a capacity surge."""

from datetime import timedelta

from casebook.analyzers.abuse import account_cohort
from casebook.analyzers.capacity import traffic_surge
from casebook.sdk.testing import DEFAULT_START, TinyStore, make_alert, run, span

ONSET = DEFAULT_START
ALERT = make_alert("SearchLatency", service="search", starts_at=ONSET)


def low_and_slow(batch: bool) -> TinyStore:
    """10 regular accounts send 4 requests a minute; from the onset 130 new ones send 1 each."""
    spans, accounts, rows = [], [], []
    regular = [f"user-{i}" for i in range(10)]
    newcomers = [f"n-{i}" for i in range(130)]
    for minute in range(-30, 6):
        ts = ONSET + timedelta(minutes=minute)
        senders = [(a, 4) for a in regular] + ([(a, 1) for a in newcomers] if minute >= 0 else [])
        count = 0
        for account, n in senders:
            for k in range(n):
                count += 1
                spans.append(span(f"{minute}-{account}-{k}", "s", None, "search", "GET /q",
                                  ts + timedelta(seconds=k), 12.0, account=account))
        rows.append({"ts": ts, "name": "http_requests_total", "service": "search",
                     "value": float(count)})
    for i, account in enumerate(regular):
        accounts.append({"account_id": account, "created_at": ONSET - timedelta(days=300 + i),
                         "last_active_at": ONSET - timedelta(hours=1)})
    for i, account in enumerate(newcomers):
        created = ONSET - timedelta(days=2, seconds=5 * i) if batch else \
            ONSET - timedelta(days=30 * i + 5)
        accounts.append({"account_id": account, "created_at": created,
                         "last_active_at": None})
    return TinyStore().add("spans", spans).add("metrics", rows).add("accounts", accounts)


def findings(store: TinyStore):
    surge = run(traffic_surge, alert=ALERT, store=store, params={"service": "search"},
                upstream={"compute_saturation": None}).finding
    cohort = run(account_cohort, alert=ALERT, store=store, params={"service": "search"},
                 upstream={"request_burst": None, "traffic_surge": surge}).finding
    return surge, cohort


def test_new_accounts_created_in_one_batch_are_abuse_that_explains_the_surge():
    surge, cohort = findings(low_and_slow(batch=True))
    assert surge.new_clients == 130
    assert cohort.category == "abuse" and "traffic_surge" in cohort.explains
    assert cohort.summary.startswith("129 of the 130 new accounts sending to search belong to 130 accounts")


def test_new_clients_with_accounts_of_all_ages_are_a_real_surge():
    surge, cohort = findings(low_and_slow(batch=False))
    assert surge.new_clients == 130 and cohort is None
