"""machine_info: the TF32 flag read without the legacy getter's crash, NVML's driver, clocks and power limit."""

from __future__ import annotations

import pytest
import torch

from fixtures.machine import cudnn_conv_tf32, nvml_info, torch_info


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


def test_nvml_gives_driver_clocks_and_power_limit():
    assert nvml_info(0, FakeNvml()) == {
        "gpu_driver": "580.65.06",
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
