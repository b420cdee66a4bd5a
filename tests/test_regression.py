"""The regression gate on synthetic sample sets: noise is ignored, a real 2x slowdown is flagged; baselines and options."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import PermutationMethod, mannwhitneyu, rankdata

from fixtures.json_contract import ContractError, differences, find_saved, load_run, parse_run, pick_saved
from fixtures.options import parse_alpha, parse_bool, parse_percent
from fixtures.regression import (
    EXACT_MAX_PAIRS,
    RegressionPolicy,
    bh_level,
    compare,
    exact_p_value,
    p_floor,
    u_test,
)
from fixtures.render.terminal import failure_line
from fixtures.verdicts import Baseline, BaselineError

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


@pytest.mark.parametrize(("n", "m", "p"), [(4, 5, 1 / 126), (3, 7, 1 / 120), (5, 4, 1 / 126), (5, 5, 1 / 252)])
def test_fewer_than_five_rounds_a_side_can_be_flagged(n, m, p):
    """The floor is 1/C(n+m, n), not "5 rounds each side": 4 vs 5 and 3 vs 7 fully separated rounds reach 0.01."""
    result = compare("t", [0.010 + i * 1e-4 for i in range(n)], [0.020 + i * 1e-4 for i in range(m)], POLICY)
    assert result.p_value == pytest.approx(p, rel=1e-12) == p_floor((n, m))
    assert result.method == "exact" and result.regressed and not result.underpowered


def test_ten_against_ten_separated_rounds_get_the_exact_p_not_the_approximation():
    result = compare("t", [0.010 + i * 1e-4 for i in range(10)], [0.020 + i * 1e-4 for i in range(10)], POLICY)
    assert result.method == "exact"
    assert result.p_value == pytest.approx(1 / 184_756, rel=1e-12)  # 5.4e-06; scipy's "auto" said 9.1e-05


def test_constant_sides_are_never_both_regressed_and_too_few_rounds():
    # CUDA events tick in about 0.5 us, so a tiny stage's rounds tie: 4 vs 4 constant rounds. The exact permutation
    # p-value of the tie pattern is 1/70 (0.014, not flagged); the normal approximation gave 0.0066 (flagged).
    result = compare("t", [0.0010] * 4, [0.0015] * 4, POLICY)
    assert result.p_value == pytest.approx(1 / 70, rel=1e-12) and result.method == "exact"
    assert result.underpowered and not result.significant and not result.regressed
    assert compare("t", [0.0010] * 5, [0.0015] * 5, POLICY).p_value == pytest.approx(1 / 252, rel=1e-12)
    for n, m in itertools.product(range(1, 9), repeat=2):
        result = compare("t", [0.0010] * n, [0.0015] * m, POLICY)
        assert result.regressed != result.underpowered, (n, m)


def brute_force_p(baseline, current):
    """P(current's midrank sum >= observed) over every split of the pooled rounds, enumerated one by one."""
    pooled = [*current, *baseline]
    ranks = rankdata(pooled)
    observed = ranks[: len(current)].sum()
    splits = list(itertools.combinations(range(len(pooled)), len(current)))
    return sum(ranks[list(s)].sum() >= observed - 1e-9 for s in splits) / len(splits)


def test_exact_p_values_match_independent_computations():
    rng = np.random.default_rng(7)
    for n, m in [(5, 5), (3, 7), (7, 3), (8, 12), (20, 30)]:  # no ties: scipy's exact distribution of U
        baseline, current = rng.random(n), rng.random(m) + 0.2
        assert exact_p_value(baseline, current) == pytest.approx(
            mannwhitneyu(current, baseline, alternative="greater", method="exact").pvalue, rel=1e-9)
    for n, m in [(6, 5), (5, 6), (4, 4), (7, 2), (2, 7), (3, 5)]:  # ties: every split, and scipy's permutation test
        baseline, current = rng.integers(0, 4, n) * 1e-3, rng.integers(1, 5, m) * 1e-3
        p = exact_p_value(baseline, current)
        assert p == pytest.approx(brute_force_p(baseline, current), rel=1e-12)
        assert p == pytest.approx(mannwhitneyu(current, baseline, alternative="greater",
                                               method=PermutationMethod(n_resamples=10**6)).pvalue, rel=1e-9)
    # The longer side current, ties making odd doubled rank sums: 34 of the C(9, 3) = 84 splits.
    assert exact_p_value([0.0, 0.0, 3.0], [0.0, 2.0, 0.0, 1.0, 1.0, 1.0]) == pytest.approx(34 / 84, rel=1e-12)
    assert brute_force_p([0.0, 0.0, 3.0], [0.0, 2.0, 0.0, 1.0, 1.0, 1.0]) == pytest.approx(34 / 84, rel=1e-12)


def test_the_method_is_exact_up_to_the_pair_limit_then_the_normal_approximation():
    assert EXACT_MAX_PAIRS == 1600
    rng = np.random.default_rng(3)
    baseline, current = list(rng.random(40)), list(rng.random(41) + 0.05)
    assert u_test(baseline, current[:40]) == (pytest.approx(exact_p_value(baseline, current[:40]), rel=1e-12), "exact")
    p, method = u_test(baseline, current)  # 40 x 41 pairs: the tie-corrected normal approximation
    assert method == "normal"
    assert p == pytest.approx(mannwhitneyu(current, baseline, alternative="greater", method="asymptotic").pvalue)
    assert u_test([0.01] * 50, [0.01] * 50) == (1.0, "exact")  # nothing to rank: one arrangement
    # 5 x 400 pairs: the normal approximation too (scipy's "auto" would count it exactly, one side being under 9).
    few, many = list(rng.random(5) + 0.3), list(rng.random(400))
    p, method = u_test(many, few)
    assert method == "normal"
    assert p == pytest.approx(mannwhitneyu(few, many, alternative="greater", method="asymptotic").pvalue, rel=1e-12)
    assert p != pytest.approx(mannwhitneyu(few, many, alternative="greater", method="exact").pvalue, rel=1e-3)


def test_normal_approximation_with_ties_by_hand():
    baseline, current = [0.001] * 20 + [0.002] * 21, [0.001] * 10 + [0.002] * 30  # 41 x 40 pairs, heavy ties
    n, m = len(baseline), len(current)
    ranks = rankdata([*current, *baseline])
    u = ranks[:m].sum() - m * (m + 1) / 2
    ties = sum(t**3 - t for t in (30, 51))
    sigma = math.sqrt(n * m / 12 * ((n + m + 1) - ties / ((n + m) * (n + m - 1))))
    z = (u - n * m / 2 - 0.5) / sigma
    p, method = u_test(baseline, current)
    assert method == "normal" and p == pytest.approx(0.5 * math.erfc(z / math.sqrt(2)), rel=1e-12)


def test_the_threshold_is_on_the_median_and_is_the_policys():
    base = [0.010] * 5
    # Median +5%, one slow round drags the mean up +84%: not slower.
    result = compare("t", base, [0.0105] * 4 + [0.050], POLICY)
    assert result.change == pytest.approx(0.05) and not result.slower
    # Median +15% (mean +15% too): slower at 10%, not at 20%.
    assert compare("t", base, [0.0115] * 5, POLICY).slower
    assert not compare("t", base, [0.0115] * 5, RegressionPolicy(threshold=0.20, alpha=0.01)).slower
    # Median +25%, mean only +4% (a fast round): slower at 10% and 20%, not at 30%.
    result = compare("t", base, [0.0125] * 4 + [0.001], POLICY)
    assert result.change == pytest.approx(0.25) and result.slower
    assert not compare("t", base, [0.0125] * 5, RegressionPolicy(threshold=0.30, alpha=0.01)).slower
    # The baseline's median too: one slow baseline round (mean 18 ms) leaves its median at 10 ms, so +15%.
    result = compare("t", [0.010] * 4 + [0.050], [0.0115] * 5, POLICY)
    assert result.baseline_median_s == 0.010 and result.change == pytest.approx(0.15) and result.slower


def test_alpha_is_the_policys_and_strict():
    base, slow = [0.010 + i * 1e-4 for i in range(4)], [0.020 + i * 1e-4 for i in range(4)]  # p = 1/70 = 0.0143
    assert not compare("t", base, slow, POLICY).significant
    assert compare("t", base, slow, RegressionPolicy(threshold=0.10, alpha=0.02)).regressed
    assert not compare("t", base, slow, RegressionPolicy(threshold=0.10, alpha=1 / 70)).significant  # p < alpha


def test_benjamini_hochberg_level():
    # m = 4 at 0.05: the step-up levels are 0.0125, 0.025, 0.0375, 0.05.
    assert bh_level([0.001, 0.02, 0.03, 0.5], 4, 0.05) == pytest.approx(0.0375)
    # Step-up, not step-down: the first p-value misses its level, yet the fourth meets 0.05, so all four are in.
    assert bh_level([0.013, 0.02, 0.03, 0.04], 4, 0.05) == pytest.approx(0.05)
    # p-values not known yet count as 1: the same three among ten cases.
    assert bh_level([0.001, 0.02, 0.03], 10, 0.05) == pytest.approx(0.005)
    assert bh_level([], 10, 0.05) == pytest.approx(0.005)  # no discovery: the first level
    assert bh_level([0.001, 0.002], 1, 0.05) == pytest.approx(0.05)  # more p-values than cases: m grows to 2
    assert bh_level([0.0125], 4, 0.05) == pytest.approx(0.0125)  # p must be under the level, not at it
    assert bh_level([0.001, 0.025], 4, 0.05) == 0.0125  # 0.025 is at 0.05*2/4, not under it
    assert bh_level([0.01], 0, 0.05) == 0.05 and bh_level([], 0, 0.05) == 0.05  # no case known: m is at least 1


def test_identical_constant_rounds_are_no_evidence():
    result = compare("t", [0.01] * 5, [0.01] * 5, POLICY)
    assert result.p_value == 1.0 and result.source == ""


def test_flag_line_names_medians_change_method_and_p_value():
    result = compare("t", [0.010, 0.011, 0.012, 0.013, 0.014], [0.020, 0.021, 0.022, 0.023, 0.024], POLICY, "base.json")
    assert failure_line(result) == (
        "regressed: median 12.000 ms (baseline) -> 22.000 ms (+83.3% > 10%), one-sided Mann-Whitney U p=0.004 (exact) "
        "< alpha 0.01 (5 vs 5 rounds) [baseline base.json]"
    )
    shared = dataclasses.replace(result, level=0.01 * 120 / 234, cases=234)
    assert failure_line(shared) == (
        "regressed: median 12.000 ms (baseline) -> 22.000 ms (+83.3% > 10%), one-sided Mann-Whitney U p=0.004 (exact) "
        "< 0.0051 (Benjamini-Hochberg: alpha 0.01 x 120/234 cases) (5 vs 5 rounds) [baseline base.json]"
    )
    assert shared.regressed
    assert not dataclasses.replace(result, level=0.01 / 234, cases=234).significant


def saved(**stats_extra) -> dict:
    return {
        "machine_info": {"cpu_brand": "AMD EPYC", "gpu": None, "torch": "2.14.1", "cpu_threads": 1},
        "benchmarks": [{"name": "test_latency[x]", "stats": {"median": 0.01, **stats_extra}}],
    }


def parse_baseline(text: str, source: str) -> Baseline:
    return Baseline.of(parse_run(text, source))


def test_baseline_samples_by_test_name():
    baseline = parse_baseline(json.dumps(saved(data=[0.01, 0.02])), "b.json")
    assert baseline.samples == {"test_latency[x]": (0.01, 0.02)}
    assert baseline.machine_info["cpu_threads"] == 1 and baseline.source == "b.json"
    assert parse_baseline(json.dumps({**saved(data=[1]), "machine_info": [1]}), "b.json").machine_info == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (json.dumps(saved()), "b.json: test_latency[x] has no per-round samples (stats.data): save the baseline again "
                              "with --benchmark-save and --bench-save-samples on, the default (or --benchmark-json)"),
        ("{not json", "b.json: not valid JSON (Expecting property name enclosed in double quotes at line 1 column 2)"),
        ("[]", "b.json: not a pytest-benchmark JSON (no 'benchmarks' list)"),
        (json.dumps({"benchmarks": []}), "b.json: no benchmarks in this run (an empty run)"),
        (json.dumps(saved(data=["x"])), "b.json: test_latency[x] has malformed stats.data: expected a list of seconds"),
        (json.dumps(saved(data=[])), "b.json: test_latency[x] has malformed stats.data: expected a list of seconds"),
        (json.dumps(saved(data=0.01)), "b.json: test_latency[x] has malformed stats.data: expected a list of seconds"),
        (json.dumps(saved(data=[True])), "b.json: test_latency[x] has malformed stats.data: expected a list of seconds"),
        (json.dumps({"benchmarks": [{"name": "a", "stats": {"data": [1]}}, 5]}), "b.json: benchmark 2 has no name or no stats"),
        (json.dumps({"benchmarks": [{"name": "a"}]}), "b.json: benchmark 1 has no name or no stats"),
        (json.dumps({"benchmarks": [{"stats": {"data": [1]}}]}), "b.json: benchmark 1 has no name or no stats"),
    ],
    ids=["no-data", "corrupt", "not-benchmark-json", "empty", "bad-data", "no-rounds", "not-a-list", "booleans",
         "not-a-table", "no-stats", "no-name"],
)
def test_bad_baselines_give_one_line(text, message):
    with pytest.raises(ContractError) as error:  # BaselineError, the gate's own, is one
        parse_baseline(text, "b.json")
    assert str(error.value) == message
    assert isinstance(error.value, BaselineError) == ("no per-round samples" in message)


def test_missing_saved_runs(tmp_path):
    with pytest.raises(ContractError, match=r"nope\.json: no such file$"):
        load_run(tmp_path / "nope.json")
    with pytest.raises(ContractError, match=r"^.*: is a folder, not a JSON file$"):
        load_run(tmp_path)
    with pytest.raises(ContractError) as error:
        find_saved("0042", None)
    assert str(error.value) == (
        "0042: not found: neither a file, a run number (0003), a full name (0003_base) nor a name (base) of a saved "
        "run; no run is saved on this machine (--benchmark-save=NAME saves one)"
    )

    def rejects(value):
        raise ValueError("not a glob the storage understands")

    with pytest.raises(ContractError, match=r"^\[x: not found: neither a file, a run number"):
        find_saved("[x", rejects)
    file = tmp_path / "b.json"
    file.write_text(json.dumps(saved(data=[0.01])))
    assert load_run(file).source == str(file)
    runs = [Path("m/0001_run.json"), Path("m/0002_after.json")]
    with pytest.raises(ContractError) as error:
        find_saved("base", lambda value: runs if value == "*" else [])
    assert str(error.value).endswith("a name (base) of a saved run; saved on this machine: 0001_run, 0002_after")


SAVED_RUNS = [Path("m/0001_base.json"), Path("m/0002_run.json"), Path("m/0003_base.json"), Path("m/0004_after.json")]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("base", "0003_base"),  # a name: the latest run saved under it
        ("after", "0004_after"),
        ("0001_base", "0001_base"),  # a full name
        ("0001", "0001_base"),  # a number, with or without its zeros
        ("1", "0001_base"),
        ("3", "0003_base"),
        ("0002_base", None),
        ("before", None),
        ("5", None),
    ],
)
def test_a_baseline_by_number_full_name_or_name(value, expected):
    picked = pick_saved(value, SAVED_RUNS)
    assert (picked.stem if picked is not None else None) == expected


def test_a_saved_run_from_a_file_or_the_storage(tmp_path):
    file = tmp_path / "b.json"
    file.write_text("{}")
    assert find_saved(str(file), None) == file
    newest = [Path("x/0001_a.json"), Path("x/0002_b.json"), Path("x/0003_c.json")]
    asked = []
    # No run is numbered or named 000: pytest-benchmark's prefix rule (as --benchmark-compare) finds the newest.
    assert find_saved("000", lambda value: asked.append(value) or newest) == Path("x/0003_c.json")
    assert asked == ["*", "000"]
    assert find_saved("b", lambda value: newest if value == "*" else []) == Path("x/0002_b.json")


def test_configuration_differences():
    info = saved()["machine_info"]
    assert differences(info, dict(info)) == []
    assert differences(info, {**info, "gpu": "NVIDIA H200", "torch": "2.15.0"}) == [
        "gpu: baseline None, now 'NVIDIA H200'",
        "torch: baseline '2.14.1', now '2.15.0'",
    ]
    # A 1-thread baseline against a 2-thread run is refused like another CPU.
    assert differences(info, {**info, "cpu_threads": 2}) == ["cpu_threads: baseline 1, now 2"]
    # A run saved by another suite names its CPU in py-cpuinfo's brand_raw: the same CPU is the same configuration.
    theirs = {"cpu": {"brand_raw": "AMD EPYC"}, "gpu": None, "torch": "2.14.1", "cpu_threads": 1}
    assert differences(theirs, info) == []


def test_option_parsers():
    assert parse_percent("10%") == pytest.approx(0.10) and parse_percent("2.5") == pytest.approx(0.025)
    assert parse_alpha("0.05") == 0.05 and parse_bool("yes") is True and parse_bool("0") is False
    for parse, text in ((parse_percent, "-1%"), (parse_percent, "ten"), (parse_alpha, "1"), (parse_bool, "maybe")):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)
