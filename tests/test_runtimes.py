"""The deployment runtimes: the output check and the settings check with exact values; then ONNX Runtime, OpenVINO and
AOTInductor for real, on this CPU with a tiny input, for a torchvision, a timm and a segmentation model (in-process,
GroupRunner); a wrong weight and an unset precision hint caught; TensorRT where CUDA and torch-tensorrt exist."""

from __future__ import annotations

import copy
import importlib.util
import math
import tempfile

import pytest
import torch

from fixtures.inputs import parse_input
from fixtures.matrix import GroupKey
from fixtures.runner import GroupRunner
from fixtures.runtimes import AOTINDUCTOR, ONNXRUNTIME, OPENVINO, PROFILED, TENSORRT
from fixtures.runtimes.executor import RuntimeFailed, check_settings
from fixtures.runtimes.facts import TOLERANCE, RuntimeMismatch, compare, leaves, tolerance_key
from fixtures.stages_and_blocks import parts_of
from stubs import plan

TINY = parse_input("1x3x64x64")


# --- the checks, exact -------------------------------------------------------------------------------------------------


def test_output_difference_is_relative_to_the_largest_reference_magnitude():
    check = compare([torch.tensor([1.0, -4.0])], [torch.tensor([1.5, -4.0])], "fp32")
    assert (check.max_abs, check.max_rel, check.tolerance) == (0.5, 0.125, TOLERANCE["fp32"])
    assert not check.within
    assert compare([torch.tensor([1.0, -4.0])], [torch.tensor([1.0, -4.002])], "bf16").within


def test_half_precision_is_held_to_three_times_eagers_own_difference_at_least_its_floor():
    ref, out = [torch.tensor([1.0, -4.0])], [torch.tensor([1.5, -4.0])]  # 0.125 of the scale
    loose = compare(ref, out, "bf16", eager_rel=0.05)  # eager bf16 itself is 0.05 off: 3x that, 0.15
    assert (loose.tolerance, loose.eager_rel, loose.within) == (pytest.approx(0.15), 0.05, True)
    tight = compare(ref, out, "bf16", eager_rel=0.01)  # 3x is 0.03: the floor, 0.1, holds
    assert (tight.tolerance, tight.within) == (TOLERANCE["bf16"], False)


def test_every_output_is_compared_in_order():
    reference = leaves({"out": torch.ones(2), "aux": torch.zeros(3)})  # a segmentation model's dict
    check = compare(reference, [torch.ones(2), torch.full((3,), 0.25)], "fp32")
    assert (check.max_abs, check.max_rel) == (0.25, 0.25)
    with pytest.raises(RuntimeMismatch, match="gave 1 outputs, eager 2"):
        compare(reference, [torch.ones(2)], "fp32")
    with pytest.raises(RuntimeMismatch, match=r"shape \(2,\), eager's \(3,\)"):
        compare(reference, [torch.ones(2), torch.ones(2)], "fp32")


def test_nan_outputs_never_pass():
    check = compare([torch.ones(2)], [torch.tensor([1.0, math.nan])], "bf16")
    assert check.max_rel == math.inf and not check.within


def test_fp32_on_a_gpu_with_tf32_is_held_to_tf32s_tolerance(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    assert [tolerance_key("fp32", "cpu"), tolerance_key("fp32", "cuda:1"), tolerance_key("bf16", "cuda")] == [
        "fp32", "tf32", "bf16"]
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    assert tolerance_key("fp32", "cuda") == "fp32"


def test_a_runtime_reporting_another_precision_or_thread_count_fails_in_one_line():
    check_settings("openvino", "fp32", "fp32", 2, 2)  # what was asked: nothing raised
    with pytest.raises(RuntimeMismatch) as raised:
        check_settings("openvino", "fp32", "bf16", 2, 2)
    assert str(raised.value).startswith("openvino: asked for fp32, the runtime reports it computes in bf16")
    assert "\n" not in str(raised.value)
    with pytest.raises(RuntimeMismatch, match="asked for 1 threads, the runtime reports 2"):
        check_settings("onnxruntime", "fp32", "fp32", 2, 1)
    check_settings("tensorrt", "fp16", "fp16", None, None)  # a GPU: no thread count


# --- the runtimes, for real --------------------------------------------------------------------------------------------


def run_group(model: str, runtime: str, dtype: str = "fp32", rounds: int = 2):
    """One group of `model` at 1x3x64x64 under `runtime`: the whole model, and its stages and blocks where the runtime
    profiles."""
    group = GroupKey(model, TINY, "cpu", dtype=dtype, executor=runtime)
    parts = parts_of(model)
    modules = ["", *parts.stages, *parts.blocks] if runtime in PROFILED else [""]
    return GroupRunner(plan(rounds=rounds, warmup=1)).run(group, modules, None)


@pytest.fixture
def own_tmp(tmp_path, monkeypatch):
    """Temporary folders made during the test go under tmp_path, so that what a group leaves behind can be seen."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


MODELS = ("resnet18", "timm.resnet18", "fcn_resnet50")


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("runtime", [ONNXRUNTIME, OPENVINO, AOTINDUCTOR])
def test_a_runtime_times_the_model_of_every_kind(model, runtime, own_tmp):
    result = run_group(model, runtime)
    facts = result.runtime
    assert facts is not None and facts.runtime == runtime
    assert facts.precision == "fp32" and facts.threads == torch.get_num_threads()
    assert facts.check.max_rel < TOLERANCE["fp32"] / 4  # the same arithmetic up to reordering, well within
    assert facts.export_s > 0 and facts.build_s > 0
    assert result.rounds == 2 and len(result.samples[""].device_s) == 2
    assert not [p for p in own_tmp.iterdir() if p.name.startswith(f"resnet-profile-{runtime}-")]  # removed
    parts = parts_of(model)
    if runtime not in PROFILED:
        assert set(result.samples) == {""} and result.credited is None
        return
    credited = result.credited
    assert credited is not None and credited.rounds == 2
    for name in (*parts.stages, *parts.blocks):
        assert len(result.samples[name].device_s) == 2
    # Each round's stage figures add up to what the rule credited to a stage; what's left is unattributed.
    for round_index in range(2):
        stages = sum(result.samples[s].device_s[round_index] for s in parts.stages)
        assert stages == pytest.approx(credited.staged_s[round_index], rel=1e-9)
        assert credited.staged_s[round_index] <= credited.total_s[round_index]
    assert credited.credited_ratio > 0.95  # every convolution and the head are credited
    for layer in parts.layers:  # a layer's nodes are its blocks' nodes
        blocks = [b for b in parts.blocks if b.startswith(layer + ".")]
        assert sum(result.samples[b].device_s[0] for b in blocks) == pytest.approx(result.samples[layer].device_s[0])
        assert result.samples[layer].device_s[0] > 0


def test_openvino_in_bf16_computes_in_bf16():
    from fixtures.runtimes.support import openvino_capabilities

    if "BF16" not in openvino_capabilities():
        pytest.skip("this CPU has no bf16 for OpenVINO")
    facts = run_group("resnet18", OPENVINO, dtype="bf16").runtime
    assert facts is not None and facts.precision == "bf16" and facts.settings["INFERENCE_PRECISION_HINT"] == "bf16"
    assert facts.dtype_method == "precision hint"
    check = facts.check
    assert check.eager_rel is not None and 1e-3 < check.eager_rel < 0.1  # eager bf16's own rounding, measured
    assert check.tolerance == max(TOLERANCE["bf16"], 3 * check.eager_rel)
    assert 1e-4 < check.max_rel <= check.tolerance  # bf16's rounding shows, within its tolerance


@pytest.mark.parametrize(("runtime", "dtype"), [(ONNXRUNTIME, "fp32"), (OPENVINO, "fp32"), (OPENVINO, "bf16")])
def test_a_runtime_handed_a_wrong_weight_fails_the_output_check(runtime, dtype, monkeypatch):
    if dtype == "bf16":
        from fixtures.runtimes.support import openvino_capabilities

        if "BF16" not in openvino_capabilities():
            pytest.skip("this CPU has no bf16 for OpenVINO")
    module = importlib.import_module("fixtures.runtimes.onnx_graph")  # ONNX Runtime's and OpenVINO's export
    export = module.export_onnx

    def wrong_weight(model, x, folder):
        with torch.inference_mode(False), torch.no_grad():
            broken = copy.deepcopy(model)
            broken.layer4[1].conv2.weight.mul_(1.5)
        return export(broken, x, folder)

    monkeypatch.setattr(module, "export_onnx", wrong_weight)
    with pytest.raises(RuntimeMismatch) as raised:
        run_group("resnet18", runtime, dtype)
    line = str(raised.value)
    assert line.startswith(f"{runtime}: outputs differ from eager fp32 by ") and "\n" not in line
    tolerance = "> the fp32 tolerance 0.001:" if dtype == "fp32" else "> the bf16 tolerance 0.1 (3x eager bf16's own 0.0"
    assert tolerance in line


def test_openvino_without_the_precision_hint_fails_its_read_back(monkeypatch):
    import openvino

    from fixtures.runtimes.ov import OpenVinoBackend

    default = str(openvino.Core().get_property("CPU", "INFERENCE_PRECISION_HINT"))
    if "f32" in default or "float32" in default:
        pytest.skip(f"this CPU's OpenVINO computes in {default} by default: an unset hint changes nothing here")
    config = OpenVinoBackend.config
    monkeypatch.setattr(
        OpenVinoBackend, "config", lambda self: {k: v for k, v in config(self).items() if k != "INFERENCE_PRECISION_HINT"}
    )
    with pytest.raises(RuntimeMismatch, match="openvino: asked for fp32, the runtime reports it computes in bf16"):
        run_group("resnet18", OPENVINO)


def test_a_model_the_exporter_cannot_take_names_the_exporters_reason(monkeypatch):
    from torch import nn

    class Gate(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            y = self.conv(x)
            return y * 2 if y.sum() > 0 else y  # data-dependent control flow: torch.export can't take it

    group = GroupKey("resnet18", TINY, "cpu", executor=ONNXRUNTIME)
    runner = GroupRunner(plan(rounds=2, warmup=1), model_factory=lambda name: Gate().eval())
    with pytest.raises(RuntimeFailed) as raised:
        runner.run(group, [""], None)
    assert str(raised.value).startswith(
        "onnxruntime: torch.onnx.export (dynamo) failed: GuardOnDataDependentSymNode: Could not guard on "
        "data-dependent expression"
    )


@pytest.mark.skipif(
    not torch.cuda.is_available() or importlib.util.find_spec("torch_tensorrt") is None,
    reason="tensorrt needs CUDA and torch-tensorrt (pip install torch-tensorrt)",
)
def test_tensorrt_times_and_credits_on_a_gpu():
    group = GroupKey("resnet18", TINY, "cuda", executor=TENSORRT)
    parts = parts_of("resnet18")
    result = GroupRunner(plan("cuda", rounds=3, warmup=3)).run(group, ["", *parts.stages, *parts.blocks], None)
    assert result.runtime is not None and result.runtime.check.within
    assert result.credited is not None and result.credited.credited_ratio > 0.9
    assert sum(result.samples[s].device_s[0] for s in parts.stages) == pytest.approx(result.credited.staged_s[0])
