import csv
import itertools
from pathlib import Path

import numpy as np
import pytest

from casebook.sdk.drilldown import drill_down, parse_slice, slice_name

RS = Path(__file__).parents[3] / "shared" / "data" / "rs"


def grid(errors_of, requests=1000, base_errors=10):
    """Rows for every (region, version, device) with a ratio measure."""
    return [
        {
            "region": r,
            "version": v,
            "device": d,
            "errors": errors_of(r, v, d),
            "requests": requests,
            "errors_before": base_errors,
            "requests_before": requests,
        }
        for r in ("eu", "us", "ap")
        for v in ("v1", "v2")
        for d in ("ios", "android", "web")
    ]


def ratio_drill(rows, **options):
    return drill_down(
        rows,
        ["region", "version", "device"],
        value="errors",
        baseline="errors_before",
        count="requests",
        baseline_count="requests_before",
        **options,
    )


def test_the_cause_is_the_slice_as_general_as_the_change():
    rows = grid(lambda r, v, d: 100 if (r, v) == ("eu", "v2") else 10)
    result = ratio_drill(rows)
    assert result.names == ["region=eu&version=v2"]
    cause = result.causes[0]
    assert cause.where == {"region": "eu", "version": "v2"}
    assert cause.rate == pytest.approx(0.1) and cause.baseline_rate == pytest.approx(0.01)
    assert cause.explanatory_power == pytest.approx(1.0, abs=0.01)
    assert cause.significance > result.chance_z and cause.score > 0.9
    assert result.explained == pytest.approx(1.0, abs=0.01)


def test_a_change_in_one_leaf_is_not_blamed_on_its_parents():
    rows = grid(lambda r, v, d: 200 if (r, v, d) == ("us", "v1", "web") else 10)
    assert ratio_drill(rows).names == ["device=web&region=us&version=v1"]


def test_two_separate_causes_are_both_found():
    def errors(r, v, d):
        if r == "ap":
            return 80
        return 60 if (v, d) == ("v1", "ios") else 10

    result = ratio_drill(grid(errors))
    assert sorted(result.names) == ["device=ios&version=v1", "region=ap"]


def test_traffic_alone_explains_nothing_in_a_ratio_measure():
    rows = grid(lambda r, v, d: 10)
    for row in rows:
        if row["region"] == "eu":  # eu doubled its traffic and its errors, same rate
            row["requests"], row["errors"] = 2000, 20
    result = ratio_drill(rows)
    assert all(c.significance < result.chance_z for c in result.causes)


def test_additive_measures_and_drops():
    rng = np.random.default_rng(2)
    rows = []
    for region, isp in itertools.product("abcd", ("x", "y", "z")):
        base = 500.0
        value = rng.poisson(base * (0.2 if region == "c" else 1.0))
        rows.append({"region": region, "isp": isp, "value": value, "baseline": base})
    result = drill_down(rows, ["region", "isp"])
    assert result.names == ["region=c"]
    assert result.causes[0].ratio == pytest.approx(0.2, abs=0.03)
    assert result.total.change < 0


def test_noise_gives_a_best_guess_that_does_not_stand_out():
    rng = np.random.default_rng(9)
    rows = [
        {"a": a, "b": b, "value": rng.poisson(100), "baseline": 100.0}
        for a, b in itertools.product(range(6), range(5))
    ]
    result = drill_down(rows, ["a", "b"])
    assert len(result.causes) == 1
    assert result.causes[0].significance < result.chance_z + 1


def test_slice_names_are_sorted_pairs():
    assert slice_name({"p2p": 1, "bitrate": 2000.0}) == "bitrate=2000&p2p=1"
    assert parse_slice("bitrate=2000&p2p=1") == {"bitrate": "2000", "p2p": "1"}
    with pytest.raises(ValueError, match="slice name 'bitrate': part 'bitrate' is not dim=value"):
        parse_slice("bitrate")


def test_errors_name_the_column_and_the_fix():
    rows = [{"region": "eu", "value": 1, "baseline": 1}]
    with pytest.raises(
        ValueError, match="the rows have no column isp; their columns are region, value, baseline"
    ):
        drill_down(rows, ["region", "isp"])
    with pytest.raises(ValueError, match="pass both count= and baseline_count="):
        drill_down(rows, ["region"], count="value")
    with pytest.raises(ValueError, match="column value has negative values"):
        drill_down([{"region": "eu", "value": -1, "baseline": 1}], ["region"])


def rs_case_rows(case):
    with open(RS / f"{case['data']}.csv", encoding="utf-8") as handle:
        raw = list(csv.DictReader(handle))
    dims = [c for c in raw[0] if c not in ("min", "value", "cnt")]
    moment = int(case["timestamp"])
    history = {moment - 60 * i for i in range(1, 5)}  # the published harness's forecast
    leaves: dict[tuple[str, ...], list[float]] = {}
    for row in raw:
        t = int(row["min"])
        if t != moment and t not in history:
            continue
        sums = leaves.setdefault(tuple(row[d] for d in dims), [0.0, 0.0, 0.0, 0.0])
        offset = 0 if t == moment else 2
        sums[offset] += float(row["value"])
        sums[offset + 1] += float(row["cnt"])
    rows = [
        dict(zip(dims, key, strict=True)) | dict(zip(("v", "n", "bv", "bn"), sums, strict=True))
        for key, sums in leaves.items()
    ]
    return rows, dims


@pytest.mark.data
@pytest.mark.skipif(not RS.is_dir(), reason=f"{RS} is absent")
def test_robustspot_incidents_are_localised_better_than_published_methods():
    yaml = pytest.importorskip("yaml")
    cases = yaml.safe_load((RS / "anomaly.yaml").read_text(encoding="utf-8"))
    hits = predicted = expected = 0
    for case in cases:
        rows, dims = rs_case_rows(case)
        causes = case["cause"] if isinstance(case["cause"], list) else [case["cause"]]
        truth = {slice_name(c) for c in causes}
        names = set(drill_down(rows, dims, "v", "bv", count="n", baseline_count="bn").names)
        hits += len(truth & names)
        predicted += len(names)
        expected += len(truth)
    f1 = 2 * hits / (predicted + expected)
    assert len(cases) == 68 and f1 > 0.65  # RobustSpot, the best published method: 0.41
