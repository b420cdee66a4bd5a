"""The runtimes through the real plugin: --help names them, a run saves their figures and prints them side by side,
combinations that can't run and runtimes that aren't installed are one-line skips, and a model a runtime can't take
fails that runtime's cases in one line while the others run.

The runs that export a model are subprocesses: an in-process run drops the modules it imported, and importing onnx's
C extension or torch's exporter modules a second time in one process aborts it or fails on registries already filled.
The others are in-process (pytester.runpytest_inprocess, --import-mode=importlib, as tests/test_models_plugin.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stubs import checkout_project

ROOT = Path(__file__).resolve().parent.parent
for _name in ("onnx", "onnxscript", "onnxruntime", "openvino"):
    pytest.importorskip(_name)

TINY = ("benchmarks/test_latency.py", "--bench-devices", "cpu", "--bench-models", "resnet18", "--bench-inputs", "1x3x64x64", "--bench-rounds", "2",
        "--bench-warmup", "1", "--bench-threads", "1")
CUMMAX = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=4)

    def forward(self, x):
        return torch.cummax(self.conv(x), dim=1).values  # an operator torch.onnx has no ONNX function for


def cummax():
    return Net()
'''


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    return checkout_project(pytester, monkeypatch, files={"team_nets.py": CUMMAX})


def test_help_names_the_runtimes(project):
    result = project("--help")
    result.stdout.fnmatch_lines(["*--bench-executors=EXECUTORS*"])
    text = " ".join(result.stdout.str().split())
    assert "onnxruntime, openvino (CPU), aotinductor (torch.export + AOTInductor package; CPU, GPU), tensorrt" in text


def test_a_run_saves_and_shows_the_runtimes_beside_eager(project):
    result = project(*TINY, "--bench-executors", "eager,onnxruntime,openvino,tensorrt", "--bench-scopes", "model,stage",
                     "--benchmark-json", "out.json", "-rs", subprocess=True)
    result.assert_outcomes(passed=33, skipped=11)  # eager, onnxruntime, openvino: 1 + 10 cases each
    result.stdout.fnmatch_lines([
        "[[]resnet-profile[]] measuring resnet18-1x3x64x64-cpu-onnxruntime: 11 cases, warm-up 1",
        "[[]resnet-profile[]] measured resnet18-1x3x64x64-cpu-onnxruntime: 2 rounds in *.* s, export *.* s and build "
        "*.* s included",
    ])
    result.stdout.fnmatch_lines([
        "*SKIPPED [[]11[]]*tensorrt: not on cpu: TensorRT runs on NVIDIA GPUs only",
    ])
    result.stdout.fnmatch_lines([
        "runtimes side by side:",
        "model-input-device*executor*median ms ±%*x eager*out diff*export s*build s*credited/total*total/whole",
        "*",
        "resnet18-1x3x64x64-cpu*eager*1.00*",
        "resnet18-1x3x64x64-cpu*onnxruntime*e-0[5-9]*[01].[0-9][0-9][0-9]*",
        "resnet18-1x3x64x64-cpu*openvino*e-0[5-9]*[01].[0-9][0-9][0-9]*",
    ])
    saved = {b["name"]: b["extra_info"] for b in json.loads((project.path / "out.json").read_text())["benchmarks"]}
    eager = saved["test_latency[resnet18-1x3x64x64-cpu-model]"]
    assert "runtime" not in eager and "figure_kind" not in eager  # eager's cases are as before
    whole = saved["test_latency[resnet18-1x3x64x64-cpu-onnxruntime-model]"]
    assert (whole["runtime"], whole["executor"], whole["figure_kind"], whole["timer"]) == (
        "onnxruntime", "onnxruntime", "clock", "perf_counter")
    assert (whole["runtime_precision"], whole["runtime_threads"], whole["dtype"]) == ("fp32", 1, "fp32")
    assert whole["runtime_settings"]["providers"] == "CPUExecutionProvider"
    assert whole["runtime_settings"]["allow_spinning"] == "0"  # the profiled session's workers can't spin into it
    assert whole["export_s"] > 0 and whole["build_s"] > 0 and whole["output_max_rel_diff"] < 1e-3
    assert whole["profiled_rounds"] == 2 and whole["credited_ratio"] > 0.95
    assert "ReorderOutput" in whole["unattributed_nodes"]  # inserted by ONNX Runtime, named after nothing
    assert whole["peak_mib"] > 0  # memray saw one forward under the runtime
    stage = saved["test_latency[resnet18-1x3x64x64-cpu-onnxruntime-stage-layer1]"]
    assert (stage["figure_kind"], stage["timer"]) == ("profiler", "onnxruntime profiler")
    ov = saved["test_latency[resnet18-1x3x64x64-cpu-openvino-model]"]
    assert ov["runtime_settings"]["INFERENCE_PRECISION_HINT"] == "f32" and ov["dtype_method"] == "precision hint"

    # Saved under another ONNX Runtime build, its cases are not compared (as a baseline under another torch is not).
    data = json.loads((project.path / "out.json").read_text())
    for bench in data["benchmarks"]:
        if bench["extra_info"].get("runtime") == "onnxruntime":
            bench["extra_info"]["runtime_version"] = "0.0.1"
    (project.path / "out.json").write_text(json.dumps(data))
    again = project(*TINY, "--bench-executors", "onnxruntime", "--bench-scopes", "model", "--bench-regression", "out.json",
                    subprocess=True)
    text = " ".join(again.stdout.str().split())  # the summary's lines are wrapped
    assert "0 not in baseline, 1 under another runtime version" in text
    assert (
        "not compared, the baseline ran another runtime version (1; --bench-regression-force compares them anyway): "
        "resnet18-1x3x64x64-cpu-onnxruntime-model (onnxruntime 0.0.1, now 1."
    ) in text
    assert again.ret == 1, again.stdout.str()[-2000:]  # nothing was compared


def test_combinations_a_runtime_cannot_run_are_one_line_skips(project):
    result = project(*TINY, "--bench-executors", "onnxruntime,aotinductor", "--bench-dtypes", "bf16",
                     "--bench-formats", "contiguous,channels_last", "--collect-only", "-q")
    assert result.ret == 0
    result = project(*TINY, "--bench-executors", "onnxruntime,aotinductor", "--bench-dtypes", "bf16",
                     "--bench-formats", "contiguous,channels_last", "-rs", "-k", "not model")
    result.stdout.fnmatch_lines_random([
        "*onnxruntime: no bf16: the CPU provider runs float32 convolutions only",
        "*aotinductor: its compiled kernels span module boundaries and it has no per-node profiler, so stage cases "
        "are not measured; the whole model is (its model case)",
    ])
    assert "Error" not in result.stdout.str()


def test_a_runtime_that_is_not_installed_is_a_one_line_skip(project, monkeypatch):
    from fixtures.runtimes import support

    real = support.missing
    monkeypatch.setattr(support, "missing", lambda runtime: ("openvino", "openvino") if runtime == "openvino"
                        else real(runtime))
    result = project(*TINY, "--bench-executors", "openvino", "-rs")
    result.assert_outcomes(skipped=19)
    result.stdout.fnmatch_lines(["*SKIPPED [[]19[]]*openvino: not installed: no module openvino (pip install openvino; "
                                 "docs/runtimes.md)"])


def test_a_model_a_runtime_cannot_take_fails_its_cases_in_one_line(project):
    result = project("benchmarks/test_latency.py", "--bench-devices", "cpu", "--bench-models", "team_nets:cummax", "--bench-inputs", "1x3x32x32",
                     "--bench-rounds", "2", "--bench-executors", "eager,onnxruntime", "--bench-scopes", "model",
                     subprocess=True)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*team_nets.cummax-1x3x32x32-cpu-onnxruntime could not be measured: RuntimeFailed: onnxruntime: "
        "torch.onnx.export (dynamo) failed: DispatchError: No ONNX function found for *aten.cummax*",
    ])
