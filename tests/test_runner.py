"""The runner with a fake clock: exact per-module samples, the rounds rule, shapes and parameter counts."""

from __future__ import annotations

import pytest
import torch
import torchvision

from fixtures.matrix import GroupKey, Matrix, modules_for
from fixtures.measurement import GroupRecord
from fixtures.runner import GroupRunner
from fixtures.timers import FakeClock
from fixtures.zoo import STAGES, parse_input
from stubs import plan as make_plan
from stubs import settings

TICK = 2.0**-10
TINY = parse_input("1x3x64x64")
GROUP = GroupKey("resnet18", TINY, "cpu")
ALL = [*modules_for("resnet18", "model"), *modules_for("resnet18", "stage"), *modules_for("resnet18", "block")]


def run(modules, **plan):
    runner = GroupRunner(make_plan(**{"warmup": 1, **plan}), clock_factory=lambda device: FakeClock((TICK,)))
    return runner.run(GROUP, modules)


def test_every_mark_is_one_tick_so_each_module_spans_its_nested_marks():
    result = run(ALL, rounds=3)
    assert result.rounds == 3 and result.timer == "fake" and result.warmup == 1
    # Clean pass: two marks around the bare model.
    assert result.samples[""].device_s == [TICK] * 3
    # A stage with no hooked children spans one tick; layerN spans its two blocks' four marks plus its own: 5 ticks.
    assert result.samples["conv1"].device_s == [TICK] * 3
    assert result.samples["layer2"].device_s == [5 * TICK] * 3
    assert result.samples["layer3.1"].device_s == [TICK] * 3
    # Host and device read the same clock on a CPU.
    assert result.samples["layer2"].host_s == result.samples["layer2"].device_s
    # Instrumented pass: begin + end + 2 marks for each of 10 stages and 8 blocks = 38 marks, 37 ticks.
    assert result.instrumented_s == [37 * TICK] * 3


def test_adaptive_rounds_follow_min_rounds_and_max_time():
    # One tick per clean pass: max_time of 5 ticks needs 5 rounds, more than min_rounds.
    assert run(["", "conv1"], min_rounds=3, max_time=5 * TICK).rounds == 5
    assert run(["", "conv1"], min_rounds=7, max_time=5 * TICK).rounds == 7
    # Without the whole model, the instrumented passes count: begin, conv1 pre/post, end = 3 ticks a pass.
    assert run(["conv1"], min_rounds=1, max_time=7 * TICK).rounds == 3


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
    # Stages: six one-tick stages + four layers of 5 ticks = 26 ticks over a one-tick clean pass.
    assert stage_sum_ratio(result) == 26.0
    # Blocks: 8 one-tick blocks over the four 5-tick layers.
    assert block_sum_ratio(result) == 8 / 20
    # Instrumented pass: 37 ticks over the clean pass's one.
    assert hook_overhead(result) == 37.0
    *_, row, clocks = summary_table([result]).splitlines()
    row = row.split()
    assert row == ["resnet18-1x3x64x64-cpu", "3", f"{TICK * 1e3:.3f}", "26.000", "0.400", "37.000", row[-1]]
    assert clocks == "timed with fake after 1 warm-up call (cpu)"
    assert stage_sum_ratio(record(run(["", "conv1"], rounds=1))) is None  # not every stage timed: no ratio
