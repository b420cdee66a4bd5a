"""Every figure's precision: the median's distribution-free interval (against a brute-force coverage count), the
detectable slowdown (against the gate itself on simulated rounds), drift, and the options of the stopping rule."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from fixtures.regression import RegressionPolicy, detectable_slowdown
from fixtures.stats import DRIFT_MIN_CHANGE, Ratio, Summary, drift, median_ci_ranks, median_ratio
from stubs import simulated_power

POLICY = RegressionPolicy(0.10, 0.01)


def coverage(n: int, k: int) -> float:
    """P(x(k) <= true median <= x(n+1-k)): each round falls below the true median with probability 1/2, and the
    interval misses when fewer than k fall on one side. Counted over the 2**n sign patterns for small n, summed from
    binomial coefficients beyond (no scipy)."""
    if n <= 16:
        inside = sum(1 for signs in itertools.product((0, 1), repeat=n) if k <= sum(signs) <= n - k)
        return inside / 2**n
    return sum(math.comb(n, j) for j in range(k, n - k + 1)) / 2**n


@pytest.mark.parametrize("n", [5, 6, 7, 10, 20, 33, 60])
def test_the_interval_is_the_narrowest_with_95_percent(n):
    ranks = median_ci_ranks(n)
    if n < 6:
        assert ranks is None and coverage(n, 1) < 0.95  # 5 rounds: 93.75% at best
        return
    k, upper, level = ranks
    assert upper == n + 1 - k and level == pytest.approx(coverage(n, k))
    assert level >= 0.95 and coverage(n, k + 1) < 0.95  # one rank further in would not be a 95% interval


def test_the_interval_and_its_half_width_from_the_rounds():
    rounds = [0.012, 0.010, 0.011, 0.016, 0.013, 0.014, 0.015, 0.019, 0.017, 0.018]  # k = 2 for 10 rounds
    summary = Summary.of(rounds)
    assert (summary.ci_low, summary.ci_high) == (0.011, 0.018)  # the 2nd and 9th of the sorted rounds
    assert summary.ci_rel == pytest.approx((0.018 - 0.011) / 2 / 0.0145)
    assert Summary.of(rounds[:5]).ci_rel is None


def test_drift_is_a_trend_over_the_rounds_not_noise():
    rng = np.random.default_rng(0)
    steady = list(1 + 0.01 * rng.standard_normal(40))
    assert not drift(steady).drifted and drift(steady).p_value > 0.01
    slowing = [x * (1 + 0.004 * i) for i, x in enumerate(steady)]  # +16% by the last round
    trend = drift(slowing)
    assert trend.drifted and trend.p_value < 1e-6 and trend.change == pytest.approx(0.08, abs=0.02)
    # A significant trend too small to matter is not flagged.
    creeping = [x * (1 + 0.0001 * i) for i, x in enumerate([1.0 + 1e-6 * i for i in range(40)])]
    assert drift(creeping).p_value < 0.01 and abs(drift(creeping).change) < DRIFT_MIN_CHANGE
    assert not drift(creeping).drifted
    assert drift([1.0, 2.0]).p_value is None and drift([3.0] * 9).p_value is None


def test_the_interval_of_a_speedup_covers_the_ratio_of_the_medians():
    """A speed-up (median over median, two independent groups) with each median's interval at √95%: over 4,000
    simulated pairs of skewed rounds (lognormal, 7 vs 12 rounds, true medians 2 and 1) it covers the true ratio at
    least 95% of the time; 6 rounds a side give none; exact bounds from the extremes."""
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(4000):
        ratio = median_ratio(np.exp(rng.normal(math.log(2.0), 0.3, 7)), np.exp(rng.normal(0.0, 0.5, 12)))
        covered += ratio.low <= 2.0 <= ratio.high
    assert covered / 4000 >= 0.95
    assert median_ratio([1.0] * 6, [2.0] * 7) == Ratio(0.5, None, None)
    assert median_ratio([8.0, 9, 10, 10, 10, 11, 12], [4.0, 5, 5, 5, 5, 5, 6]) == Ratio(2.0, 8 / 6, 12 / 4)


def test_a_group_that_stops_on_its_target_is_as_precise_as_asked():
    """Rounds with 15% noise (seed 2): their median's interval is within ±10% from round 17 on, within ±5% only from
    round 44. A group asked for ±5% that stops on its target saves a median within ±5% (its ci_rel, as the JSON and
    every reader have it), not one that stopped at a looser precision."""
    from fixtures.inputs import parse_input
    from fixtures.matrix import GroupKey
    from fixtures.runner import STOP_PRECISE, GroupRunner
    from fixtures.timers import FakeClock
    from stubs import ResNetStub, group_record, plan

    rng = np.random.default_rng(2)
    rounds = [float(x) for x in np.round(1 + 0.15 * rng.standard_normal(200), 4)]
    assert Summary.of(rounds[:17]).ci_rel <= 0.10
    assert all(Summary.of(rounds[:n]).ci_rel > 0.05 for n in range(6, 44))
    # The clean pass spans its end mark's step: each round one of `rounds`.
    clock = FakeClock(tuple(step for seconds in rounds for step in (1e-3, seconds)))
    runner = GroupRunner(plan(warmup=0, min_rounds=1, precision=0.05, budget_s=1e6),
                         clock_factory=lambda device: clock, model_factory=lambda name: ResNetStub())
    result = runner.run(GroupKey("resnet18", parse_input("1x3x64x64"), "cpu"), [""])
    assert result.stop == STOP_PRECISE
    latency = group_record(result).cases[""].latency
    assert latency.ci_rel is not None and latency.ci_rel <= 0.05
    assert result.rounds >= 44


def power(noise: float, rounds: int, shift: float) -> float:
    """How often the gate flags a run `shift` slower than its baseline (one case alone)."""
    return simulated_power(POLICY, noise, rounds, shift)


@pytest.mark.parametrize(("noise", "rounds"), [(0.01, 10), (0.03, 6), (0.05, 10), (0.05, 20)])
def test_the_detectable_slowdown_is_found_by_the_gate_about_as_often_as_it_says(noise, rounds):
    """At the figure a typical case of this noise and rounds gets, the gate flags about 80% of runs; at the threshold
    itself (the figure if noise were ignored), only about half."""
    rng = np.random.default_rng(7)
    figures = [detectable_slowdown(list(np.exp(rng.normal(0, noise, rounds))), POLICY) for _ in range(41)]
    figure = float(np.median(figures))
    assert figure > POLICY.threshold
    assert 0.7 <= power(noise, rounds, figure) <= 0.97
    assert power(noise, rounds, POLICY.threshold) < 0.65


def test_no_slowdown_is_detectable_when_the_rounds_cant_reach_alpha():
    assert detectable_slowdown([0.01, 0.011, 0.012, 0.013], POLICY) is None  # 4 vs 4: p >= 1/70
    assert detectable_slowdown([0.01] * 5, POLICY) == pytest.approx(0.10)  # 5 vs 5: p = 1/252 can; no noise
    assert math.isclose(detectable_slowdown([0.01] * 5, RegressionPolicy(0.25, 0.01)), 0.25)


# --- the interval under the stopping rule -----------------------------------------------------------------------------


def stopped_coverage(rule, target: float, noise: float, budget_rounds: int, trials: int, seed: int) -> float:
    """How often the interval a group reports covers the true median (1: log-normal rounds) when `rule(rounds,
    values)` decides after each round whether it stops (the time budget in rounds: one round, one second), and
    `level(rounds)` is the level it reports at."""
    rng = np.random.default_rng(seed)
    covered = 0
    for _ in range(trials):
        values = list(np.exp(rng.normal(0, noise, budget_rounds + 1)))
        n = next(n for n in range(1, budget_rounds + 2) if rule.stops(n, values[:n]))
        summary = Summary.of(values[:n], rule.level(n))
        covered += summary.ci_low is not None and summary.ci_low <= 1.0 <= summary.ci_high
    return covered / trials


class SuiteRule:
    """The suite's stopping rule: runner.Plan.done under a precision target, and the level it reports at."""

    def __init__(self, target: float, budget_rounds: int) -> None:
        from stubs import plan

        self.plan = plan(precision=target, budget_s=budget_rounds - 0.5)

    def stops(self, n: int, values: list[float]) -> bool:
        return self.plan.done(n, float(n), values) is not None

    def level(self, n: int) -> float:
        return self.plan.confidence(n)


class EveryRound95:
    """The rule before looks: a 95% interval read after every round, stopping the first time it is narrow enough."""

    def __init__(self, target: float, budget_rounds: int) -> None:
        self.target, self.budget = target, budget_rounds

    def stops(self, n: int, values: list[float]) -> bool:
        from fixtures.stats import precision

        rel = precision(values) if n >= 6 else None
        return n >= self.budget or (rel is not None and rel <= self.target)

    def level(self, n: int) -> float:
        return 0.95


SETTINGS = [(0.005, 0.01, 2000), (0.05, 0.05, 200), (0.05, 0.03, 200)]  # GPU: ±0.5% at 1% noise; CPU: ±5% at 5%, 3%


@pytest.mark.parametrize(("target", "noise", "budget"), SETTINGS, ids=["gpu", "cpu-5%", "cpu-3%"])
def test_the_stated_level_holds_under_the_stopping_rule(target, noise, budget):
    """Looks at planned round counts with the 5% a miss may have spent across them: whatever look a group stops at,
    its interval covers the median in at least 95% of groups (2000 simulated groups: the sampling error is 0.5%)."""
    trials = 2000
    assert stopped_coverage(SuiteRule(target, budget), target, noise, budget, trials, seed=1) >= 0.95


def test_reading_a_95_percent_interval_every_round_undercovers():
    """The control: the rule before looks covers the GPU setting's median in about 93% of groups only."""
    assert stopped_coverage(EveryRound95(0.005, 2000), 0.005, 0.01, 2000, 2000, seed=1) < 0.945


def test_the_looks_and_their_levels():
    from fixtures.stats import look_confidence, look_index, stopped_confidence

    looks = [n for n in range(1, 400) if look_index(n) is not None]
    assert looks == [6, 9, 14, 21, 32, 48, 72, 108, 162, 243, 365]
    misses = [1 - look_confidence(j) for j in range(1, 10_000)]
    assert misses[0] == 1 / 32 and sum(misses) < 0.05 and math.isclose(sum(misses), 0.05, rel_tol=1e-3)
    assert stopped_confidence(6) == 1 - 1 / 32 and stopped_confidence(10) == look_confidence(3)
    assert median_ci_ranks(6, stopped_confidence(6)) == (1, 6, 0.96875)  # every 6-round group keeps its interval


def test_the_stopping_check_costs_a_few_looks_not_a_summary_per_round(monkeypatch):
    """Over 3,000 rounds the precision is read 16 times (at the looks), not 3,000 (each a sort and a binomial tail)."""
    import fixtures.runner as runner
    from stubs import plan

    reads = []
    real = runner.precision
    monkeypatch.setattr(runner, "precision", lambda values, level: reads.append(len(values)) or real(values, level))
    p = plan(precision=1e-9, budget_s=1e9)
    values = list(np.exp(np.random.default_rng(0).normal(0, 0.01, 3000)))
    assert all(p.done(n, 1.0, values[:n]) is None for n in range(1, 3001))
    assert reads == [6, 9, 14, 21, 32, 48, 72, 108, 162, 243, 365, 548, 822, 1233, 1850, 2775]
