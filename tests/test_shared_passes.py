"""Stages and blocks sharing one instrumented pass: only where the blocks' hooks can't move a stage's figure by more
than the bound (runner.SHARE_MAX_BIAS), decided after the first round; block figures are the same either way."""

from __future__ import annotations

import pytest

from fixtures.matrix import GroupKey
from fixtures.options import SHARE_MAX_BIAS
from fixtures.render.terminal import summary_table
from fixtures.runner import GroupRunner, Plan, hook_cost, stage_bias
from fixtures.timers import FakeClock
from fixtures.zoo import parse_input
from stubs import group_record, plan, settings

TICK = 2.0**-10
GROUP = GroupKey("resnet18", parse_input("1x3x64x64"), "cpu")
LAYER1 = ["", "layer1", "layer1.0", "layer1.1"]
# On the fake clock layer1's first-round span is one tick; two blocks inside: bias = 2 × hook / TICK. The hook cost at
# which that bias is the bound exactly:
AT_BOUND = SHARE_MAX_BIAS * TICK / 2


def run(hook: float, clock: FakeClock | None = None, modules=LAYER1, **changes):
    def cost() -> float:
        calls.append(hook)
        return hook

    calls: list[float] = []
    runner = GroupRunner(plan(**{"warmup": 0, "rounds": 3, **changes}),
                         clock_factory=lambda device: clock or FakeClock((TICK,)), hook_cost=cost)
    return runner.run(GROUP, modules), calls


def test_the_hook_cost_is_the_hooked_pass_less_the_bare_one_per_module():
    # A timer that moves one step a call: the bare pass spans its two marks (1 step), the hooked one 2 × 64 marks more.
    now = [0.0]

    def timer() -> float:
        now[0] += 2.0**-20
        return now[0]

    assert hook_cost(timer, children=64, repeats=3) == 2 * 2.0**-20  # a pre- and a post-mark per module
    assert 0 < hook_cost(children=16, repeats=3) < 1e-3  # the real one: microseconds


def test_stage_bias_counts_the_blocks_inside_each_stage_by_name():
    bias = stage_bias({"conv1": 0.001, "layer1": 0.01, "layer2": 0.02}, ["layer1.0", "layer1.1", "layer2.0",
                                                                          "layer10.0"], 1e-6)
    assert bias == {"layer1": 2e-6 / 0.01, "layer2": 1e-6 / 0.02}  # conv1 holds none; layer10.0 is not in layer1


def test_below_the_bound_stages_and_blocks_share_a_pass_from_the_second_round():
    result, calls = run(0.9 * AT_BOUND)
    assert result.shared_from == 2 and calls == [0.9 * AT_BOUND] and result.hook_s == 0.9 * AT_BOUND
    assert result.stage_bias == {"layer1": pytest.approx(0.9 * SHARE_MAX_BIAS)}
    # Round 1 in the stage pass (1 tick); then the shared pass, whose layer1 span holds its blocks' 4 marks: 5 ticks.
    assert result.samples["layer1"].device_s == [TICK, 5 * TICK, 5 * TICK]
    # A block's span holds no stage hook: its figures are those of separate passes.
    assert result.samples["layer1.0"].device_s == result.samples["layer1.1"].device_s == [TICK] * 3
    # One instrumented pass a round from the second: begin, layer1's 2 marks and its blocks' 4, end.
    assert result.instrumented_s == {"stage": [3 * TICK], "block": [5 * TICK], "stage+block": [7 * TICK] * 2}


def test_above_the_bound_passes_stay_separate():
    result, calls = run(1.1 * AT_BOUND)
    assert result.shared_from is None and calls == [1.1 * AT_BOUND]
    assert result.stage_bias == {"layer1": pytest.approx(1.1 * SHARE_MAX_BIAS)}
    assert result.samples["layer1"].device_s == [TICK] * 3
    assert result.instrumented_s == {"stage": [3 * TICK] * 3, "block": [5 * TICK] * 3}


def test_separate_never_shares_nor_measures_the_hooks():
    result, calls = run(0.0, share_max_bias=None)
    assert result.shared_from is None and calls == [] and result.hook_s is None
    assert result.samples["layer1"].device_s == [TICK] * 3


def test_a_clock_that_holds_keeps_passes_separate():
    clock = FakeClock((TICK,), gpu_steps=(TICK / 2,))
    result, calls = run(0.0, clock=clock)
    assert result.shared_from is None and calls == []


def test_a_group_of_one_round_never_shares():
    result, _ = run(0.0, rounds=1)
    assert result.shared_from is None and result.samples["layer1"].device_s == [TICK]


def test_stages_without_blocks_inside_share_exactly_without_measuring():
    # conv1 holds no selected block: nothing of the blocks' can land in its span.
    result, calls = run(1.0, modules=["conv1", "layer1.0"])
    assert result.shared_from == 2 and calls == [] and result.stage_bias == {}
    assert result.samples["conv1"].device_s == [TICK] * 3


def test_the_option_sets_the_bound():
    assert Plan.for_device(settings(), "cpu").share_max_bias == SHARE_MAX_BIAS
    assert Plan.for_device(settings(scope_passes="separate"), "cpu").share_max_bias is None


def test_cases_and_the_summary_say_when_passes_were_shared():
    result, _ = run(0.9 * AT_BOUND)
    record = group_record(result)
    cases = record.cases
    assert cases["layer1"].shared_from == 2 and cases["layer1"].hook_bias == pytest.approx(0.9 * SHARE_MAX_BIAS)
    assert cases["layer1.0"].shared_from == 2 and cases["layer1.0"].hook_bias is None
    assert cases[""].shared_from is None and cases[""].hook_bias is None
    summary = " ".join(summary_table([record], width_limit=400).split())
    assert ("stages and blocks shared one instrumented pass from round 2 in 1 group(s): their blocks' hooks move a "
            "stage's figure by at most 0.0090% (--bench-scope-passes separate keeps them apart): "
            "resnet18-1x3x64x64-cpu") in summary
    separate, _ = run(1.1 * AT_BOUND)
    assert cases_of(separate)["layer1"].hook_bias is None
    assert "shared one instrumented pass" not in summary_table([group_record(separate)])


def cases_of(result):
    return group_record(result).cases
