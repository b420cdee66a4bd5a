"""The regression gate on synthetic sample sets: noise is ignored, a real 2x slowdown is flagged; baselines and options."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from fixtures.options import parse_alpha, parse_bool, parse_percent
from fixtures.regression import (
    BaselineError,
    RegressionPolicy,
    compare,
    load_baseline,
    machine_differences,
    parse_baseline,
    resolve_baseline,
)

POLICY = RegressionPolicy(threshold=0.10, alpha=0.01)


def rounds(seed: int, n: int = 30, scale: float = 1.0) -> list[float]:
    """Latency-like rounds: 10 ms, log-normal jitter (skewed, a right tail) — seconds."""
    rng = np.random.default_rng(seed)
    return list(scale * 0.010 * rng.lognormal(mean=0.0, sigma=0.15, size=n))


@pytest.mark.parametrize("seed", range(20))
def test_pure_noise_is_not_flagged(seed):
    result = compare("t", rounds(1000 + seed), rounds(2000 + seed), POLICY)
    assert not result.regressed


def test_a_real_2x_slowdown_is_flagged():
    result = compare("t", rounds(1), rounds(2, scale=2.0), POLICY)
    assert result.regressed
    assert result.change == pytest.approx(1.0, abs=0.15)
    assert result.p_value < 1e-9


def test_significant_but_under_threshold_is_not_flagged():
    # 5% slower with almost no noise: certain, but under the 10% a user cares about.
    base = [0.010 + i * 1e-6 for i in range(20)]
    result = compare("t", base, [x * 1.05 for x in base], POLICY)
    assert result.significant and not result.slower and not result.regressed


def test_too_few_rounds_can_never_flag():
    # 3 vs 3 rounds: the exact one-sided p can't go below 1/C(6,3) = 0.05 > alpha.
    result = compare("t", [0.010, 0.011, 0.012], [0.030, 0.031, 0.032], POLICY)
    assert result.underpowered and result.p_value == pytest.approx(0.05) and not result.regressed
    assert not compare("t", [0.01] * 5, [0.02] * 5, POLICY).underpowered  # 1/C(10,5) = 0.004 < 0.01


def test_identical_constant_rounds_are_no_evidence():
    assert compare("t", [0.01] * 5, [0.01] * 5, POLICY).p_value == 1.0


def test_flag_line_names_medians_change_and_p_value():
    result = compare("t", [0.010, 0.011, 0.012, 0.013, 0.014], [0.020, 0.021, 0.022, 0.023, 0.024], POLICY, "base.json")
    assert result.long_repr == (
        "regressed: median 12.000 ms (baseline) -> 22.000 ms (+83.3% > 10%), one-sided Mann-Whitney U p=0.004 < "
        "alpha 0.01 (5 vs 5 rounds) [baseline base.json]"
    )


def saved(**stats_extra) -> dict:
    return {
        "machine_info": {"cpu_brand": "AMD EPYC", "gpu": None, "torch": "2.14.1"},
        "benchmarks": [{"name": "test_latency[x]", "stats": {"median": 0.01, **stats_extra}}],
    }


def test_baseline_samples_by_test_name():
    baseline = parse_baseline(json.dumps(saved(data=[0.01, 0.02])), "b.json")
    assert baseline.samples == {"test_latency[x]": (0.01, 0.02)}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (json.dumps(saved()), "b.json: test_latency[x] has no per-round samples (stats.data): save the baseline with "
                              "--benchmark-save-data (or --benchmark-json)"),
        ("{not json", "b.json: not a pytest-benchmark JSON file: Expecting property name enclosed in double quotes: "
                      "line 1 column 2 (char 1)"),
        ("[]", "b.json: not a pytest-benchmark JSON file: no 'benchmarks' list"),
        (json.dumps({"benchmarks": []}), "b.json: the baseline holds no benchmarks"),
        (json.dumps(saved(data=["x"])), "b.json: test_latency[x] has malformed stats.data: expected a list of seconds"),
    ],
    ids=["no-data", "corrupt", "not-benchmark-json", "empty", "bad-data"],
)
def test_bad_baselines_give_one_line(text, message):
    with pytest.raises(BaselineError) as error:
        parse_baseline(text, "b.json")
    assert str(error.value) == message


def test_missing_baseline(tmp_path):
    with pytest.raises(BaselineError, match=r"nope\.json: baseline file not found$"):
        load_baseline(tmp_path / "nope.json")
    with pytest.raises(BaselineError, match=r"^0042: baseline not found: neither a file nor a saved run"):
        resolve_baseline("0042", lambda value: [])


def test_baseline_from_a_file_or_the_storage(tmp_path):
    file = tmp_path / "b.json"
    file.write_text("{}")
    assert resolve_baseline(str(file), None) == file
    newest = [Path("x/0001_a.json"), Path("x/0002_b.json")]
    assert resolve_baseline("000", lambda value: newest) == Path("x/0002_b.json")


def test_machine_differences():
    info = saved()["machine_info"]
    assert machine_differences(info, dict(info)) == []
    assert machine_differences(info, {**info, "gpu": "NVIDIA H200", "torch": "2.15.0"}) == [
        "gpu: baseline None, now 'NVIDIA H200'",
        "torch: baseline '2.14.1', now '2.15.0'",
    ]


def test_option_parsers():
    assert parse_percent("10%") == pytest.approx(0.10) and parse_percent("2.5") == pytest.approx(0.025)
    assert parse_alpha("0.05") == 0.05 and parse_bool("yes") is True and parse_bool("0") is False
    for parse, text in ((parse_percent, "-1%"), (parse_percent, "ten"), (parse_alpha, "1"), (parse_bool, "maybe")):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)
