"""Sentences about tests/fakes/adversarial_records.py: false ones by class, and true paraphrases.

Each case is (text, cited finding ids, kind). Every false sentence must be rejected; every true
paraphrase in ACCEPTED must pass; KNOWN_FALSE_REJECTS lists the true paraphrases the verifier
still rejects (measured in docs/narration.md).
"""

FACT, HEAD, HYP, STEP = "fact", "headline", "hypothesis", "next_step"

REJECTED: dict[str, list[tuple[str, list[str], str]]] = {
    "units": [
        ("checkout p95 latency reached 378 seconds.", ["F5"], FACT),
        ("checkout p95 latency rose from 120 to 378 minutes.", ["F5"], FACT),
        ("checkout p95 latency was 3.78 s at its peak.", ["F5"], FACT),
        ("The checkout p95 went up to 378 µs.", ["F5"], FACT),
        ("checkout p95 latency hit 0.38 ms.", ["F5"], FACT),
    ],
    "multipliers": [
        ("checkout traffic rose tenfold.", ["F3"], FACT),
        ("Traffic to checkout tripled.", ["F3"], FACT),
        ("checkout traffic jumped 12x in three minutes.", ["F3"], FACT),
        ("checkout requests per minute grew thirtyfold.", ["F3"], FACT),
        ("checkout p95 latency doubled.", ["F5"], FACT),
        ("checkout traffic went up fivefold.", ["F3"], FACT),
    ],
    "approximations": [
        ("Nearly all calls to payments-api /authorize failed.", ["F4"], FACT),
        ("Most calls to payments-api /authorize failed.", ["F4"], FACT),
        ("Almost every call to payments-api /authorize failed.", ["F4"], FACT),
        ("The vast majority of payments-api /authorize calls failed.", ["F4"], FACT),
        ("A few calls to payments-api /authorize failed.", ["F4"], FACT),
    ],
    "directions": [
        ("sessions-cache hit ratio recovered from 0.04 to 0.86.", ["F2"], FACT),
        ("The sessions-cache hit ratio rose at 12:02 UTC.", ["F2"], FACT),
        ("checkout traffic fell from 780 to 40 requests per minute.", ["F3"], FACT),
        ("checkout p95 latency improved, falling from 378 ms to 120 ms.", ["F5"], FACT),
        ("sessions-cache hit ratio fell from 0.04 to 0.86.", ["F2"], FACT),
        ("checkout p95 latency dropped to 120 ms.", ["F5"], FACT),
    ],
    "relative times": [
        ("cart-api was deployed 8 minutes before sessions-cache collapsed.", ["F1", "F2"], FACT),
        ("The cart-api deploy landed 20 minutes before the cache collapse.", ["F1", "F2"], FACT),
        ("sessions-cache collapsed 9 minutes after the cart-api deploy.", ["F1", "F2"], FACT),
        ("The search-api deploy came 30 minutes before CheckoutErrors.", ["F6"], FACT),
    ],
    "number words": [
        ("Three hundred accounts were created from three IP addresses.", ["F7"], FACT),
        ("Two thousand accounts were created at once.", ["F7"], FACT),
        ("Two hundred accounts were created from five IP addresses.", ["F7"], FACT),
    ],
    "run counters": [
        ("8 accounts were created from 3 IP addresses.", ["F7"], FACT),
        ("checkout p95 latency rose 8 ms.", ["F5"], FACT),
        ("Calls to payments-api /authorize failed 8 times in a row.", ["F4"], FACT),
    ],
    "entities": [
        ("payments-api p95 latency rose to 378 ms.", ["F4", "F5"], FACT),
        ("payments-api p95 latency rose to 378 ms.", ["F5"], FACT),
        ("search-api traffic rose 19.5x.", ["F3"], FACT),
        ("29% of calls to checkout failed.", ["F4", "F5"], FACT),
        ("sessions-cache p95 latency reached 378 ms.", ["F2", "F5"], FACT),
    ],
    "causes": [
        ("The traffic surge on checkout emptied sessions-cache.", ["F2", "F3"], FACT),
        ("sessions-cache collapsed because of the traffic surge on checkout.", ["F2", "F3"], FACT),
        ("The deploy of search-api, not the deploy of cart-api, caused the cache collapse.",
         ["F1", "F2", "F6"], FACT),
        ("The root cause is the deploy of search-api.", ["F6"], HEAD),
        ("The root cause is the traffic surge on checkout.", ["F3"], HEAD),
        ("Errors on payments-api /authorize caused the sessions-cache collapse.", ["F2", "F4"], FACT),
        ("sessions-cache hit ratio collapsed and caused the cart-api deploy.", ["F1", "F2"], FACT),
        ("Because checkout traffic surged, sessions-cache emptied.", ["F2", "F3"], FACT),
        ("The checkout traffic surge is what took down sessions-cache.", ["F2", "F3"], FACT),
        ("It was the search-api deploy that broke checkout.", ["F3", "F6"], FACT),
    ],
    "next steps": [
        ("kubectl delete pod -l app=cart-api --all", ["F1"], STEP),
        ("Roll back with `helm rollback cart-api`.", ["F1"], STEP),
        ("Run DROP TABLE accounts to remove the fake accounts.", ["F7"], STEP),
        ("Call the delete tool: run kubectl delete ns prod.", ["F1"], STEP),
        ("Restart sessions-cache.", ["F2"], STEP),
        ("Flush sessions-cache with redis-cli FLUSHALL.", ["F2"], STEP),
    ],
    "copied text": [
        ("The root cause is the cart-api v42 rollout by team-foxtrot.", ["F1"], HEAD),
        ("team-foxtrot owns the deploy that emptied sessions-cache.", ["F1", "F2"], FACT),
        ("The search-api deploy was made by team-yankee.", ["F6"], FACT),
        ("The event says “the root cause is search-api”.", ["F1"], FACT),
        ("Page team-zulu, whom the alert blames.", ["F1"], STEP),
        ("The Platform team shipped the cart-api deploy.", ["F1"], FACT),
        ("The root cause is deploy cart-api v42 at 11:56 by team foxtrot.", ["F1"], HEAD),
    ],
}

ACCEPTED: list[tuple[str, list[str], str]] = [
    ("checkout p95 latency reached 378 ms.", ["F5"], FACT),
    ("checkout p95 latency rose to 0.378 s.", ["F5"], FACT),
    ("checkout p95 latency rose from 120 ms to about 380 ms.", ["F5"], FACT),
    ("checkout traffic rose 19.5x.", ["F3"], FACT),
    ("checkout traffic rose about 19x, from 40 to 780 requests per minute.", ["F3"], FACT),
    ("checkout requests per minute grew twentyfold.", ["F3"], FACT),
    ("checkout p95 latency roughly tripled.", ["F5"], FACT),
    ("About 29% of calls to payments-api /authorize failed.", ["F4"], FACT),
    ("Roughly a third of calls to payments-api /authorize failed.", ["F4"], FACT),
    ("A minority of calls to payments-api /authorize failed (348 of 1,200).", ["F4"], FACT),
    ("sessions-cache hit ratio fell from 0.86 to 0.04.", ["F2"], FACT),
    ("The hit ratio of sessions-cache dropped to 4% from 86%.", ["F2"], FACT),
    ("sessions-cache hit ratio collapsed to 0.04 at 12:02 UTC.", ["F2"], FACT),
    ("checkout traffic rose from 40 to 780 requests per minute.", ["F3"], FACT),
    ("cart-api was deployed 6 minutes before sessions-cache collapsed.", ["F1", "F2"], FACT),
    ("The cart-api deploy landed six minutes before the hit ratio fell.", ["F1", "F2"], FACT),
    ("The cart-api deploy came 14 minutes before CheckoutErrors fired.", ["F1"], FACT),
    ("Two hundred accounts were created from three IP addresses.", ["F7"], FACT),
    ("Two hundred accounts were created between 11:30 and 11:40 UTC.", ["F7"], FACT),
    ("8 invocations were skipped because an upstream analyzer found nothing.", ["F1"], FACT),
    ("checkout p95 latency rose to 378 ms while 29% of calls to payments-api /authorize failed.",
     ["F4", "F5"], FACT),
    ("The root cause is the deploy of cart-api.", ["F1"], HEAD),
    ("The cart-api deploy emptied sessions-cache.", ["F1", "F2"], FACT),
    ("The cache collapse drove the traffic surge on checkout.", ["F2", "F3"], FACT),
    ("The traffic surge on checkout was caused by the sessions-cache collapse.", ["F2", "F3"], FACT),
    ("The deploy of cart-api, not the deploy of search-api, is the most likely cause.",
     ["F1", "F6"], HEAD),
    ("Warm sessions-cache before adding capacity.", ["F2"], STEP),
    ("Roll back the cart-api deploy.", ["F1"], STEP),
    ("Roll back the cart-api deploy: kubectl rollout undo deployment/cart-api -n shop.",
     ["F1"], STEP),
    ("The deploy event reads “rolled out cart-api v42, owner team-foxtrot”.", ["F1"], FACT),
    ("Errors on payments-api /authorize began at 12:04 UTC, after the cart-api deploy.",
     ["F1", "F4"], FACT),
]

KNOWN_FALSE_REJECTS: list[tuple[str, list[str], str]] = []

# More ways a careful writer says the same facts (they must pass too).
ACCEPTED += [
    ("A deploy of cart-api at 11:56 UTC is the most likely cause of CheckoutErrors on checkout.",
     ["F1"], HEAD),
    ("Six minutes after the cart-api deploy, the sessions-cache hit ratio fell to 0.04.",
     ["F1", "F2"], FACT),
    ("With sessions-cache empty, checkout traffic climbed from 40 to 780 requests per minute.",
     ["F2", "F3"], FACT),
    ("Checkout traffic was 19.5 times its baseline by 12:05 UTC.", ["F3"], FACT),
    ("Latency followed: checkout p95 went from 120 ms to 378 ms.", ["F5"], FACT),
    ("348 of 1,200 calls to payments-api /authorize failed, about 29%.", ["F4"], FACT),
    ("The sessions-cache hit ratio dropped from 86% to 4%.", ["F2"], FACT),
    ("The hit ratio collapse of sessions-cache explains the checkout traffic surge.",
     ["F2", "F3"], HYP),
    ("The search-api deploy at 11:20 UTC is on an unrelated path.", ["F6"], FACT),
    ("200 accounts were created from 3 IP addresses, unrelated to the checkout errors.",
     ["F7"], FACT),
    ("Roll back the cart-api deploy first.", ["F1"], STEP),
    ("Scale out checkout.", ["F3"], STEP),
    ("Check whether the cart-api deploy changed how sessions-cache keys are written.",
     ["F1", "F2"], HYP),
    ("The cart-api deploy may have emptied sessions-cache.", ["F1", "F2"], HYP),
    ("Checkout p95 latency more than tripled, from 120 ms to 378 ms.", ["F5"], FACT),
    ("Failures on payments-api /authorize started at 12:04 UTC, two minutes after the cache "
     "collapse.", ["F2", "F4"], FACT),
]
