"""The measurement record field by field: a group's share for one case, every extra_info value, the hand-over."""

from __future__ import annotations

import dataclasses

import pytest

from fixtures.inputs import parse_input
from fixtures.json_contract import extra_info, record
from fixtures.matrix import CaseSpec, GroupKey
from fixtures.measurement import Measurement
from fixtures.memory import MIB, ForwardMemory, MemoryReport, Peak, StaticMemory, TensorRow
from fixtures.runner import GroupResult, Samples
from fixtures.shapes import ModuleInfo
from stubs import context, measurement

GROUP = GroupKey("resnet18", parse_input("2x3x64x64"), "cuda", "bf16", "channels_last", "eager")
FOLDED = GroupKey("resnet18", parse_input("2x3x64x64"), "cuda", "bf16", "channels_last", "compile", "max-autotune",
                  fold_bn=True, cudnn_benchmark=True)
DEVICE = (0.004, 0.001, 0.003, 0.002)  # seconds per round
HOST = (0.0005, 0.0006, 0.0007, 0.0008)  # launch-bound below 2.5 ms of device time: host median 0.65 ms


def measured(group: GroupKey = GROUP, **fields) -> Measurement:
    spec = CaseSpec(group, "block", "layer3.1")
    return measurement(spec, DEVICE, HOST, timer="cuda_event", warmup=25,
                       info=ModuleInfo((2, 128, 8, 8), (2, 256, 4, 4), 1234), device_name="NVIDIA H200", threads=8,
                       **fields)


def test_from_group_takes_the_cases_share_of_the_group():
    result = GroupResult(
        group=GROUP, timer="cuda_event", warmup=25, rounds=4,
        samples={"": Samples([1.0] * 4, [2.0] * 4), "layer3.1": Samples(list(DEVICE), list(HOST))},
        info={"": ModuleInfo((2, 3, 64, 64), (2, 1000), 9), "layer3.1": ModuleInfo((2, 128, 8, 8), (2, 256, 4, 4), 1234)},
        instrumented_s=[1.0] * 4, wall_s=3.0, compile_s=1.5,
    )
    spec = CaseSpec(GROUP, "block", "layer3.1")
    m = Measurement.from_group(spec, result, context("NVIDIA H200", 8, flops=7))
    assert m == measurement(spec, DEVICE, HOST, timer="cuda_event", warmup=25,
                            info=ModuleInfo((2, 128, 8, 8), (2, 256, 4, 4), 1234), device_name="NVIDIA H200",
                            threads=8, flops=7, compile_s=1.5)


def test_every_extra_info_value():
    clocks = ({"sm_mhz": 1980, "default_sm_mhz": 1980, "reasons": []},
              {"sm_mhz": 1200, "default_sm_mhz": 1980, "reasons": ["sw_thermal_slowdown"]})
    m = measured(FOLDED, flops=10**9, peak_tflops=500.0, compile_s=1.5, gpu_s=(0.0021, 0.0023, 0.0022),
                 peak_row="*H200* bf16", device_index=0, model_kind="torchvision", output_stride=32,
                 block_type="BasicBlock", module_index=5, worker="gw1", device_uuid="GPU-8c1f")
    info = extra_info(dataclasses.replace(m, stop="budget", precision_target=0.005, gpu_clocks=clocks))
    median_s = 0.0025  # of 1, 2, 3, 4 ms
    expected = {
        "model": "resnet18", "model_kind": "torchvision", "output_stride": 32, "block_type": "BasicBlock",
        "module_index": 5, "input": "2x3x64x64", "input_shape": [2, 3, 64, 64], "device": "cuda",
        "device_name": "NVIDIA H200", "scope": "block", "module": "layer3.1", "module_input_shape": [2, 128, 8, 8],
        "module_output_shape": [2, 256, 4, 4], "params": 1234, "timer": "cuda_event", "warmup": 25,
        "p50_ms": 2.5, "p90_ms": 3.7, "p99_ms": 3.97, "fps": 2 / 0.0025, "dtype": "bf16", "dtype_method": "converted",
        "memory_format": "channels_last", "executor": "compile", "fold_bn": True, "compile_s": 1.5,
        "compile_cache_hits": None,
        "compile_mode": "max-autotune", "threads": 8, "flops": 10**9, "tflops_per_s": 1e9 / median_s / 1e12,
        "peak_pct": 100 * (1e9 / median_s / 1e12) / 500.0, "host_ms": 0.65,
        # GPU time 2.2 ms: the 2.5 ms latency is 1.136x it, past the 1.10 launch-bound ratio.
        "gpu_ms": 2.2, "gpu_rounds": 3, "launch_bound": True, "cudnn_benchmark": True, "peak_row": "*H200* bf16",
        "device_index": 0, "worker": "gw1", "device_uuid": "GPU-8c1f",
        # 4 rounds: too few for a 95% interval; 4 vs 4 rounds can reach p = 1/70 at best, not 0.01.
        "ci_low_ms": None, "ci_high_ms": None, "ci_level": None, "ci_rel": None, "detectable_slowdown": None, "detect_target": None,
        "drift_p": pytest.approx(0.75, abs=0.01), "drift_change": 0.0, "drifted": False,  # 4, 1 | 3, 2 ms: 2.5 both
        "stop": "budget", "precision_target": 0.005, "shared_pass_from": None, "hook_bias": None,
        "gpu_clocks": {"start": clocks[0], "end": clocks[1]},
        "gpu_clock_trouble": ["sw_thermal_slowdown", "sm clock 1200 MHz < 75% of 1980 MHz"],
    }
    assert set(info) == set(expected)
    for key, value in expected.items():
        assert info[key] == (pytest.approx(value, rel=1e-12) if isinstance(value, float) else value), key
    # Six rounds give the interval [x(1), x(6)] at 96.9%, its half-width over the median, and a detectable slowdown.
    six = extra_info(measurement(CaseSpec(GROUP, "model"), (0.010, 0.011, 0.012, 0.013, 0.014, 0.016)))
    assert (six["ci_low_ms"], six["ci_high_ms"]) == (pytest.approx(10.0), pytest.approx(16.0))
    assert six["ci_level"] == pytest.approx(1 - 2 / 64) and six["ci_rel"] == pytest.approx(3.0 / 12.5)
    assert six["detectable_slowdown"] > 0.10
    assert "peak_mib" not in info


def test_extra_info_without_flops_or_peak_and_with_memory():
    static = StaticMemory((TensorRow("w", "parameter", (4,), "float32", 3_000_000, 12 * MIB),
                           TensorRow("x", "input", (4,), "float32", 1_000_000, 4 * MIB)))
    memory = MemoryReport(GROUP, static, ForwardMemory("cuda", Peak(16 * MIB, 48 * MIB)))
    info = extra_info(measured(memory=memory))
    assert (info["tflops_per_s"], info["peak_pct"], info["compile_mode"], info["fold_bn"]) == (None, None, None, False)
    assert (info["gpu_clocks"], info["gpu_clock_trouble"], info["stop"]) == (None, [], "rounds")
    assert {k: info[k] for k in ("peak_mib", "activation_mib", "memory_tool", "allocated_mib", "params_m", "tensors_m")} \
        == {"peak_mib": 64.0, "activation_mib": 48.0, "memory_tool": "cuda", "allocated_mib": 16.0, "params_m": 3.0,
            "tensors_m": 4.0}
    zero = measurement(measured().spec, (0.0,))
    assert extra_info(zero)["fps"] is None and extra_info(zero)["launch_bound"] is None
    # Launch-bound is latency against GPU time (never host time): none without GPU time, and 1.10x is not past it.
    slow_host = measurement(measured().spec, (0.001,), (0.002,), timer="cuda_event", device_name="x")
    assert extra_info(slow_host)["launch_bound"] is None
    at_ratio = measurement(measured().spec, (0.0011,), (0.0001,), timer="cuda_event", device_name="x", gpu_s=(0.001,))
    assert extra_info(at_ratio)["launch_bound"] is False


class FakeBenchmark:
    """The parts of pytest-benchmark's fixture `record` uses (tests/test_measurement.py pins the real one)."""

    def __init__(self, disabled: bool = False) -> None:
        self.group = None
        self.extra_info: dict = {}
        self.disabled = disabled
        self.rounds: list[float] = []
        self.iterations: int | None = None
        self.options: dict = {}

    def _make_stats(self, iterations: int):
        self.iterations = iterations
        return self

    def update(self, seconds: float) -> None:
        self.rounds.append(seconds)


def test_record_hands_over_device_seconds_never_host_seconds():
    benchmark = FakeBenchmark()
    record(benchmark, measured())
    assert benchmark.rounds == list(DEVICE) and benchmark.iterations == 1
    assert benchmark.group == GROUP.id == "resnet18-2x3x64x64-cuda-bf16-channels_last"
    assert benchmark._mode == "resnet-profile"
    assert benchmark.options == {"timer": "cuda_event", "warmup": 25}
    assert benchmark.extra_info == extra_info(measured())
    disabled = FakeBenchmark(disabled=True)
    record(disabled, measured())
    assert disabled.rounds == [] and disabled.iterations is None and disabled.extra_info["module"] == "layer3.1"
