"""The redaction step's screen skips only detectors that cannot match: same text out, every time.

The reference runs every detector over every text, as the step did before it had a screen.
"""

import random
import string

import pytest

from casebook.executor.redaction import _detectors, _replace, configure, redact, secrets_in
from casebook.executor.redaction.prefilter import Screen, requirements

SAMPLES = [
    "key AKIAQYLPMN5HHHFPZAM2 in use",
    "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY",
    "creds AKIAIOSFODNN7EXAMPLF:je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEZ",
    "Authorization: Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    "session eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhY2N0LTQyIn0.Xk3hQ9c2vB8nT1mR5sW7yZ0aL4pD6fG",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAq7BFUpkGp3+LQmlQ\n-----END RSA PRIVATE KEY-----",
    "dial postgres://orders:pg-Sup3rSecret@db.internal:5432/orders",
    "dsn=app:Dsn-Passw0rd-77@tcp(mysql:3306)/orders",
    "redis://:r3disPassw0rd@cache:6379/0",
    "xoxb-2048-4096-AbCdEfGhIjKlMnOpQrStUvWx and xapp-1-A0123ABCD-1234567890-0a1b2c3d4e5f",
    "notify https://hooks.slack.com/services/T0AAA1111/B0BBB2222/c3CCCc3CCCc3CCCc3CCCc3CC",
    "ghp_Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2 github_pat_11AAAAAAA0abcdefghijkl_MNOPQRSTUVWXYZ01",
    "charge with sk_live_4eC39HqLyjWDarjtT1zdp7dc, rk_live_51H8x2Lk9Qw3Er5Ty7Ui9Op1",
    "maps key AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
    "ANTHROPIC sk-ant-api03-Leaked-Key-0123456789abcdef",
    "DB_PASSWORD=correct-horse-battery",
    "APP_CLIENT_SECRET=Qm9vbS1zZWNyZXQtdmFsdWUtOTk",
    "DEPLOY_TOKEN: dG9rZW4tZm9yLWRlcGxveS0xMjM0",
    "card 4242 4242 4242 4242 declined; pan=5555555555554444",
    "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",
    "login by jane.doe+ops@corp-mail.example.com",
    # Keys and findings as a large investigation makes them, clean and with a secret inside.
    'dependency_walk{"service":"svc-0123"}',
    'error_ratio{"service":"svc-12345","token":"dG9rZW4tZm9yLWRlcGxveS0xMjM0"}',
    'probe{"dsn":"postgres://orders:pg-Sup3rSecret@db.internal:5432/orders"}',
    "svc-0123 calls 13 services in the window.",
    "40% of calls to svc-1714 failed",
    # Case and letters only Unicode folds: the screen must not be fooled by them.
    "PASSWORD = Hunter2-Hunter2",
    "aws_SECRET_access_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY",
    "db_paſſword=correct-horse-battery",
    "api_KEY=0123456789abcdefABCDEF",
    "token: ٣٤٥٦٧٨٩٠١٢٣٤٥٦٧٨ and 4242 4242 4242 4242",
    "telegram 123456789:AAE-abcdefghijklmnopqrstuvwxyz012345",
]


def unscreened(text: str) -> str:
    """Every detector over the text, in order: the step without its screen."""
    for detector in _detectors(""):
        text = _replace(detector, text, [])
    return text


@pytest.mark.parametrize("text", SAMPLES)
def test_the_screen_changes_nothing_the_detectors_would_do(text, monkeypatch):
    monkeypatch.delenv("CASEBOOK_REDACT_PATTERNS", raising=False)
    assert redact(text) == unscreened(text)


def test_the_screen_agrees_on_texts_spliced_from_secrets(monkeypatch):
    monkeypatch.delenv("CASEBOOK_REDACT_PATTERNS", raising=False)
    rng = random.Random(15)
    pieces = [piece for sample in SAMPLES for piece in sample.split(" ")]
    noise = string.ascii_letters + string.digits + ":=@/._-\"' "
    for _ in range(400):
        words = rng.sample(pieces, 3) + ["".join(rng.choices(noise, k=rng.randint(1, 30)))]
        text = rng.choice([" ", "_", "=", ":", ""]).join(words)
        assert redact(text) == unscreened(text), text


def test_a_screened_detector_still_finds_its_secret(monkeypatch):
    monkeypatch.delenv("CASEBOOK_REDACT_PATTERNS", raising=False)
    text = 'lookup{"service":"svc-7","token":"dG9rZW4tZm9yLWRlcGxveS0xMjM0"}'
    assert redact(text) == 'lookup{"service":"svc-7","token":"[redacted secret]"}'
    assert secrets_in(text) == ["secret"]


def test_operator_patterns_are_screened_like_the_rest(monkeypatch):
    monkeypatch.setenv("CASEBOOK_REDACT_PATTERNS", r"INTERNAL-ID-\d+")
    configure([])
    try:
        assert redact("ticket INTERNAL-ID-884421 attached") == "ticket [redacted custom] attached"
        assert redact("ticket internal-id-884421 attached") == "ticket internal-id-884421 attached"
    finally:
        monkeypatch.delenv("CASEBOOK_REDACT_PATTERNS")
        configure([])


def test_what_a_pattern_requires():
    import re

    needs = requirements(re.compile(r"\b(?:sk|rk)_live_[0-9a-z]{10,}"))
    assert [n.strings for n in needs][0] == ("_live_",)
    folded = requirements(re.compile(r"bearer\s+\w+", re.I))
    assert [(n.strings, n.folded) for n in folded] == [(("bearer",), True)]
    # An optional part, or a branch with an empty side, requires nothing.
    assert requirements(re.compile(r"(?:abc)?x*")) == ()
    assert requirements(re.compile(r"(?:abc|)\s+")) == ()
    screen = Screen([re.compile(r"abc\d"), re.compile(r"\d{4}")])
    assert screen.candidates("xx abc1") == [0, 1]
    assert screen.candidates("nothing here") == [1]  # digits alone say too little: it runs
    assert screen.candidates("ſabc") == [0, 1]  # not ASCII: everything long enough runs
    assert screen.candidates("abc") == []  # shorter than any match of either
