"""A machine change is not a code change: the reference workload's samples, the machine shift between two runs, and the
regression gate judging CPU cases against what the machine explains (fixtures/reference.py, fixtures/verdicts.py).

Rounds are drawn from fixed seeds (5% log-normal noise, as this project's CPU gives a quiet case), so every outcome
below is exact: rerunning the test reruns the same numbers."""

from __future__ import annotations

import numpy as np
import pytest

from fixtures.inputs import parse_input
from fixtures.matrix import CaseSpec, GroupKey
from fixtures.reference import (
    SENSITIVITY,
    WORKLOAD,
    MachineShift,
    Reference,
    _rank,
    figure,
    machine_shift,
    saved_samples,
)
from fixtures.regression import RegressionPolicy
from fixtures.render.terminal import failure_line, verdict_summary
from fixtures.verdicts import Baseline, Verdicts
from stubs import latency_name as name
from stubs import measurement

GROUP = GroupKey("resnet18", parse_input("1x3x64x64"), "cpu")
GPU_GROUP = GroupKey("resnet18", parse_input("1x3x64x64"), "cuda")
MODULES = ("", "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc")
POLICY = RegressionPolicy(0.10, 0.01)
ROUNDS = 30
TYPICAL = {module: 0.002 * (n + 1) for n, module in enumerate(MODULES)}  # seconds


def spec(module: str, group: GroupKey = GROUP) -> CaseSpec:
    return CaseSpec(group, "model" if not module else "stage", module)


def rounds(module: str, seed: int, factor: float = 1.0, n: int = ROUNDS) -> tuple[float, ...]:
    rng = np.random.default_rng(seed)
    return tuple(float(x) for x in TYPICAL[module] * factor * np.exp(rng.normal(0, 0.05, n)))


def reference(seed: int, factor: float = 1.0, n: int = 8) -> tuple[float, ...]:
    rng = np.random.default_rng(1000 + seed)
    return tuple(float(x) for x in 0.025 * factor * np.exp(rng.normal(0, 0.02, n)))


def gate(slow: dict[str, float], machine: float, group: GroupKey = GROUP, base_reference: bool = True) -> Verdicts:
    """A baseline run (seed 1), then this run (seed 2) with each module `slow[module]` times slower on top of the
    machine's `machine`; every case checked as the plugin does, the group's peers with it."""
    baseline = Baseline(
        source="base.json",
        machine_info={},
        samples={name(spec(m, group)): rounds(m, 1) for m in MODULES},
        reference_s=tuple(s for g in range(4) for s in reference(10 + g)) if base_reference else None,
    )
    gates = Verdicts(baseline=baseline, policy=POLICY)
    gates.expect(baseline.samples)
    current = {m: rounds(m, 2, machine * slow.get(m, 1.0)) for m in MODULES}
    peers = {name(spec(m, group)): current[m] for m in MODULES}
    for m in MODULES:
        case = measurement(spec(m, group), current[m], policy=POLICY)
        gates.check(name(spec(m, group)), case, peers, reference(20, machine))
    return gates


def regressed(gates: Verdicts) -> list[str]:
    return [r.name for r in gates.regression_results if r.regressed]


def test_unchanged_code_on_a_machine_60_percent_slower_fails_nothing_and_says_why():
    gates = gate({}, machine=1.6)
    assert regressed(gates) == [] and gates.run_failures() == []
    shift = gates.shifts[GROUP.id]
    assert shift.moved and shift.low > 1.5 and shift.high < 1.7
    text = "\n".join(verdict_summary(gates))
    assert "0 regressed" in text
    assert "  machine: this machine ran 6" in text and "% slower than the baseline's (reference workload x1.6" in text
    # Every case read about 60% slower and passed as the machine's doing: named, not silently dropped.
    assert f"slower only as much as the machine ({len(MODULES)}, passed)" in text


def test_the_same_run_without_the_reference_rule_would_fail_every_case():
    """The control: the baseline carries no reference figure, so nothing tells the machine from the code."""
    gates = gate({}, machine=1.6, base_reference=False)
    assert len(regressed(gates)) == len(MODULES)
    assert gates.machine is None and gates.shifts == {}


def test_one_stage_20_percent_slower_on_an_unchanged_machine_still_fails():
    gates = gate({"layer2": 1.2}, machine=1.0)
    assert not gates.shifts[GROUP.id].moved
    assert regressed(gates) == [name(spec("layer2"))]
    (result,) = [r for r in gates.regression_results if r.regressed]
    assert result.slower_scale == 1.0 and "beyond the machine" not in failure_line(result)


def test_every_case_20_percent_slower_on_an_unchanged_machine_still_fails():
    """A slower torch slows every case and leaves the reference (numpy, not torch) as it was."""
    gates = gate(dict.fromkeys(MODULES, 1.2), machine=1.0)
    assert not gates.shifts[GROUP.id].moved
    assert sorted(regressed(gates)) == sorted(name(spec(m)) for m in MODULES)


def test_a_stage_slower_beyond_what_the_slower_machine_explains_still_fails():
    """The machine explains up to its interval's upper end to the power SENSITIVITY (1.64 ** 1.5 = 2.1 here): a stage
    60% slower on a machine 60% slower reads 2.56x, beyond it."""
    gates = gate({"layer2": 1.6}, machine=1.6)
    assert gates.shifts[GROUP.id].moved
    assert regressed(gates) == [name(spec("layer2"))]
    (result,) = [r for r in gates.regression_results if r.regressed]
    assert result.change > 1.4 and 0.1 < result.code_change < 0.3
    assert result.slower_scale == pytest.approx(gates.shifts[GROUP.id].high ** SENSITIVITY)
    assert "beyond the machine's x2.099" in failure_line(result)


def test_a_stage_that_feels_the_machine_more_than_the_reference_is_excused():
    """conv1 felt a busy loop 1.4x as strongly as the reference did (2.65x against 1.88x, log terms): up to
    SENSITIVITY, the machine explains it."""
    gates = gate({"conv1": 1.6**0.45}, machine=1.6)  # conv1 at 1.6 ** 1.45
    assert regressed(gates) == []


def test_a_faster_machine_neither_hides_a_measured_slowdown_nor_makes_one():
    """The machine only ever excuses: on a machine 30% faster, a stage measured 26% slower still fails (it is not
    judged against a baseline made faster), a stage that didn't speed up with the machine is not a regression, and
    cases faster only as much as the machine are not 'faster'."""
    gates = gate({"layer2": 1.8, "layer3": 1 / 0.7}, machine=0.7)
    shift = gates.shifts[GROUP.id]
    assert shift.moved and shift.high < 1 and shift.slower_scale == 1.0
    assert shift.faster_scale == pytest.approx(shift.low**SENSITIVITY)
    assert regressed(gates) == [name(spec("layer2"))]  # +26% measured; layer3 (as fast as before) passes
    assert [r.name for r in gates.faster] == []


def test_a_case_the_load_doesnt_slow_is_not_faster_on_a_slower_machine():
    """On a machine 60% slower, a stage that kept its speed (memory-bound ones can) is not 'faster' beyond the
    machine: it was not measured faster."""
    gates = gate({"bn1": 1 / 1.6}, machine=1.6)
    assert regressed(gates) == [] and [r.name for r in gates.faster] == []


def test_gpu_cases_are_not_scaled_by_the_hosts_reference():
    gates = gate({}, machine=1.6, group=GPU_GROUP)
    assert gates.shifts == {} and len(regressed(gates)) == len(MODULES)


def test_faster_is_a_verdict_beyond_the_threshold_and_significant():
    gates = gate({"layer3": 0.5, "layer4": 0.95}, machine=1.0)
    assert [r.name for r in gates.faster] == [name(spec("layer3"))]  # layer4: 5% faster, under the threshold
    text = "\n".join(verdict_summary(gates))
    assert "0 regressed, 0 slower but not significant, 1 faster, 10 unchanged" in text
    assert "faster (1; significantly, beyond 10%: the baseline is stale, save a new one)" in text


def test_a_shift_needs_samples_enough_for_an_interval():
    shift = machine_shift([0.01, 0.011], [0.02, 0.021])
    assert shift.low is None and not shift.moved and shift.slower_scale == 1.0
    assert [_rank(n, n, 0.95) for n in (3, 5, 6, 8)] == [0, 3, 6, 14]  # tables of the Mann-Whitney U distribution


def test_the_shift_interval_covers_the_true_ratio_95_percent_of_the_time():
    rng = np.random.default_rng(3)
    trials, covered = 3000, 0
    for _ in range(trials):
        base, now = np.exp(rng.normal(0, 0.05, 8)), 1.3 * np.exp(rng.normal(0, 0.05, 8))
        shift = machine_shift(base, now)
        covered += shift.low <= 1.3 <= shift.high
    assert abs(covered / trials - 0.95) < 3 * np.sqrt(0.95 * 0.05 / trials) + 0.002


def test_scales_come_from_the_interval_only_when_the_machine_moved_and_only_excuse():
    slower, faster, still = MachineShift(1.6, 1.55, 1.66, (8, 8)), MachineShift(0.7, 0.65, 0.75, (8, 8)), \
        MachineShift(1.02, 0.98, 1.05, (8, 8))
    assert (slower.slower_scale, slower.faster_scale) == (pytest.approx(1.66**SENSITIVITY), 1.0)
    assert (faster.slower_scale, faster.faster_scale) == (1.0, pytest.approx(0.65**SENSITIVITY))
    assert (still.slower_scale, still.faster_scale) == (1.0, 1.0)


def test_the_reference_is_saved_and_read_back_by_group():
    info = {"reference": figure({"g1": [0.01, 0.02], "g2": [0.03]}, threads=2)}
    assert info["reference"]["workload"] == WORKLOAD and info["reference"]["median_s"] == 0.02
    assert saved_samples(info) == (0.01, 0.02, 0.03)
    assert saved_samples({"reference": {**info["reference"], "workload": "another (v0)"}}) is None
    assert saved_samples({}) is None


def test_the_reference_times_its_work_with_the_clock_it_is_given():
    ticks = iter(range(100))
    done = []
    reference_ = Reference(lambda: 3, timer=lambda: next(ticks) * 0.5, work=lambda threads: lambda: done.append(threads))
    assert reference_.sample(4) == [0.5, 0.5, 0.5, 0.5]
    assert done == [3] * 5  # one untimed call first, for the run's thread count


def test_the_real_workload_runs_in_the_runs_threads():
    samples = Reference(lambda: 2).sample(2)
    assert len(samples) == 2 and all(s > 0 for s in samples)


def test_a_verdict_depends_on_its_own_groups_reference_only():
    """Each group is set against the baseline with the reference samples taken around it: a group measured before it
    while the machine ran twice as slow explains nothing of the next group's slower stage (the order -n N runs groups
    in changes nothing either)."""
    other = GroupKey("resnet34", parse_input("1x3x64x64"), "cpu")
    samples = {name(spec(m, g)): rounds(m, 1) for g in (other, GROUP) for m in MODULES}
    base_reference = tuple(s for g in range(4) for s in reference(10 + g))
    gates = Verdicts(baseline=Baseline("base.json", {}, samples, reference_s=base_reference), policy=POLICY)
    gates.expect(samples)
    for group, machine, slow in ((other, 2.0, 1.0), (GROUP, 1.0, 1.2)):
        current = {m: rounds(m, 2, machine * (slow if m == "layer2" else 1.0)) for m in MODULES}
        peers = {name(spec(m, group)): current[m] for m in MODULES}
        for m in MODULES:
            gates.check(name(spec(m, group)), measurement(spec(m, group), current[m], policy=POLICY), peers,
                        reference(20, machine))
    assert gates.shifts[other.id].moved and not gates.shifts[GROUP.id].moved
    assert regressed(gates) == [name(spec("layer2"))]


def test_faster_is_judged_against_what_a_faster_machine_explains():
    """A machine 30% faster excuses a speed-up to 0.69 ** 1.5 = 0.57: a case at 0.48 is 12% faster beyond it, over
    the threshold but not significant once the baseline is scaled (among 11 cases it needs p < 0.01/11); unscaled it
    would be (p = 7.8e-05)."""
    base = (0.0100, 0.0101, 0.0099, 0.0102, 0.0098, 0.0100, 0.0101, 0.0099)
    now = tuple(0.01 * x * 0.48 for x in (0.80, 1.25, 0.9, 1.2, 1.0, 1.15, 0.85, 1.1))
    case = spec("layer2")
    samples = {name(spec(m)): base for m in MODULES}
    baseline = Baseline("base.json", {}, samples, reference_s=tuple(s for g in range(4) for s in reference(10 + g)))
    gates = Verdicts(baseline=baseline, policy=POLICY)
    gates.expect(samples)
    gates.check(name(case), measurement(case, now, policy=POLICY), {}, reference(20, 0.7))
    (result,) = gates.regression_results
    assert 0.5 < result.faster_scale < 0.6 and result.faster_change < -POLICY.threshold
    assert POLICY.alpha / len(MODULES) < result.p_faster
    assert gates.faster == []


def test_faster_needs_significance():
    """30% faster at 4 vs 4 rounds: beyond the threshold, but 4 vs 4 rounds can't give p below 1/70."""
    case = spec("layer2")
    gates = Verdicts(baseline=Baseline("base.json", {}, {name(case): (0.010, 0.0101, 0.0102, 0.0103)}), policy=POLICY)
    gates.expect([name(case)])
    gates.check(name(case), measurement(case, (0.007, 0.00701, 0.00702, 0.00703), policy=POLICY))
    (result,) = gates.regression_results
    assert result.faster_by_threshold and result.p_faster == pytest.approx(1 / 70)
    assert gates.faster == []


def test_between_rounds_one_sample_every_so_often_without_a_warm_up_call():
    clock, ticks, done = [0.0], iter(range(100)), []
    reference_ = Reference(lambda: 1, timer=lambda: next(ticks) * 0.02, work=lambda threads: lambda: done.append(1),
                           every_s=2.0)
    into: list[float] = []
    between = reference_.between_rounds(into, now=lambda: clock[0])
    for t in (0.5, 1.9, 2.1, 2.5, 4.0, 4.2):
        clock[0] = t
        between()
    assert into == pytest.approx([0.02, 0.02]) and len(done) == 2  # at 2.1 and at 4.2 (2.1 s after the last), each run once


@pytest.mark.parametrize(("holds", "calls"), [(False, 5), (True, 0)])
def test_the_runner_samples_between_rounds_where_the_clock_does_not_hold(holds, calls):
    from fixtures.runner import GroupRunner
    from fixtures.timers import FakeClock
    from stubs import plan

    called = []
    clock = FakeClock((0.001,), gpu_steps=(0.001,) if holds else None)
    runner = GroupRunner(plan(warmup=0, rounds=5, between_rounds=lambda: called.append(1)),
                         clock_factory=lambda device: clock)
    runner.run(GROUP, [""])
    assert len(called) == calls
