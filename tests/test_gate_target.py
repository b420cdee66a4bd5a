"""Enough rounds to gate: a gated or saved run's groups run until each case can show the target slowdown alone
(runner.Plan.done with a regression.GateTarget), the detectable slowdown of one case among many, and the summary's
naming of the cases that can't."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fixtures.inputs import parse_input
from fixtures.matrix import CaseSpec, GroupKey
from fixtures.regression import GateTarget, RegressionPolicy, detectable_slowdown, robust_sigma
from fixtures.render.terminal import gate_target_lines
from fixtures.runner import STOP_BUDGET, STOP_PRECISE, STOP_ROUNDS, STOP_UNGATEABLE
from stubs import measurement, plan, settings, simulated_power

POLICY = RegressionPolicy(0.10, 0.01)


def noisy(n: int, noise: float, seed: int = 0) -> list[float]:
    return list(0.01 * np.exp(np.random.default_rng(seed).normal(0, noise, n)))


def test_the_level_of_one_case_alone_is_alpha_over_the_cases():
    rounds = noisy(20, 0.15)  # noisy enough for the U test's level, not the median's threshold, to decide
    alone = detectable_slowdown(rounds, POLICY)
    among = detectable_slowdown(rounds, POLICY, cases=19)
    assert alone is not None and among is not None and among > alone
    # 6 vs 6 rounds can't give p below 1/924: enough alone (0.01), not among 19 cases (0.01/19)
    assert detectable_slowdown(noisy(6, 0.05), POLICY) is not None
    assert detectable_slowdown(noisy(6, 0.05), POLICY, cases=19) is None
    # a baseline of fewer rounds is what the floor is read on: 7 vs 20 reach 0.01/19, 3 vs 20 don't
    assert detectable_slowdown(rounds, POLICY, cases=19, baseline_rounds=7) is not None
    assert detectable_slowdown(rounds, POLICY, cases=19, baseline_rounds=3) is None


def lone_power(noise: float, rounds: int, shift: float, cases: int) -> float:
    """How often the gate flags one case `shift` slower among `cases`."""
    return simulated_power(POLICY, noise, rounds, shift, cases, seed=5)


@pytest.mark.parametrize(("noise", "rounds", "cases"), [(0.03, 12, 19), (0.05, 20, 19), (0.05, 30, 234)])
def test_one_case_alone_is_found_about_as_often_as_its_figure_says(noise, rounds, cases):
    rng = np.random.default_rng(11)
    figures = [detectable_slowdown(list(np.exp(rng.normal(0, noise, rounds))), POLICY, cases) for _ in range(41)]
    figure = float(np.median(figures))
    assert 0.7 <= lone_power(noise, rounds, figure, cases) <= 0.98
    assert lone_power(noise, rounds, POLICY.threshold, cases) < 0.6


def test_a_few_wild_rounds_dont_make_a_case_look_undetectable():
    steady = noisy(30, 0.03)
    wild = steady[:-2] + [steady[0] * 10, steady[1] * 8]
    assert robust_sigma(wild) / 0.01 < 0.06
    assert detectable_slowdown(wild, POLICY, cases=19) < 0.15


def target(slowdown: float = 0.15, cases: int = 19) -> GateTarget:
    return GateTarget(slowdown, POLICY, cases)


def test_a_gated_group_runs_until_every_case_can_show_the_target():
    p = plan(gate=target(), precision=0.05, budget_s=1e9)
    quiet, loud = noisy(14, 0.01), noisy(14, 0.30)  # 14 rounds: a look of the stopping rule
    assert p.done(14, 1.0, quiet, {"": quiet, "conv1": quiet}) == STOP_PRECISE
    assert p.done(14, 1.0, quiet, {"": quiet, "conv1": loud}) is None  # conv1 can't show 15% yet
    assert plan(gate=None, precision=0.05, budget_s=1e9).done(14, 1.0, quiet, {"": quiet, "conv1": loud}) == STOP_PRECISE


def test_the_budget_ends_a_group_that_cant_and_says_why():
    quiet, loud = noisy(10, 0.01), noisy(10, 0.30)
    p = plan(gate=target(), precision=0.05, budget_s=5.0)
    assert p.done(10, 5.0, quiet, {"": quiet, "conv1": loud}) == STOP_UNGATEABLE  # precise, not gateable
    assert p.done(10, 5.0, loud, {"": loud}) == STOP_BUDGET  # not even precise
    assert p.done(10, 5.0, quiet, {"": quiet}) == STOP_PRECISE  # met as the budget ran out: said so


def test_fixed_rounds_ignore_the_target():
    p = plan(gate=target(), rounds=6)
    assert p.done(6, 0.0, [], {"": noisy(6, 0.3)}) == STOP_ROUNDS


def test_the_target_is_followed_only_where_the_run_is_gated_or_saved():
    from fixtures.runner import Plan

    gate = target()
    assert Plan.for_device(settings(), "cpu", gate).gate is None
    assert Plan.for_device(settings(saving=True), "cpu", gate).gate is gate
    assert Plan.for_device(settings(regression="base"), "cpu", gate).gate is gate
    assert settings().detect_target == 0.15 and settings(regression_threshold=0.2).detect_target == 0.3
    assert settings(regression_detect=0.12).detect_target == 0.12


def test_the_targets_are_read_at_the_looks_only():
    calls = []

    class Counting(GateTarget):
        def met(self, samples):
            calls.append(len(next(iter(samples.values()))))
            return False

    p = plan(gate=Counting(0.15, POLICY), precision=0.5, budget_s=1e9)
    for n in range(6, 400):
        rounds = noisy(n, 0.001)
        p.done(n, 1.0, rounds, {"": rounds})
    assert calls == [6, 9, 14, 21, 32, 48, 72, 108, 162, 243, 365]


def records(rounds: dict[str, list[float]], stop: str, gating: bool = True, cases: int = 2) -> list:
    """One group's record whose cases carry these rounds, the gate target and why the group stopped."""
    from dataclasses import replace

    from fixtures.measurement import GroupRecord

    group = GroupKey("resnet18", parse_input("1x3x64x64"), "cpu")
    specs = {m: CaseSpec(group, "stage" if m else "model", m) for m in rounds}
    cases = {
        m: replace(measurement(specs[m], r, gate=target(cases=cases), gating=gating, policy=POLICY), stop=stop)
        for m, r in rounds.items()
    }
    return [GroupRecord(None, cases)]


def test_the_summary_names_the_cases_that_cant():
    quiet, loud = noisy(12, 0.01), noisy(12, 0.40, seed=1)
    (line,) = gate_target_lines(records({"": quiet, "conv1": loud}, STOP_UNGATEABLE))
    assert line.startswith("gate target: 1 of 2 cases can't show a 15% slowdown of one case alone (among 2 cases, "
                           "p < 0.01/2) before the time budget ran out")
    assert "resnet18-1x3x64x64-cpu-stage-conv1 (" in line and "% at 12 rounds)" in line
    (line,) = gate_target_lines(records({"": quiet, "conv1": loud}, STOP_ROUNDS))
    assert "at the fixed --bench-rounds; leave it 'auto'" in line
    assert math.isclose(records({"": quiet}, STOP_PRECISE)[0].cases[""].detect_target, 0.15)
    assert gate_target_lines(records({"": quiet, "conv1": loud}, STOP_UNGATEABLE, gating=False)) == []


def test_every_case_able_is_said_in_one_line():
    assert gate_target_lines(records({"": noisy(12, 0.01)}, STOP_PRECISE, cases=1)) == [
        "gate target: every case can show a 15% slowdown of one case alone (among 1 cases, p < 0.01/1)"
    ]


def test_each_cases_detectable_slowdown_reads_the_options_not_the_defaults():
    """--bench-regression-threshold and -alpha reach the figure each case records, through the session's gate target
    (the run's cases sharing alpha) and the case's context."""
    from fixtures.inputs import parse_input
    from fixtures.matrix import CaseSpec, GroupKey
    from fixtures.measurement import case_context
    from fixtures.session import ProfileSession

    options = settings(regression_threshold=0.25, regression_alpha=0.05, models=("resnet18",),
                       inputs=(parse_input("1x3x64x64"),), devices=("cpu",), scopes=("model",))
    session = ProfileSession(options)
    session.case_tests = {"a": "x", "b": "y", "c": "z"}  # three selected cases share alpha
    group = GroupKey("resnet18", parse_input("1x3x64x64"), "cpu")
    gate = session.gate_target(group, [""])
    assert gate.policy == RegressionPolicy(0.25, 0.05) and gate.cases == 3 and gate.slowdown == 0.375
    rounds = noisy(20, 0.2)
    case = replace_context(measurement(CaseSpec(group, "model"), rounds), case_context(CaseSpec(group, "model"), options,
                                                                                       gate=gate))
    assert case.detectable_slowdown == detectable_slowdown(rounds, RegressionPolicy(0.25, 0.05), 3)
    assert case.detectable_slowdown != detectable_slowdown(rounds, POLICY, 3)


def replace_context(m, context):
    from dataclasses import replace

    return replace(m, context=context)
