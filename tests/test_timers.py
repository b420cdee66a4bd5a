"""The clocks: exact numbers from a fake clock; CUDA events only where CUDA is."""

from __future__ import annotations

import pytest
import torch

from fixtures.timers import CudaEventClock, FakeClock, PerfCounterClock, clock_for

TICK = 2.0**-10  # exact in binary floating point, so sums and differences are exact too


def test_fake_clock_steps_cycle():
    clock = FakeClock((TICK, 3 * TICK))
    marks = [clock.mark() for _ in range(4)]
    assert [clock.seconds(a, b) for a, b in zip(marks, marks[1:])] == [3 * TICK, TICK, 3 * TICK]
    assert marks[1].host - marks[0].host == 3 * TICK


def test_perf_counter_clock_reads_the_given_clock():
    readings = iter([10.0, 10.25])
    clock = PerfCounterClock(lambda: next(readings))
    start, end = clock.mark(), clock.mark()
    assert clock.seconds(start, end) == 0.25
    assert clock.name == "perf_counter"


def test_clock_for_picks_by_device():
    assert isinstance(clock_for("cpu"), PerfCounterClock)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_event_clock_times_device_work():
    clock = clock_for("cuda")
    assert isinstance(clock, CudaEventClock)
    a = torch.randn(4096, 4096, device="cuda")
    clock.start_pass()
    start = clock.mark()
    for _ in range(10):
        a @ a
    end = clock.mark()
    clock.finish_pass()
    device_s = clock.seconds(start, end)
    # The host returns before the GPU is done: launch time is below device time for this much work.
    assert device_s > 0
    assert end.host - start.host < device_s
