"""machine_info: the TF32 flag read without the legacy getter's crash, NVML's driver, clocks and power limit."""

from __future__ import annotations

import pytest
import torch

from fixtures import machine
from fixtures.machine import clock_trouble, cudnn_conv_tf32, gpu_clocks, matmul_tf32, nvml_info, torch_info


@pytest.fixture
def precisions():
    """Restore cuDNN's fp32_precision settings after the test."""
    cudnn = torch.backends.cudnn
    saved = cudnn.conv.fp32_precision, cudnn.rnn.fp32_precision
    yield cudnn
    cudnn.conv.fp32_precision, cudnn.rnn.fp32_precision = saved


def test_conv_tf32_is_read_where_the_legacy_flag_raises(precisions):
    precisions.rnn.fp32_precision = "ieee"  # conv keeps "tf32": a mix the new API allows
    with pytest.raises(RuntimeError, match="different TF32 flags"):
        torch.backends.cudnn.allow_tf32  # noqa: B018  (the legacy getter this reads around)
    assert cudnn_conv_tf32() is True
    info = torch_info()
    assert (info["cudnn_allow_tf32"], info["cudnn_conv_fp32_precision"]) == (True, "tf32")
    precisions.conv.fp32_precision = "ieee"
    assert cudnn_conv_tf32() is False and torch_info()["cudnn_allow_tf32"] is False


class FakeNvml:
    """The few pynvml calls nvml_info makes, with an H200 NVL's answers (NVML reports power in milliwatts)."""

    NVML_CLOCK_SM, NVML_CLOCK_MEM = 1, 2

    def __init__(self, init_error: Exception | None = None) -> None:
        self.init_error = init_error

    def nvmlInit(self) -> None:
        if self.init_error:
            raise self.init_error

    def nvmlSystemGetDriverVersion(self) -> bytes:
        return b"580.65.06"

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        return f"handle{index}"

    def nvmlDeviceGetClockInfo(self, handle: str, clock: int) -> int:
        return {1: 1755, 2: 3201}[clock]

    def nvmlDeviceGetMaxClockInfo(self, handle: str, clock: int) -> int:
        return 1785

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: str) -> int:
        return 600_000

    def nvmlDeviceGetPowerManagementDefaultLimit(self, handle: str) -> int:
        raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")

    def nvmlDeviceGetUUID(self, handle: str) -> bytes:
        return b"GPU-8e1f0c2a"


class ThrottledNvml(FakeNvml):
    """A GPU held back by its power cap and running hot: SM clock 1100 MHz against a 1980 MHz default."""

    def nvmlDeviceGetClockInfo(self, handle: str, clock: int) -> int:
        return {1: 1100, 2: 3201}[clock]

    def nvmlDeviceGetDefaultApplicationsClock(self, handle: str, clock: int) -> int:
        return 1980

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: str) -> int:
        return 0x4 | 0x20  # sw power cap, sw thermal slowdown


def test_nvml_gives_driver_clocks_and_power_limit():
    assert nvml_info(0, FakeNvml()) == {
        "gpu_driver": "580.65.06",
        "gpu_uuid": "GPU-8e1f0c2a",
        "gpu_sm_clock_mhz": 1755,
        "gpu_max_sm_clock_mhz": 1785,
        "gpu_mem_clock_mhz": 3201,
        "gpu_power_limit_w": 600.0,  # the unsupported default limit is left out, not an error
    }
    assert nvml_info(0, FakeNvml(init_error=OSError("NVML Shared Library Not Found"))) == {}


def test_without_a_gpu_the_gpu_fields_are_empty():
    if torch.cuda.is_available():
        pytest.skip("CUDA is present")
    info = torch_info()
    assert (info["gpu"], info["gpu_count"], info["gpu_driver"]) == (None, 0, None)
    assert "gpu_power_limit_w" not in info


def test_matmul_tf32_is_read_from_its_own_flag():
    matmul = torch.backends.cuda.matmul
    saved = matmul.fp32_precision
    try:
        assert matmul_tf32() is False  # PyTorch's default: "none" inherits ieee
        matmul.fp32_precision = "tf32"
        assert matmul_tf32() is True and torch_info()["matmul_allow_tf32"] is True
    finally:
        matmul.fp32_precision = saved


def test_gpu_clocks_per_group_and_what_makes_them_suspect(monkeypatch):
    monkeypatch.setattr(machine, "device_index", lambda device: None if device == "cpu" else 0)
    assert gpu_clocks("cpu", ThrottledNvml()) is None
    assert gpu_clocks("cuda", FakeNvml(init_error=OSError("no NVML"))) is None
    clocks = gpu_clocks("cuda:0", ThrottledNvml())
    assert clocks == {"sm_mhz": 1100, "default_sm_mhz": 1980, "max_sm_mhz": 1785,
                      "reasons": ["sw_power_cap", "sw_thermal_slowdown"]}
    assert clock_trouble(clocks) == ["sw_power_cap", "sw_thermal_slowdown", "sm clock 1100 MHz < 75% of 1980 MHz"]
    # A driver without the clocks-event call and without a default clock: the maximum is the reference.
    steady = gpu_clocks("cuda:0", FakeNvml())
    assert steady == {"sm_mhz": 1755, "default_sm_mhz": None, "max_sm_mhz": 1785, "reasons": []}
    assert clock_trouble(steady) == []
    assert clock_trouble({"sm_mhz": 1300, "max_sm_mhz": 1785, "reasons": ["gpu_idle"]}) == [
        "sm clock 1300 MHz < 75% of 1785 MHz"]  # an idle GPU is not throttled; 1300 < 0.75 x 1785 is


def test_the_runner_reads_the_clocks_at_the_start_and_end_of_each_group():
    from fixtures.inputs import parse_input
    from fixtures.matrix import GroupKey
    from fixtures.runner import GroupRunner
    from fixtures.timers import FakeClock
    from stubs import ResNetStub, plan

    readings = iter([{"sm_mhz": 1980, "reasons": []}, {"sm_mhz": 900, "default_sm_mhz": 1980, "reasons": []}])
    seen: list[str] = []

    def probe(device: str):
        seen.append(device)
        return next(readings)

    runner = GroupRunner(plan(warmup=0, rounds=2), clock_factory=lambda d: FakeClock(),
                         model_factory=lambda n: ResNetStub(), clock_probe=probe)
    result = runner.run(GroupKey("resnet18", parse_input("1x3x64x64"), "cpu"), [""])
    assert seen == ["cpu", "cpu"] and result.gpu_clocks[1]["sm_mhz"] == 900
