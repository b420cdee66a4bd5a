"""The runner with a fake clock: exact per-module samples, the rounds rule, shapes and parameter counts."""

from __future__ import annotations

import pytest
import torch
import torchvision

from fixtures.inputs import parse_input
from fixtures.matrix import GroupKey, Matrix, build_groups, modules_for
from fixtures.measurement import GroupRecord
from fixtures.models import build_model
from fixtures.runner import GroupRunner
from fixtures.stages_and_blocks import STAGES
from fixtures.timers import FakeClock
from stubs import ResNetStub, settings
from stubs import plan as make_plan

TICK = 2.0**-10
TINY = parse_input("1x3x64x64")
GROUP = GroupKey("resnet18", TINY, "cpu")
ALL = [*modules_for("resnet18", "model"), *modules_for("resnet18", "stage"), *modules_for("resnet18", "block")]


def run(modules, stub=False, **plan):
    """One group run on the fake clock (of a ResNet stand-in when `stub`: conv1 and layer1, quick for many rounds).
    The blocks' hooks cost 3 µs, as on this project's CPU: 6e-3 of a one-tick stage, so passes stay separate."""
    factory = (lambda name: ResNetStub()) if stub else build_model
    runner = GroupRunner(make_plan(**{"warmup": 1, **plan}), clock_factory=lambda device: FakeClock((TICK,)),
                         model_factory=factory, hook_cost=lambda: 3e-6)
    return runner.run(GROUP, modules)


def test_every_mark_is_one_tick_so_each_module_spans_its_nested_marks():
    result = run(ALL, rounds=3)
    assert result.rounds == 3 and result.timer == "fake" and result.warmup == 1
    # Clean pass: two marks around the bare model.
    assert result.samples[""].device_s == [TICK] * 3
    # Stages and blocks are marked in passes of their own: layerN's span holds none of its blocks' marks.
    assert result.samples["conv1"].device_s == [TICK] * 3
    assert result.samples["layer2"].device_s == [TICK] * 3
    assert result.samples["layer3.1"].device_s == [TICK] * 3
    # Host and device read the same clock on a CPU.
    assert result.samples["layer2"].host_s == result.samples["layer2"].device_s
    # The stage pass: begin + end + 2 marks for each of 10 stages = 22 marks, 21 ticks; the block pass: 8 blocks, 17.
    assert result.instrumented_s == {"stage": [21 * TICK] * 3, "block": [17 * TICK] * 3}


def test_a_stage_is_timed_alike_whatever_else_is_selected():
    """layer1's figure doesn't depend on whether its blocks are selected: no block hook runs in its pass."""
    alone = run(["layer1"], rounds=3).samples["layer1"]
    with_blocks = run(["layer1", "layer1.0", "layer1.1"], rounds=3).samples["layer1"]
    assert alone.device_s == with_blocks.device_s == [TICK] * 3
    assert alone.host_s == with_blocks.host_s


def test_the_time_budget_stops_a_group_after_its_min_rounds():
    # A round here: the clean pass (1 tick) and the stage pass (begin, conv1's two marks, end: 3 ticks) = 4 ticks.
    result = run(["", "conv1"], stub=True, min_rounds=3, precision=None, budget_s=19 * TICK)
    assert (result.rounds, result.stop, result.spent_s) == (5, "no target", 20 * TICK)
    assert run(["", "conv1"], stub=True, min_rounds=7, precision=None, budget_s=19 * TICK).rounds == 7  # min_rounds first
    assert run(["", "conv1"], stub=True, rounds=2, precision=None, budget_s=19 * TICK).rounds == 2  # fixed rounds win


def test_under_a_precision_target_a_group_runs_the_six_rounds_an_interval_needs():
    """A budget spent in the first round still leaves a median with its 95 % interval; without a target the budget
    stops at --benchmark-min-rounds."""
    result = run(["", "conv1"], stub=True, min_rounds=5, precision=0.05, budget_s=TICK)
    assert result.rounds == 6
    assert run(["", "conv1"], stub=True, min_rounds=5, precision=None, budget_s=TICK).rounds == 5
    assert run(["", "conv1"], stub=True, min_rounds=8, precision=0.05, budget_s=TICK).rounds == 8


def test_the_precision_target_stops_a_steady_group_once_its_interval_is_tight():
    # Steady rounds: the interval of the median is known from 6 rounds on, and is 0 wide. Without the target the
    # budget would take 50 rounds.
    result = run(["", "conv1"], stub=True, min_rounds=1, precision=0.01, budget_s=200 * TICK)
    assert (result.rounds, result.stop, result.precision) == (6, "precise", 0.01)
    assert run(["", "conv1"], stub=True, min_rounds=1, precision=None, budget_s=200 * TICK).rounds == 50


def test_a_group_that_runs_out_of_budget_before_its_target_is_named_imprecise():
    # Noisy rounds (the clean pass alternates 1 and 3 ticks): ±50% never reaches ±1%; the budget ends the group.
    runner = GroupRunner(make_plan(warmup=0, min_rounds=1, precision=0.01, budget_s=40 * TICK),
                         clock_factory=lambda device: FakeClock((TICK, TICK, 3 * TICK, 3 * TICK)),
                         model_factory=lambda name: ResNetStub())
    result = runner.run(GROUP, [""])
    assert result.stop == "budget" and result.imprecise and result.rounds == 20  # 1 and 3 ticks: 2 a round
    assert not run([""], stub=True, rounds=3).imprecise


def test_precision_is_read_on_the_first_instrumented_pass_without_the_whole_model():
    result = run(["conv1"], stub=True, min_rounds=1, precision=0.01, budget_s=200 * TICK)
    assert (result.rounds, result.stop) == (6, "precise")


def test_only_the_asked_modules_are_timed():
    result = run(["layer1.0"], rounds=2)
    assert set(result.samples) == {"layer1.0"}
    assert result.samples["layer1.0"].device_s == [TICK, TICK]


def test_module_info_gives_shapes_and_params():
    result = run(ALL, rounds=1)
    reference = torchvision.models.resnet18(weights=None)
    assert result.info[""].params == sum(p.numel() for p in reference.parameters()) == 11_689_512
    assert result.info[""].input_shape == (1, 3, 64, 64)
    assert result.info[""].output_shape == (1, 1000)
    assert result.info["conv1"].output_shape == (1, 64, 32, 32)
    assert result.info["maxpool"].output_shape == (1, 64, 16, 16)
    assert result.info["layer4.1"].output_shape == (1, 512, 2, 2)
    assert result.info["fc"].input_shape == (1, 512)
    assert result.info["layer1.0"].params == sum(p.numel() for p in reference.layer1[0].parameters())
    assert sum(result.info[s].params for s in STAGES) == result.info[""].params


def test_missing_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA is present")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        GroupRunner(make_plan("cuda", warmup=0, rounds=1)).run(GroupKey("resnet18", TINY, "cuda"), [""])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_run_times_with_events():
    result = GroupRunner(make_plan("cuda", warmup=3, rounds=5)).run(GroupKey("resnet18", TINY, "cuda"), ["", *STAGES])
    assert result.timer == "cuda_event"
    assert all(s > 0 for s in result.samples[""].device_s)
    assert len(result.samples["layer4"].device_s) == 5


def record(result):
    """The group's records, as the session makes them."""
    specs = Matrix([GROUP], ("model",)).specs(GROUP, list(result.samples))
    return GroupRecord.of(specs, result, settings(), None)


def test_summary_ratios_from_fake_clock_samples():
    from fixtures.render.terminal import block_sum_ratio, hook_overhead, stage_sum_ratio, summary_table

    result = record(run(ALL, rounds=3))
    # Stages: ten one-tick stages over a one-tick clean pass.
    assert stage_sum_ratio(result) == 10.0
    # Blocks: 8 one-tick blocks over the four one-tick layers.
    assert block_sum_ratio(result) == 8 / 4
    # The stage pass: 21 ticks over the clean pass's one.
    assert hook_overhead(result) == 21.0
    lines = summary_table([result]).splitlines()
    row = lines[2].split()
    assert row == ["resnet18-1x3x64x64-cpu", "3", f"{TICK * 1e3:.3f}", "10.000", "2.000", "21.000", row[-1]]
    assert lines[3] == "timed with fake after 1 warm-up call (cpu)"
    assert stage_sum_ratio(record(run(["", "conv1"], rounds=1))) is None  # not every stage timed: no ratio


def test_garbage_collection_is_off_inside_the_timed_passes_when_asked():
    """--benchmark-disable-gc was recorded in the JSON but not done: tensors are gc-tracked, so collections landed in
    the timed passes. Now no collection can run between a pass's marks, and gc is as it was afterwards."""
    import gc

    class GcWatchingClock(FakeClock):
        def __init__(self) -> None:
            super().__init__((TICK,))
            self.enabled: list[bool] = []

        def mark(self):
            self.enabled.append(gc.isenabled())
            return super().mark()

    for disable in (True, False):
        clock = GcWatchingClock()
        runner = GroupRunner(make_plan(warmup=0, rounds=2, disable_gc=disable), clock_factory=lambda d, clock=clock: clock,
                             model_factory=lambda name: ResNetStub())
        runner.run(GROUP, ["", "conv1"])
        assert clock.enabled and set(clock.enabled) == {not disable}
        assert gc.isenabled()


def test_settings_that_change_a_figure_name_the_case():
    """fold_bn, a compile mode and cuDNN autotuning are in the ids (default ids stay as they were), so
    --benchmark-compare and the regression gate never set folded against unfolded under one name."""
    assert GroupKey("resnet18", TINY, "cpu").id == "resnet18-1x3x64x64-cpu"
    assert GroupKey("resnet18", TINY, "cpu", fold_bn=True).id == "resnet18-1x3x64x64-cpu-fold_bn"
    compiled = GroupKey("resnet18", TINY, "cuda", "bf16", executor="compile", compile_mode="reduce-overhead",
                        cudnn_benchmark=True)
    assert compiled.id == "resnet18-1x3x64x64-cuda-bf16-compile-reduce-overhead-cudnn_benchmark"
    assert GroupKey("resnet18", TINY, "cpu", executor="compile", compile_mode="default").id == (
        "resnet18-1x3x64x64-cpu-compile")
    groups = build_groups(("resnet18",), (TINY,), ("cpu",), executors=("eager", "compile"), compile_mode="max-autotune",
                          fold_bn=True)
    assert [g.id for g in groups] == ["resnet18-1x3x64x64-cpu-fold_bn", "resnet18-1x3x64x64-cpu-compile-max-autotune-fold_bn"]
