"""The order of a group's passes, seen through test doubles: warm-up first, one synchronize per pass, host kept apart.

A logging clock wraps the fake clock (its marks' host time runs 3x the device time, as when a GPU is busy) and a
forward pre-hook logs each call of the timed model, so the runner's sequence of calls can be asserted exactly.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from fixtures.inputs import parse_input
from fixtures.matrix import GroupKey
from fixtures.models import build_model
from fixtures.runner import GroupResult, GroupRunner
from fixtures.timers import FakeClock, Mark
from stubs import plan

TICK = 2.0**-10
GROUP = GroupKey("resnet18", parse_input("1x3x64x64"), "cpu")


class LoggingClock:
    """The fake clock, logging every call; each mark's host time is 3x its device time."""

    name = "logging"
    holds = False  # a CPU-like clock: nothing to hold

    def __init__(self, log: list[str]) -> None:
        self._clock = FakeClock((TICK,))
        self._log = log

    def start_pass(self) -> None:
        self._log.append("start")

    def hold(self, seconds: float) -> Mark:
        raise AssertionError("a clock that doesn't hold is never asked to")

    def mark(self) -> Mark:
        self._log.append("mark")
        mark = self._clock.mark()
        return Mark(3 * mark.host, mark.token)

    def finish_pass(self) -> None:
        self._log.append("sync")

    def seconds(self, start: Mark, end: Mark) -> float:
        return self._clock.seconds(start, end)


@pytest.fixture(scope="module")
def logged() -> tuple[list[str], GroupResult]:
    """One group run (2 warm-up calls, 2 rounds; the whole model, conv1 and layer1.0) and its log."""
    log: list[str] = []

    def model_factory(name: str):
        model = build_model(name)
        model.register_forward_pre_hook(lambda _module, _args: log.append("forward"))
        return model

    runner = GroupRunner(plan(warmup=2, rounds=2), clock_factory=lambda device: LoggingClock(log),
                         model_factory=model_factory)
    return log, runner.run(GROUP, ["", "conv1", "layer1.0"])


def test_warm_up_first_one_synchronize_per_pass_and_host_kept_apart(logged):
    # One test, not several over the module-scoped run: mutmut maps the run to the test whose setup ran it.
    log, result = logged
    clean = ["start", "mark", "forward", "mark", "sync"]
    # Instrumented: begin, the model's call, the module's pre/post marks (conv1 in the stage pass, layer1.0 in the
    # block pass), end; one sync a pass, not one per module.
    instrumented = ["start", "mark", "forward", "mark", "mark", "mark", "sync"]
    # conv1 holds no selected block: from the second round one pass marks both, exactly (no hook inside a span).
    shared = ["start", "mark", "forward", "mark", "mark", "mark", "mark", "mark", "sync"]
    assert log == ["forward", "forward", "sync", *clean, *instrumented, *instrumented, *clean, *shared]
    assert result.rounds == 2 and result.warmup == 2 and result.timer == "logging"
    assert result.shared_from == 2 and result.stage_bias == {} and result.hook_s is None  # nothing to measure
    assert result.samples[""].device_s == [TICK, TICK]
    assert result.samples[""].host_s == [3 * TICK, 3 * TICK]
    assert result.samples["conv1"].device_s == [TICK, TICK]
    assert result.samples["conv1"].host_s == [3 * TICK, 3 * TICK]
    assert result.samples["layer1.0"].device_s == [TICK, TICK]
    # Begin, the module's pre and post, end: 3 device ticks a pass; the shared pass has both modules' marks: 5.
    assert result.instrumented_s == {"stage": [3 * TICK], "block": [3 * TICK], "stage+block": [5 * TICK]}


def test_the_plan_reaches_the_run():
    """min_rounds 0 (and no precision target) still takes one round; BN folding replaces bn1 before anything runs; the clock is the group's."""
    log: list[str] = []
    devices: list[str] = []

    def model_factory(name: str):
        model = build_model(name)
        model.bn1.register_forward_pre_hook(lambda _module, _args: log.append("bn1"))
        return model

    runner = GroupRunner(plan(warmup=0, min_rounds=0, precision=None, budget_s=1e-9),
                         clock_factory=lambda device: devices.append(device) or LoggingClock(log),
                         model_factory=model_factory)
    result = runner.run(dataclasses.replace(GROUP, fold_bn=True), ["", "bn1"])  # bn1 times the Identity in its place
    assert result.rounds == 1 and devices == ["cpu"]
    assert "bn1" not in log  # folded: the hooked BatchNorm was replaced before the first call
    assert result.samples["bn1"].device_s == [TICK]


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_missing_cuda_is_one_exact_line():
    with pytest.raises(RuntimeError) as error:
        GroupRunner(plan("cuda", warmup=0, rounds=1)).run(GroupKey("resnet18", parse_input("1x3x64x64"), "cuda"), [""])
    assert str(error.value) == "CUDA is not available on this machine"
