"""Stages and blocks sharing one instrumented pass: only where the blocks' hooks can't move a stage's figure by more
than the bound (runner.SHARE_MAX_BIAS), decided after the first round on the hooks' cost inside the group's own
forward; block figures are the same either way."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from fixtures.inputs import parse_input
from fixtures.matrix import GroupKey
from fixtures.options import SHARE_MAX_BIAS
from fixtures.render.terminal import summary_table
from fixtures.runner import (
    IN_FORWARD_MARGIN,
    GroupRunner,
    HookTimer,
    Plan,
    hook_cost,
    in_forward_hook_cost,
    stage_bias,
)
from fixtures.timers import FakeClock, Mark
from stubs import group_record, plan, settings

TICK = 2.0**-10
GROUP = GroupKey("resnet18", parse_input("1x3x64x64"), "cpu")
LAYER1 = ["", "layer1", "layer1.0", "layer1.1"]
# On the fake clock layer1's first-round span is one tick; two blocks inside, whose hooks cost inside the forward what
# they cost back to back (Ticks): bias = 2 × hook / TICK. The hook cost at which that bias is the bound exactly:
AT_BOUND = SHARE_MAX_BIAS * TICK / 2


class Ticks:
    """A hook timer that moves one step a reading, inside a forward or not. The hooks' own code holds two of its
    readings back to back (their marks read it there) and one in the group's forward (their marks read the fake
    clock): half the cost, so with IN_FORWARD_MARGIN the in-forward cost is the back-to-back one."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 2.0**-30
        return self.now


def run(hook: float, clock: FakeClock | None = None, modules=LAYER1, **changes):
    def cost() -> float:
        calls.append(hook)
        return hook

    calls: list[float] = []
    runner = GroupRunner(plan(**{"warmup": 0, "rounds": 3, **changes}),
                         clock_factory=lambda device: clock or FakeClock((TICK,)), hook_cost=cost, hook_timer=Ticks())
    return runner.run(GROUP, modules), calls


class InForwardClock:
    """A clock that charges the hooks their in-forward cost. Time moves when a module of the stand-in works and when
    the clock is read (a mark, or the hook timer's reading): by `warm_s` a reading outside the model's forward (the
    Identity modules hook_cost times back to back) and by `in_forward_s` inside it (between the model's modules, where
    the hooks run from cold caches)."""

    name = "fake"
    holds = False

    def __init__(self, warm_s: float, in_forward_s: float) -> None:
        self.warm_s, self.in_forward_s = warm_s, in_forward_s
        self.now = 0.0
        self.inside = False  # in the stand-in's forward

    def __call__(self) -> float:
        self.now += self.in_forward_s if self.inside else self.warm_s
        return self.now

    def start_pass(self) -> None:
        pass

    def hold(self, seconds: float) -> Mark:
        return self.mark()

    def mark(self) -> Mark:
        now = self()
        return Mark(now, now)

    def finish_pass(self) -> None:
        pass

    def seconds(self, start: Mark, end: Mark) -> float:
        return end.token - start.token


class Work(nn.Module):
    """A module that takes `seconds` of the clock's time."""

    def __init__(self, clock: InForwardClock, seconds: float) -> None:
        super().__init__()
        self.clock, self.seconds = clock, seconds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.clock.now += self.seconds
        return x


class Working(nn.Module):
    """resnet18's conv1 and layer1 with its two blocks, by name, each block `block_s` of work."""

    def __init__(self, clock: InForwardClock, block_s: float) -> None:
        super().__init__()
        self.clock = clock
        self.conv1 = Work(clock, block_s)
        self.layer1 = nn.Sequential(Work(clock, block_s), Work(clock, block_s))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.clock.inside = True
        try:
            return self.layer1(self.conv1(x))
        finally:
            self.clock.inside = False


WARM, IN_FORWARD = 1e-6, 6e-6  # a reading back to back, and inside the forward (the hooks 6× slower there)


def run_in_forward(block_s: float, rounds: int = 4):
    """A group on the in-forward clock: its hook cost measured by the suite's own functions on that clock."""
    clock = InForwardClock(WARM, IN_FORWARD)
    runner = GroupRunner(plan(warmup=0, rounds=rounds), clock_factory=lambda device: clock,
                         model_factory=lambda name: Working(clock, block_s),
                         hook_cost=functools.partial(hook_cost, clock), hook_timer=clock)
    return runner.run(GROUP, LAYER1)


def shift(result) -> float:
    """How much sharing moved layer1's figure: its shared rounds over its first, separate one."""
    first, *shared = result.samples["layer1"].device_s
    assert len(set(shared)) == 1
    return shared[0] / first - 1


def test_the_recorded_bound_holds_where_the_hooks_cost_more_inside_the_forward():
    """The blocks' 4 marks cost 6 µs each inside the forward: layer1's 0.5 s grows by 24 µs when they share its pass,
    4.8e-5 of it. Taken twice over (IN_FORWARD_MARGIN), that is under the bound: it shares, and hook_bias holds it,
    where the back-to-back cost (2 µs a block's hooks) would say a sixth of it."""
    result = run_in_forward(block_s=0.25)
    assert result.shared_from == 2
    assert result.hook_s == pytest.approx(2 * WARM)  # two readings a module back to back
    assert result.hook_in_forward_s == {"layer1": pytest.approx(IN_FORWARD_MARGIN * 2 * IN_FORWARD)}
    assert shift(result) == pytest.approx(4 * IN_FORWARD / (0.5 + IN_FORWARD))
    assert result.stage_bias["layer1"] >= shift(result) * (1 - 1e-9)
    assert 2 * result.hook_s / (0.5 + IN_FORWARD) < shift(result) / 5  # the back-to-back cost is no bound
    assert group_record(result).cases["layer1"].hook_bias == result.stage_bias["layer1"]


def test_where_the_in_forward_cost_passes_the_bound_stages_and_blocks_stay_apart():
    """layer1 of 0.01 s: 24 µs would be 2.4e-3 of it. The back-to-back cost (4e-4) would have let it share."""
    result = run_in_forward(block_s=0.005)
    assert 2 * result.hook_s / 0.01 < SHARE_MAX_BIAS
    assert result.shared_from is None
    assert result.stage_bias == {"layer1": pytest.approx(IN_FORWARD_MARGIN * 4 * IN_FORWARD / (0.01 + IN_FORWARD))}
    assert result.samples["layer1"].device_s == [pytest.approx(0.01 + IN_FORWARD)] * 4


def test_the_in_forward_cost_scales_the_back_to_back_one_by_the_hooks_slowdown_in_the_forward():
    """The hooks' own code timed in a forward (a HookTimer's bodies) against the same code back to back on Identity
    modules: 6× slower scales the back-to-back cost 6× (and the margin); never below it; nothing to weigh without
    blocks."""
    clock = InForwardClock(WARM, IN_FORWARD)
    model = Working(clock, 0.01)
    hooks = HookTimer(model, ["layer1.0", "layer1.1"], clock, clock)
    with hooks.attached():
        model(torch.zeros(()))
    assert hooks.bodies == {"layer1.0": pytest.approx(4 * IN_FORWARD), "layer1.1": pytest.approx(4 * IN_FORWARD)}
    cost = in_forward_hook_cost(hooks.bodies, {"layer1": ["layer1.0", "layer1.1"]}, 3e-6, clock)
    assert cost == {"layer1": pytest.approx(3e-6 * IN_FORWARD / WARM * IN_FORWARD_MARGIN)}
    fast = {"layer1.0": 4 * WARM / 4}
    assert in_forward_hook_cost(fast, {"layer1": ["layer1.0"]}, 3e-6, InForwardClock(WARM, IN_FORWARD)) == {"layer1": 3e-6}
    assert in_forward_hook_cost(hooks.bodies, {}, 3e-6, clock) == {}


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
    """The mechanics of sharing, the hooks costing inside the forward what they cost back to back (Ticks)."""
    result, calls = run(0.9 * AT_BOUND)
    assert result.shared_from == 2 and calls == [0.9 * AT_BOUND] and result.hook_s == 0.9 * AT_BOUND
    assert result.hook_in_forward_s == {"layer1": pytest.approx(0.9 * AT_BOUND)}
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
    assert result.hook_in_forward_s == {}  # the back-to-back cost alone rules sharing out: nothing more measured
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
            "stage's figure by at most 0.0900% (--bench-scope-passes separate keeps them apart): "
            "resnet18-1x3x64x64-cpu") in summary
    separate, _ = run(1.1 * AT_BOUND)
    assert cases_of(separate)["layer1"].hook_bias is None
    assert "shared one instrumented pass" not in summary_table([group_record(separate)])


def cases_of(result):
    return group_record(result).cases
