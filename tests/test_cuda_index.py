"""One GPU by its index, `cuda:N`, without a GPU: parsing, ids, budget matching, extra_info and machine_info."""

from __future__ import annotations

import argparse

import pytest
import torch

from fixtures import device, machine
from fixtures.budgets import CaseFacts, parse_budgets
from fixtures.inputs import NAMED_INPUTS
from fixtures.json_contract import extra_info
from fixtures.matrix import CaseSpec, GroupKey, device_label
from fixtures.options import parse_devices
from fixtures.shapes import ModuleInfo
from stubs import measurement

PASCAL = NAMED_INPUTS["pascal"]


def two_gpus() -> int:
    return 2


def test_cuda_n_parses_against_the_visible_count():
    assert parse_devices("cpu,cuda:1,CUDA:01,cuda", two_gpus) == ("cpu", "cuda:1", "cuda")
    assert parse_devices("cuda:0", two_gpus) == ("cuda:0",)


@pytest.mark.parametrize(
    ("text", "count", "message"),
    [
        ("cuda:2", 2, "device 'cuda:2' does not exist: torch.cuda.device_count() is 2 (visible: cuda:0 … cuda:1)"),
        ("cuda:1", 0, "device 'cuda:1' does not exist: torch.cuda.device_count() is 0 (visible: none)"),
        ("cuda:one", 2, "unknown device 'cuda:one': choose from cpu, cuda, cuda:N (N a GPU index)"),
        ("cuda:-1", 2, "unknown device 'cuda:-1': choose from cpu, cuda, cuda:N (N a GPU index)"),
        ("gpu:1", 2, "unknown device 'gpu:1': choose from cpu, cuda, cuda:N (N a GPU index)"),
        ("cuda", 0, "device 'cuda' asked for, but no GPU is visible: torch.cuda.device_count() is 0; use "
                    "--bench-devices auto (or cpu) to run without one"),
        ("cpu,CUDA", 0, "device 'CUDA' asked for, but no GPU is visible: torch.cuda.device_count() is 0; use "
                        "--bench-devices auto (or cpu) to run without one"),
    ],
)
def test_a_missing_or_malformed_index_is_one_line(text, count, message):
    with pytest.raises(argparse.ArgumentTypeError) as error:
        parse_devices(text, lambda: count)
    assert str(error.value) == message


def test_auto_leaves_cuda_out_without_a_gpu_and_names_nothing_missing():
    assert parse_devices("auto", lambda: 0) is None
    assert parse_devices("cpu", lambda: 0) == ("cpu",)


def test_the_count_is_torchs_own():
    # On this machine (no GPU) every index is missing; where GPUs exist, the last visible one parses and the next doesn't.
    count = torch.cuda.device_count()
    if count:
        assert parse_devices(f"cuda:{count - 1}") == (f"cuda:{count - 1}",)
    with pytest.raises(argparse.ArgumentTypeError, match=f"is {count} "):
        parse_devices(f"cuda:{count}")


def test_ids_spell_the_index_without_the_colon():
    assert device_label("cuda:1") == "cuda1" and device_label("cpu") == "cpu" and device_label("cuda") == "cuda"
    assert CaseSpec(GroupKey("resnet50", PASCAL, "cuda:1"), "block", "layer3.2").id == "resnet50-pascal-cuda1-block-layer3.2"
    assert GroupKey("resnet18", PASCAL, "cuda:12", "bf16").id == "resnet18-pascal-cuda12-bf16"


def facts(device: str, index: int | None, name: str = "NVIDIA H200") -> CaseFacts:
    return CaseFacts("case", device, name, "resnet50", ("pascal",), "model", "", {"median_ms": 1.0}, device_index=index)


BOOK = parse_budgets(
    """
[[budget]]
device = "cuda"
median_ms = 1

[[budget]]
device = "cuda:1"
median_ms = 2

[[budget]]
device = "*h200*"
median_ms = 3

[[budget]]
device = "cpu"
median_ms = 4
""",
    "b.toml",
)


@pytest.mark.parametrize(
    ("device", "index", "name", "entry"),
    [
        ("cuda:1", 1, "NVIDIA H200", 2),  # cuda:N is exact: it beats both the family and the name glob
        ("cuda", 1, "NVIDIA H200", 2),  # "cuda" ran on the current GPU, whose index was recorded
        ("cuda:0", 0, "NVIDIA H200", 3),  # not GPU 1: the name glob (a pattern, like "cuda") is later in the file
        ("cuda:0", 0, "NVIDIA A100", 1),  # only the family matches
        ("cuda:1", None, "NVIDIA A100", 2),  # the index read from the device when extra_info lacks it
        ("cpu", None, "AMD EPYC", 4),
    ],
)
def test_budget_device_matching(device, index, name, entry):
    assert BOOK.governing(facts(device, index, name)).index == entry


def test_a_cuda_index_budget_is_exact_and_a_malformed_one_is_refused():
    assert BOOK.budgets[1].specificity == (1, 1, 2) and BOOK.budgets[0].specificity == (1, 0, 1)
    with pytest.raises(ValueError, match=r"^b.toml: budget entry 1: device 'cuda:x': write cuda:N with N a GPU index"):
        parse_budgets('[[budget]]\ndevice = "cuda:x"\nmedian_ms = 1\n', "b.toml")


def test_extra_info_carries_the_index():
    m = measurement(CaseSpec(GroupKey("resnet18", PASCAL, "cuda:1"), "model"), (0.001,), timer="cuda_event", warmup=25,
                    info=ModuleInfo((1, 3, 500, 334), (1, 1000), 11_689_512), device_name="NVIDIA H200", threads=2,
                    device_index=1)
    info = extra_info(m)
    assert (info["device"], info["device_index"], info["device_name"]) == ("cuda:1", 1, "NVIDIA H200")


def test_machine_info_names_the_gpu_the_run_uses(monkeypatch):
    names = ["GPU zero", "GPU one", "GPU two"]
    monkeypatch.setattr(machine, "cuda_available", lambda: True)
    monkeypatch.setattr(device, "cuda_available", lambda: True)
    monkeypatch.setattr(machine, "nvml_info", lambda index=0: {})
    monkeypatch.setattr(machine, "_cuda_driver_api_version", lambda: None)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: names[index])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6")
    info = machine.torch_info(("cpu", "cuda:1"))
    assert (info["gpu"], info["gpu_index"], info["gpu_count"]) == ("GPU one", 1, 3)
    assert info["gpus"] == names and info["cuda_visible_devices"] == "4,5,6"
    assert machine.torch_info(("cuda",))["gpu_index"] == 2  # the current GPU
    assert machine.torch_info(("cpu",))["gpu"] == "GPU zero"  # a CPU run still names the machine's first GPU
    assert device.device_index("cuda") == 2 and device.device_index("cuda:1") == 1 and device.device_index("cpu") is None


def test_machine_info_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("checks the CPU-only machine")
    info = machine.torch_info(("cpu",))
    assert (info["gpu"], info["gpu_index"], info["gpus"], info["gpu_count"]) == (None, None, [], 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_device_makes_the_gpu_current():
    last = torch.cuda.device_count() - 1
    before = torch.cuda.current_device()
    with device.on_device(f"cuda:{last}"):
        assert torch.cuda.current_device() == last
        assert torch.cuda.current_stream().device == torch.device(f"cuda:{last}")
    assert torch.cuda.current_device() == before
