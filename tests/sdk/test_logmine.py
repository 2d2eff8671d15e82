import pytest

from casebook.sdk.logmine import mask_message, mine_templates


def test_masking_replaces_ids_addresses_times_and_numbers():
    message = (
        "2026-01-01T12:00:03Z req 5f0c6a1e-2b3d-4c5e-8f90-a1b2c3d4e5f6 from 10.1.2.3:443 "
        "hash 9f86d081884c7d65 took 12.5ms code 0x1F"
    )
    assert mask_message(message) == "<TIME> req <UUID> from <IP> hash <HEX> took <NUM>ms code <HEX>"


def test_new_and_grown_templates_rank_first():
    before = [f"served /item/{i} in {i % 9} ms" for i in range(300)]
    before += [f"cache miss for key user:{i}" for i in range(10)]
    after = [f"served /item/{i} in {i % 7} ms" for i in range(290)]
    after += [f"cache miss for key user:{i}" for i in range(60)]
    after += [f"connection refused by 10.0.0.{i % 4}:5432" for i in range(25)]
    changes = mine_templates(before, after)
    first, second = changes[0], changes[1]
    assert (first.template, first.status) == ("cache miss for key user:<NUM>", "up")
    assert (first.before, first.after, first.ratio) == (10, 60, 6.0)
    assert (second.template, second.status, second.after) == (
        "connection refused by <IP>",
        "new",
        25,
    )
    assert second.example == "connection refused by 10.0.0.0:5432"
    steady = changes[2]
    assert steady.status == "steady" and (steady.before, steady.after) == (300, 290)


def test_durations_turn_counts_into_rates():
    before, after = ["disk full"] * 60, ["disk full"] * 10
    change = mine_templates(before, after, before_duration=3600, after_duration=600)[0]
    assert change.status == "steady" and change.ratio == pytest.approx(1.0)
    assert mine_templates(["disk full"] * 5, [])[0].status == "gone"
    with pytest.raises(ValueError, match="give both before_duration and after_duration"):
        mine_templates(before, after, before_duration=60)
