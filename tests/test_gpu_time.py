"""Latency, host time and GPU time kept apart: the fake clock's host and device streams, the held passes, the stream
hold's check that it held, launch_bound from the two device figures; the real CUDA hold where CUDA is."""

from __future__ import annotations

import pytest
import torch

from fixtures.inputs import parse_input
from fixtures.json_contract import extra_info
from fixtures.matrix import CaseSpec, GroupKey
from fixtures.measurement import Measurement
from fixtures.render.terminal import summary_table
from fixtures.runner import GroupResult, GroupRunner, Samples
from fixtures.timers import FakeClock, PerfCounterClock
from stubs import ResNetStub, context, group_record
from stubs import plan as make_plan

# Exact in binary floating point, and all different: a figure read from the wrong stream can't pass by coincidence.
TICK = 2.0**-10  # device step of an unheld pass (latency)
HOST = 3 * 2.0**-10  # host step
GPU = 2.0**-11  # device step after a hold (GPU execution)
FLOOR = 100e-6  # the hold's floor (timers.HOLD_FLOOR_S)
TINY = parse_input("1x3x64x64")
GROUP = GroupKey("resnet18", TINY, "cpu")
PARTS = ["conv1", "layer1", "layer1.0", "layer1.1"]



def run(modules, clock, **plan):
    runner = GroupRunner(make_plan(**{"warmup": 0, **plan}), clock_factory=lambda device: clock,
                         model_factory=lambda name: ResNetStub())
    return runner.run(GROUP, modules)


def test_fake_clock_keeps_host_and_device_apart():
    clock = FakeClock((TICK,), host_steps=(HOST,), gpu_steps=(GPU,))
    clock.start_pass()
    a, b = clock.mark(), clock.mark()
    assert (clock.seconds(a, b), b.host - a.host) == (TICK, HOST)
    clock.start_pass()
    hold = clock.hold(5 * TICK)
    c, d = clock.mark(), clock.mark()
    assert clock.seconds(hold, c) == 5 * TICK + GPU  # the hold, then the begin mark's GPU step
    assert (clock.seconds(c, d), d.host - c.host, c.host - hold.host) == (GPU, HOST, HOST)
    assert clock.hold_requests == [5 * TICK] and clock.holds
    # Without host_steps the host follows the device (the clock the existing tests were written for); no gpu_steps,
    # no holding, as on a CPU.
    plain = FakeClock((TICK, 3 * TICK))
    e, f = plain.mark(), plain.mark()
    assert (plain.seconds(e, f), f.host - e.host, plain.holds) == (3 * TICK, 3 * TICK, False)
    assert PerfCounterClock.holds is False


@pytest.fixture(scope="module")
def gated():
    """Two rounds of a holding fake clock over the whole model and four in-situ modules (shared: forwards cost)."""
    clock = FakeClock((TICK,), host_steps=(HOST,), gpu_steps=(GPU,))
    return run(["", *PARTS], clock, rounds=2), clock


def test_runner_records_device_time_host_time_and_gpu_time_from_their_own_streams(gated):
    """Fails if host seconds are recorded as device samples, latency as GPU time, or a held pass as the latency."""
    result, _ = gated
    whole = result.samples[""]
    assert (whole.device_s, whole.host_s, whole.gpu_s) == ([TICK] * 2, [HOST] * 2, [GPU] * 2)
    assert result.samples["conv1"].device_s == [TICK] * 2 and result.samples["conv1"].host_s == [HOST] * 2
    # layer1 is marked in the stage pass, where its blocks are not: one step in every stream, as conv1.
    layer1 = result.samples["layer1"]
    assert (layer1.device_s, layer1.host_s, layer1.gpu_s) == ([TICK] * 2, [HOST] * 2, [GPU] * 2)
    assert result.samples["layer1.1"].gpu_s == [GPU] * 2
    # Each instrumented pass (6 marks: its two modules' and its own) is timed unheld; the held twins don't enter it.
    assert result.instrumented_s == {"stage": [5 * TICK] * 2, "block": [5 * TICK] * 2} and result.hold_leaks == 0


def test_each_hold_is_sized_from_the_host_time_of_the_same_pass_unheld(gated):
    _, clock = gated
    # Clean pass: one host step begin → end; stage and block passes: 5 each. The hold is twice that plus the floor.
    assert clock.hold_requests == [2 * HOST + FLOOR, 2 * 5 * HOST + FLOOR, 2 * 5 * HOST + FLOOR] * 2


def test_a_hold_that_ends_too_early_is_caught_and_widened():
    # hold_ratio 0.5: the spin lasts half what was asked. The first clean hold (2 host steps + floor) then ends before
    # the host has issued the pass's two marks: that sample is dropped and the factor doubles, after which every hold
    # holds.
    clock = FakeClock((TICK,), host_steps=(HOST,), gpu_steps=(GPU,), hold_ratio=0.5)
    result = run(["", "conv1"], clock, rounds=2)
    assert result.hold_leaks == 1
    assert result.samples[""].gpu_s == [GPU]
    assert result.samples["conv1"].gpu_s == [GPU] * 2
    # The instrumented pass has 4 marks: 3 host steps begin → end.
    assert clock.hold_requests == [2 * HOST + FLOOR, 4 * 3 * HOST + FLOOR] * 1 + [4 * HOST + FLOOR, 4 * 3 * HOST + FLOOR]


def test_the_time_budget_counts_the_held_passes_too():
    # A round: the clean pass (1 tick) and its held twin (the hold, 2 host steps + the floor, then 2 GPU steps).
    clock = FakeClock((TICK,), host_steps=(HOST,), gpu_steps=(GPU,))
    per_round = TICK + 2 * HOST + FLOOR + 2 * GPU
    result = run([""], clock, min_rounds=1, precision=None, budget_s=2.5 * per_round)
    assert result.rounds == 3 and result.samples[""].gpu_s == [GPU] * 3
    assert result.spent_s == pytest.approx(3 * per_round) and result.stop == "no target"
    # Counting the clean passes alone, 2.5 rounds' budget would take 10 rounds.
    assert TICK * 9 < 2.5 * per_round


def test_a_hold_that_never_holds_gives_no_gpu_figure():
    # A spin that holds nothing never passes the check: no GPU figure at all rather than a wrong one.
    clock = FakeClock((TICK,), host_steps=(HOST,), gpu_steps=(GPU,), hold_ratio=0.0)
    result = run([""], clock, rounds=3)
    assert result.samples[""].gpu_s == [] and result.hold_leaks == 3
    assert clock.hold_requests == [2 * HOST + FLOOR, 4 * HOST + FLOOR, 8 * HOST + FLOOR]


def test_gpu_ms_and_launch_bound_reach_extra_info_and_the_summary(gated):
    result, _ = gated
    info = extra_info(Measurement.from_group(CaseSpec(GROUP, "model"), result, context("fake GPU")))
    assert (info["p50_ms"], info["host_ms"], info["gpu_ms"], info["gpu_rounds"]) == (
        TICK * 1e3, HOST * 1e3, GPU * 1e3, 2
    )
    assert info["launch_bound"] is True  # latency is twice the GPU time
    lines = summary_table([group_record(result)]).splitlines()
    assert "median ms    GPU ms    hold leaks" in lines[0]  # wider than 120 in one line: the headers take two
    row = next(line for line in lines if line.startswith("resnet18"))  # a long group id wraps onto the next line
    assert row.split()[2:5] == [f"{TICK * 1e3:.3f}", f"{GPU * 1e3:.3f}", "0"]  # 2 rounds: no interval, no ±
    # Nothing held (a CPU): no GPU columns, no GPU figure, no verdict.
    cpu = GroupResult(GROUP, "perf_counter", 0, 1, {"": Samples([TICK], [TICK])}, result.info, {}, 0.0)
    assert "GPU" not in summary_table([group_record(cpu)])
    plain = extra_info(Measurement.from_group(CaseSpec(GROUP, "model"), cpu, context()))
    assert (plain["gpu_ms"], plain["launch_bound"]) == (None, None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_hold_separates_gpu_time_from_launch_time():
    """On a GPU: many tiny kernels are launch-bound (latency well above GPU time); a big matmul is not."""
    from fixtures.runner import timed_pass
    from fixtures.timers import CudaEventClock, StreamHold

    clock = CudaEventClock("cuda")
    small = torch.ones(8, device="cuda")
    big = torch.randn(4096, 4096, device="cuda")
    gate = StreamHold()

    def tiny_kernels():
        for _ in range(200):
            small.add_(1)

    for work, launch_bound in ((tiny_kernels, True), (lambda: big @ big, False)):
        for _ in range(3):  # warm up: the kernels load, the hold calibrates
            _, begin, end = timed_pass(clock, work)
            timed_pass(clock, work, gate.seconds(end.host - begin.host))
        _, begin, end = timed_pass(clock, work)
        latency = clock.seconds(begin, end)
        start, g_begin, g_end = timed_pass(clock, work, gate.seconds(end.host - begin.host))
        assert gate.held(clock, start, g_begin, g_end)
        gpu = clock.seconds(g_begin, g_end)
        assert 0 < gpu <= latency * 1.05
        assert (latency > 1.10 * gpu) is launch_bound, (latency, gpu)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_run_records_gpu_time_for_the_model_and_its_stages():
    result = GroupRunner(make_plan("cuda", warmup=3, rounds=5)).run(GroupKey("resnet18", TINY, "cuda"),
                                                                     ["", "conv1", "layer1"])
    assert result.timer == "cuda_event"
    assert len(result.samples[""].gpu_s) + result.hold_leaks >= 5
    assert all(0 < g for g in result.samples[""].gpu_s)
    # A 64x64 resnet18 is launch-bound on any current GPU: the GPU works far less than the latency.
    import statistics

    assert statistics.median(result.samples[""].gpu_s) < statistics.median(result.samples[""].device_s)
