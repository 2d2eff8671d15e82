import re

import pytest

from casebook.sdk import (
    Alert,
    AnalyzerDefinitionError,
    Finding,
    Telemetry,
    TimeWindow,
    analyzer,
    from_finding,
)
from casebook.sdk.analyzer import spec_of
from casebook.sdk.testing import make_alert


class Slow(Finding):
    seconds: float


def test_decorator_returns_the_function_unchanged_with_a_spec():
    def latency_spike(telemetry: Telemetry, service: str) -> Slow | None:
        return None

    decorated = analyzer(match={"alertname": "Slow"}, timeout_s=5)(latency_spike)
    assert decorated is latency_spike
    spec = spec_of(latency_spike)
    assert spec.name == "latency_spike"
    assert spec.injections == {"telemetry": "telemetry"}
    assert list(spec.params) == ["service"]
    assert spec.timeout_s == 5.0
    assert spec.returns is Slow


def test_injection_by_type_and_chaining_by_name():
    @analyzer
    def slow_dependency(alert: Alert, window: TimeWindow, telemetry: Telemetry,
                        latency_spike: Slow | None, limit: int = 3) -> Slow | None:
        return None

    spec = spec_of(slow_dependency)
    assert spec.injections == {"alert": "alert", "window": "window", "telemetry": "telemetry"}
    assert spec.upstreams["latency_spike"].optional is True
    assert spec.upstreams["latency_spike"].finding_type is Slow
    assert spec.params["limit"].required is False and spec.params["limit"].default == 3
    assert spec.depends_on == {"latency_spike"}


def test_every_problem_is_reported_at_once_with_its_fix():
    def broken(x, telemetry: Telemetry) -> int: ...

    with pytest.raises(AnalyzerDefinitionError) as caught:
        analyzer(match={"a": 3}, fan_out={"zz": lambda: []}, timeout_s=-1)(broken)
    message = str(caught.value)
    assert message.startswith("5 problems in analyzer definitions:")
    assert "parameter 'x' has no type annotation" in message
    assert "fix: annotate it: `x: Telemetry`" in message
    assert "it returns <class 'int'>, not a Finding subclass" in message
    assert "match['a'] is int, not a string or regex" in message
    assert "fan_out names 'zz', which is not a plain parameter (plain: none)" in message
    assert "timeout_s=-1 is not a positive number of seconds" in message
    assert "test_analyzer.test_every_problem_is_reported_at_once_with_its_fix.<locals>.broken" \
        in message


def test_missing_return_annotation_and_unfillable_types():
    def nothing_declared(telemetry: Telemetry, when: object): ...

    with pytest.raises(AnalyzerDefinitionError) as caught:
        analyzer(nothing_declared)
    message = str(caught.value)
    assert "parameter 'when' has type object, which casebook cannot fill" in message
    assert "it has no return annotation" in message
    assert "fix: declare what it returns, e.g. `-> MyFinding | None`" in message


def test_async_functions_are_refused():
    async def racing(telemetry: Telemetry) -> Slow | None: ...

    with pytest.raises(AnalyzerDefinitionError, match="not async functions or generators"):
        analyzer(racing)


def test_label_matchers_exact_regex_and_predicate():
    @analyzer(match={"alertname": "Slow", "service": re.compile("checkout-.*")},
              when=lambda alert: alert.labels.get("env") != "dev")
    def latency(telemetry: Telemetry) -> Slow | None: ...

    spec = spec_of(latency)
    assert spec.applies_to(make_alert("Slow", service="checkout-eu", env="prod"))
    assert not spec.applies_to(make_alert("Slow", service="checkout-eu", env="dev"))
    assert not spec.applies_to(make_alert("Slow", service="cart"))
    assert not spec.applies_to(make_alert("Fast", service="checkout-eu"))
    assert spec.describe_match() == "alertname='Slow', service=~'checkout-.*', when <lambda>()"


def test_fan_out_from_a_finding_field():
    class Accounts(Finding):
        accounts: list[str]

    @analyzer(fan_out={"account": from_finding("suspicious_accounts", "accounts")})
    def account_history(telemetry: Telemetry, account: str) -> Slow | None: ...

    assert spec_of(account_history).depends_on == {"suspicious_accounts"}


def test_memory_mb_sets_the_invocations_ceiling_and_is_checked():
    class Slow(Finding):
        pass

    @analyzer(memory_mb=512)
    def big_join(telemetry: Telemetry) -> Slow | None:
        return None

    assert spec_of(big_join).memory_mb == 512

    def greedy(telemetry: Telemetry) -> Slow | None:
        return None

    for wrong in (0, -5, 1.5, "1G", True):
        with pytest.raises(AnalyzerDefinitionError) as caught:
            analyzer(memory_mb=wrong)(greedy)
        assert f"memory_mb={wrong!r} is not a positive whole number of megabytes" in str(
            caught.value
        )
        assert "fix: use e.g. memory_mb=512, or leave it out for the worker's ceiling" in str(
            caught.value
        )
