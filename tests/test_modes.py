"""Speed modes and efficiency: FLOPs against the formula, peaks, skips, host/device split, BN folding."""

from __future__ import annotations

import math

import pytest
import torch

from fixtures.efficiency import peak_lookup, peak_pct, tflops_per_s
from fixtures.flops import flops_by_module
from fixtures.inputs import parse_input
from fixtures.json_contract import extra_info
from fixtures.matrix import CaseSpec, GroupKey, Matrix
from fixtures.measurement import GroupRecord
from fixtures.memory import MemoryReport, not_measured, static_memory
from fixtures.models import build_model
from fixtures.modes import fold_batchnorm, fold_pairs, not_in_situ, unsupported
from fixtures.runner import GroupRunner, module_info
from fixtures.shapes import ModuleInfo, first_tensor
from fixtures.stages_and_blocks import STAGES
from stubs import measurement as record_of
from stubs import plan, settings

TINY = parse_input("1x3x64x64")


def conv_flops(c_in, c_out, k, h_out, w_out, groups=1):
    """2 FLOPs per multiply-add: every output element takes c_in/groups * k * k of them."""
    return 2 * c_out * h_out * w_out * (c_in // groups) * k * k


def test_flops_of_a_convolution_equal_the_formula():
    flops = flops_by_module("resnet18", (1, 3, 64, 64))
    assert flops["conv1"] == conv_flops(3, 64, 7, 32, 32)
    # layer1.0 of resnet18: two 3x3 convolutions 64 -> 64 on 16x16
    assert flops["layer1.0"] == 2 * conv_flops(64, 64, 3, 16, 16)
    assert flops["fc"] == 2 * 512 * 1000
    assert flops["bn1"] == flops["relu"] == flops["maxpool"] == 0  # not counted by FlopCounterMode
    assert flops[""] == sum(flops[s] for s in STAGES)
    # A grouped convolution: resnext50_32x4d's layer1.0.conv2 is 3x3, 128 -> 128 in 32 groups, on 16x16.
    grouped = flops_by_module("resnext50_32x4d", (1, 3, 64, 64))
    assert grouped["layer1.0.conv2"] == conv_flops(128, 128, 3, 16, 16, groups=32)


def test_flops_scale_with_the_batch():
    assert flops_by_module("resnet18", (4, 3, 64, 64))[""] == 4 * flops_by_module("resnet18", (1, 3, 64, 64))[""]


def test_peaks_come_from_the_table_or_the_override():
    assert peak_lookup("NVIDIA H200", "bf16", tf32=True)[0] == 989.4
    assert peak_lookup("NVIDIA H200", "fp32", tf32=True)[0] == 494.7
    assert peak_lookup("NVIDIA H200", "fp32", tf32=False)[0] == 66.9
    # The NVL part's dense peaks are lower, and the row that applied is recorded.
    assert peak_lookup("NVIDIA H200 NVL", "fp32", tf32=True) == (417.5, "*H200 NVL* tf32")
    assert peak_lookup("NVIDIA H200 NVL", "bf16", tf32=True) == (835.5, "*H200 NVL* bf16")
    assert peak_lookup("NVIDIA H200 NVL", "fp32", tf32=False) == (60.0, "*H200 NVL* fp32")
    assert peak_lookup("NVIDIA H200", "fp16", tf32=True) == (989.4, "*H200* fp16")
    assert peak_lookup("NVIDIA H100 NVL", "bf16", tf32=True) == (835.5, "*H100 NVL* bf16")
    assert peak_lookup("NVIDIA L40S", "bf16", tf32=True) == (362.05, "*L40S* bf16")
    assert peak_lookup("NVIDIA GeForce RTX 2080 Ti", "fp32", tf32=True)[0] == 13.4  # Turing has no TF32
    assert peak_lookup("NVIDIA GeForce RTX 2080 Ti", "fp16", tf32=True)[0] == 53.8  # tensor cores, fp32 accumulation
    assert peak_lookup("NVIDIA GeForce RTX 2080 Ti", "bf16", tf32=True) == (None, None)  # no bf16 rate
    assert peak_lookup("AMD EPYC", "fp32", tf32=True, override=2.5) == (2.5, "--bench-peak-tflops")
    assert peak_lookup("AMD EPYC", "fp32", tf32=True)[0] is None
    assert peak_lookup("AMD EPYC", "fp32", tf32=True, override=2.5)[0] == 2.5
    assert tflops_per_s(2_000_000_000_000, 0.5) == 4.0
    assert tflops_per_s(0, 0.5) is None
    assert peak_pct(4.0, 16.0) == 25.0
    assert peak_pct(4.0, None) is None


def test_combinations_that_cannot_run_say_why():
    cpu = GroupKey("resnet18", TINY, "cpu", executor="cuda_graph")
    assert unsupported(cpu, cuda_available=False) == "cuda_graph: CUDA graphs need a CUDA device"
    assert unsupported(GroupKey("resnet18", TINY, "cuda"), cuda_available=False).startswith("cuda: CUDA is not available")
    assert unsupported(GroupKey("resnet18", TINY, "cpu", "bf16", "channels_last"), cuda_available=False) is None
    compiled = GroupKey("resnet18", TINY, "cuda", executor="compile")
    assert not_in_situ(compiled, "model") is None
    assert "module boundaries do not exist" in not_in_situ(compiled, "block")
    assert not_in_situ(GroupKey("resnet18", TINY, "cuda"), "stage") is None


def measurement(timer, device_s, host_s, flops=0, peak=None, gpu_s=()):
    spec = CaseSpec(GroupKey("resnet50", TINY, "cuda", "bf16", "channels_last"), "stage", "layer3")
    return record_of(spec, device_s, host_s, timer=timer, gpu_s=gpu_s, device_name="NVIDIA H200", threads=8,
                     flops=flops, peak_tflops=peak)


def test_launch_bound_is_latency_more_than_ten_percent_above_gpu_time():
    # GPU-bound: 4 ms of latency, 3.7 ms of GPU time — within the 10 % margin; the host's 1 ms doesn't enter the verdict.
    gpu_bound = extra_info(measurement("cuda_event", (0.004,) * 3, (0.001, 0.001, 0.002), gpu_s=(0.0037,) * 3))
    assert (gpu_bound["p50_ms"], gpu_bound["host_ms"]) == (4.0, 1.0)
    assert gpu_bound["gpu_ms"] == pytest.approx(3.7) and gpu_bound["gpu_rounds"] == 3
    assert gpu_bound["launch_bound"] is False
    # Launch-bound: the GPU works 1 ms of a 3 ms latency, even though the host took less than the latency to issue it.
    launch = extra_info(measurement("cuda_event", (0.003,) * 3, (0.002,) * 3, gpu_s=(0.001,) * 3))
    assert launch["launch_bound"] is True and launch["gpu_ms"] == pytest.approx(1.0)
    # The threshold itself: 9 % above GPU time is not launch-bound, 11 % is.
    assert measurement("cuda_event", (0.00109,), (0.001,), gpu_s=(0.001,)).launch_bound is False
    assert measurement("cuda_event", (0.00111,), (0.001,), gpu_s=(0.001,)).launch_bound is True
    # No GPU time (a CPU, or no gated pass held): no verdict, and no gpu_ms.
    cpu = extra_info(measurement("perf_counter", (0.001,), (0.001,)))
    assert (cpu["gpu_ms"], cpu["gpu_rounds"], cpu["launch_bound"]) == (None, 0, None)


def test_efficiency_in_extra_info():
    info = extra_info(measurement("cuda_event", (0.002,) * 3, (0.001,) * 3, flops=4_000_000_000_000, peak=1000.0))
    assert info["flops"] == 4_000_000_000_000
    assert math.isclose(info["tflops_per_s"], 2000.0)  # 4 TFLOP in 2 ms
    assert math.isclose(info["peak_pct"], 200.0)
    assert (info["dtype"], info["memory_format"], info["executor"], info["dtype_method"]) == (
        "bf16", "channels_last", "eager", "converted",
    )


def test_folding_batchnorm_keeps_the_output():
    torch.manual_seed(0)
    model = build_model("resnet18")
    for module in model.modules():  # non-trivial statistics, or folding would be a no-op
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        expected = model(x)
        pairs = fold_pairs("resnet18", (1, 3, 64, 64))
        # the stem, two per block (8 blocks), the three downsample branches: every BatchNorm of resnet18
        assert len(pairs) == 20 and ("conv1", "bn1") in pairs and ("layer2.0.downsample.0", "layer2.0.downsample.1") in pairs
        folded = fold_batchnorm(model, pairs)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
        torch.testing.assert_close(folded(x), expected, rtol=1e-4, atol=1e-4)


def test_a_folded_group_counts_the_parameters_of_the_model_it_times():
    """resnet50 folded: each folded BatchNorm's weight and bias (2 × C) gone, a C-bias on its convolution: 25,530,472
    parameters, the figure its memory reports (params_m), not the unfolded 25,557,032 beside it."""
    names = ["", "conv1", "bn1", "layer1.0"]
    plain = module_info("resnet50", (1, 3, 64, 64), names)
    folded = module_info("resnet50", (1, 3, 64, 64), names, fold_bn=True)
    assert [plain[n].params for n in names] == [25_557_032, 9408, 128, 75_008]
    assert [folded[n].params for n in names] == [25_530_472, 9472, 0, 74_368]
    assert folded[""].params == static_memory("resnet50", (1, 3, 64, 64), "fp32", fold_bn=True).params
    assert [folded[n].output_shape for n in names] == [plain[n].output_shape for n in names]
    # The record a folded group writes: one figure in extra_info's params and params_m.
    group = GroupKey("resnet18", TINY, "cpu", fold_bn=True)
    result = GroupRunner(plan(warmup=0, rounds=1)).run(group, ["", "bn1"])
    memory = MemoryReport(group, static_memory("resnet18", TINY.shape, "fp32", True), not_measured("-", [""]))
    record = GroupRecord.of(Matrix([group], ("model", "stage")).specs(group, ["", "bn1"]), result, settings(), memory)
    info = extra_info(record.cases[""])
    assert info["params"] == round(info["params_m"] * 1e6) == 11_684_712  # 11,689,512 less 4,800: a C-bias for 2 × C
    assert extra_info(record.cases["bn1"])["params"] == 0


@pytest.mark.parametrize("name", ["timm.resnet50d", "deeplabv3_resnet50+aux", "resnet50+os8+backbone"])
def test_folding_finds_every_batchnorm_of_the_other_kinds_and_keeps_the_output(name):
    """timm's deep stem ends in conv1.6 -> bn1 (a Sequential, then its parent's BatchNorm); ASPP's pooling branch and
    the heads are Sequentials; the dataflow rule finds them all."""
    torch.manual_seed(0)
    model = build_model(name)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    norms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    pairs = fold_pairs(name, (1, 3, 64, 64))
    assert len(pairs) == norms and len({bn for _, bn in pairs}) == norms
    if name.startswith("timm."):
        assert ("conv1.6", "bn1") in pairs
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        expected = first_tensor(model(x))
        folded = fold_batchnorm(model, pairs)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
        torch.testing.assert_close(first_tensor(folded(x)), expected, rtol=1e-3, atol=1e-3)


def test_folding_leaves_a_batchnorm_whose_input_another_module_takes_too():
    from fixtures.modes import conv_bn_pairs

    class Fork(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn, self.side = torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4), torch.nn.ReLU()
            self.conv2, self.bn2 = torch.nn.Conv2d(4, 4, 1), torch.nn.BatchNorm2d(4)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + self.side(y) + self.bn2(self.conv2(y))

    with torch.device("meta"):
        model = Fork().eval()
    assert conv_bn_pairs(model, (1, 3, 8, 8)) == [("conv2", "bn2")]


@pytest.mark.parametrize(("dtype", "memory_format"), [("bf16", "channels_last"), ("fp16", "contiguous")])
def test_modes_run_on_cpu(dtype, memory_format):
    group = GroupKey("resnet18", TINY, "cpu", dtype, memory_format)
    result = GroupRunner(plan(warmup=1, rounds=2)).run(group, ["", "layer1", "layer1.0"])
    assert set(result.samples) == {"", "layer1", "layer1.0"}
    assert all(len(s.device_s) == 2 for s in result.samples.values())


def test_modes_reach_the_ids_and_skips(pytester, monkeypatch):
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    monkeypatch.setenv("PYTHONPATH", str(root))
    for name in ("pytest.ini", "conftest.py"):
        shutil.copy(root / name, pytester.path / name)
    shutil.copytree(root / "benchmarks", pytester.path / "benchmarks", ignore=shutil.ignore_patterns("__pycache__"))
    result = pytester.runpytest_subprocess(
        "benchmarks/test_latency.py", "-p", "no:cacheprovider", "--bench-devices", "cpu", "--bench-models", "resnet18",
        "--bench-inputs", "1x3x64x64", "--bench-scopes", "stage", "--bench-dtypes", "fp32,bf16",
        "--bench-formats", "contiguous,channels_last", "--bench-executors", "eager,cuda_graph,compile",
        "--collect-only", "-q",
    )
    result.stdout.fnmatch_lines(
        [
            "*test_latency[[]resnet18-1x3x64x64-cpu-stage-conv1[]]",
            "*test_latency[[]resnet18-1x3x64x64-cpu-channels_last-compile-stage-layer1[]]",
            "*test_latency[[]resnet18-1x3x64x64-cpu-bf16-channels_last-cuda_graph-stage-fc[]]",
            "*120 tests collected*",
        ]
    )
    result = pytester.runpytest_subprocess(
        "benchmarks/test_latency.py", "-p", "no:cacheprovider", "--bench-devices", "cpu", "--bench-models", "resnet18",
        "--bench-inputs", "1x3x64x64", "--bench-scopes", "stage", "--bench-executors", "cuda_graph,compile", "-rs",
    )
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]10[]] *cuda_graph: CUDA graphs need a CUDA device",
            "SKIPPED [[]10[]] *compile: inside a torch.compile'd model module boundaries do not exist*",
        ]
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("executor", ["cuda_graph", "compile"])
def test_cuda_executors_time_the_whole_model(executor):
    group = GroupKey("resnet18", TINY, "cuda", "bf16", "channels_last", executor)
    result = GroupRunner(plan("cuda", warmup=3, rounds=5)).run(group, [""])
    assert len(result.samples[""].device_s) == 5 and result.timer == "cuda_event"
    assert (result.compile_s is not None) == (executor == "compile")


def _mode_record(group, rounds_ms, **changes):
    """A group's record with these rounds (ms) for each module (and `changes` to its result: a runtime's facts)."""
    from dataclasses import replace

    from fixtures.runner import GroupResult, Samples, module_info
    from stubs import group_record

    samples = {m: Samples([x / 1e3 for x in r], [x / 1e3 for x in r]) for m, r in rounds_ms.items()}
    info = module_info(group.model, group.input.shape, list(rounds_ms))
    return group_record(replace(GroupResult(group, "perf_counter", 1, 7, samples, info, {}, 1.0), **changes))


def test_the_terminal_sets_each_stage_beside_itself_in_every_mode():
    """bf16 and channels_last beside fp32 eager: the whole model and each stage a row, fp32's median in ms, each other
    mode's speed-up with its 95% interval (each median's at 97.5%: the extremes of 7 rounds)."""
    from fixtures.render.modes import modes_tables

    steady = [10.0] * 7
    fast = [4.0, 5.0, 5.0, 5.0, 5.0, 5.0, 6.0]  # median 5, interval [4, 6]: 2.00× (10/6 … 10/4)
    records = [
        _mode_record(GroupKey("resnet18", TINY, "cpu", "bf16"), {"": fast, "conv1": fast, "layer1": fast}),
        _mode_record(GroupKey("resnet18", TINY, "cpu"), {"": steady, "conv1": steady, "layer1": steady}),
        _mode_record(GroupKey("resnet18", TINY, "cpu", memory_format="channels_last"),
                     {"": steady, "conv1": steady[:6], "layer1": [20.0] * 7}),
        _mode_record(GroupKey("resnet34", TINY, "cpu"), {"": steady}),  # one mode only: no table
    ]
    lines = modes_tables(records)
    assert lines[:6] == [
        "resnet18-1x3x64x64-cpu: each mode's speed-up over fp32 eager",
        "        fp32 eager ms    bf16               channels_last",
        "------  ---------------  -----------------  -----------------",
        "model   10.000           2.00× (1.67–2.50)  1.00× (1.00–1.00)",
        "conv1   10.000           2.00× (1.67–2.50)  1.00×",  # 6 rounds: no 97.5% interval of its median
        "layer1  10.000           2.00× (1.67–2.50)  0.50× (0.50–0.50)",
    ]
    assert lines[6].startswith("speed-up: the reference mode's median over the mode's (above 1: faster)")
    assert not any("resnet34" in line for line in lines)
    # Narrow: one mode a table, the module and reference columns repeated.
    narrow = modes_tables(records, width_limit=40)
    assert [line for line in narrow if line.startswith("model ")] == [
        "model   10.000           2.00× (1.67–2.50)", "model   10.000           1.00× (1.00–1.00)"]
    assert modes_tables(records[1:2] + records[3:]) == []


def test_report_sets_each_stage_and_block_beside_itself_in_every_mode(tmp_path):
    """The report's modes: per model × input × device a stage × mode table (the whole model first) and a block × mode
    table, each mode a column group (its median, its speed-up over fp32 contiguous eager with the interval from the
    saved rounds); the whole model's TFLOP/s per mode; the memory rows name the mode."""
    import copy
    import json
    from pathlib import Path

    from fixtures.report import load_run, mode_tables, render_markdown

    data = json.loads((Path(__file__).parent / "data" / "small_run.json").read_text())
    plain = [b for b in data["benchmarks"] if b["extra_info"]["model"] == "resnet18"]
    for b in plain:
        b["stats"].update(median=0.004, data=[0.004] * 7)
        b["extra_info"].update(tflops_per_s=1.5, peak_pct=None, launch_bound=None)
    fast = copy.deepcopy(plain)
    for b in fast:
        b["name"] = b["name"].replace("-cpu-", "-cpu-bf16-channels_last-")
        b["stats"].update(median=0.001, data=[0.0008, 0.001, 0.001, 0.001, 0.001, 0.001, 0.0016])
        b["extra_info"].update(dtype="bf16", memory_format="channels_last", tflops_per_s=6.0, peak_pct=0.6)
    fast[0]["stats"].pop("data")  # a run saved without its rounds: the speed-up alone
    data["benchmarks"] = fast + plain
    path = tmp_path / "modes.json"
    path.write_text(json.dumps(data))
    text = mode_tables(load_run(path))
    tables = text.split("#### ")[1:]
    assert [t.splitlines()[0] for t in tables] == [
        "Stages × modes · ResNet-18 · 1x3x32x32 · cpu", "Blocks × modes · ResNet-18 · 1x3x32x32 · cpu",
        "Whole model per mode · ResNet-18 · 1x3x32x32 · cpu"]

    def cells(table: str, module: str) -> list[str]:
        line = next(line for line in table.splitlines() if line.startswith(f"| {module} "))
        return [c.strip() for c in line.strip("|").split("|")]

    header = [c.strip() for c in tables[0].splitlines()[2].strip("|").split("|")]
    assert header == ["Module", "fp32 eager: ms", "bf16 channels_last: ms", "bf16 channels_last: speed-up"]
    assert cells(tables[0], "(whole model)") == ["(whole model)", "4.000", "1.000", "4.00×"]
    # 7 rounds a side: each median's 97.5% interval is its extremes: 4 / 1.6 … 4 / 0.8.
    assert cells(tables[0], "layer3") == ["layer3", "4.000", "1.000", "4.00× (2.50–5.00)"]
    assert cells(tables[1], "layer3.1") == ["layer3.1", "4.000", "1.000", "4.00× (2.50–5.00)"]
    assert cells(tables[2], "bf16 channels_last") == ["bf16 channels_last", "1.000", "6.00", "0.6", "-"]
    assert cells(tables[2], "fp32 eager") == ["fp32 eager", "4.000", "1.50", "-", "-"]
    for b in fast + plain:
        if b["extra_info"]["scope"] == "model":
            b["extra_info"].update(allocated_mib=44.0, params_m=11.7, tensors_m=11.7, peak_mib=70.0, activation_mib=25.0)
    path.write_text(json.dumps(data))
    memory = render_markdown(load_run(path)).split("### Memory Report")[1]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in memory.splitlines() if "ResNet-18" in line]
    assert sorted(row[3] for row in rows) == ["bf16 channels_last", "fp32 eager"]
    assert all(row[:3] == ["ResNet-18", "1x3x32x32", "cpu"] for row in rows)


def test_a_linear_layer_is_compared_with_the_matmul_peak(monkeypatch):
    """fc is a matmul: its TF32 flag is cuBLAS's (off by default), not cuDNN's (on): fp32 fc against the FP32 peak."""
    from fixtures import measurement as record_module
    from fixtures.runner import GroupResult, Samples
    from stubs import settings

    monkeypatch.setattr(record_module, "device_name", lambda device: "NVIDIA H200")
    monkeypatch.setattr(record_module, "cudnn_conv_tf32", lambda: True)
    monkeypatch.setattr(record_module, "matmul_tf32", lambda: False)
    group = GroupKey("resnet18", TINY, "cpu")
    info = {"fc": ModuleInfo((1, 512), (1, 1000), 513_000, "Linear"), "conv1": ModuleInfo((1,), (1,), 9408, "Conv2d")}
    result = GroupResult(group, "fake", 0, 1, {m: Samples([0.001], [0.001]) for m in info}, info, {}, 0.0)
    rows = {m: record_module.case_context(CaseSpec(group, "stage", m), settings(), None, result).peak_row for m in info}
    assert rows == {"fc": "*H200* fp32", "conv1": "*H200* tf32"}
    monkeypatch.setattr(record_module, "matmul_tf32", lambda: True)
    assert record_module.case_context(CaseSpec(group, "stage", "fc"), settings(), None, result).peak_row == "*H200* tf32"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_calibrated_batchnorm_keeps_activations_of_order_one(dtype):
    """Uncalibrated (eval-mode BatchNorm at mean 0, variance 1: the identity), resnet101's activations grow through the
    residual additions to ~1e4 by layer3, and fp16 overflows; calibrated, every stage stays of order one."""
    model = build_model("resnet101").to(dtype)
    largest: dict[str, float] = {}
    for stage in STAGES:
        model.get_submodule(stage).register_forward_hook(
            lambda _m, _a, out, stage=stage: largest.__setitem__(stage, out.float().abs().max().item()))
    with torch.inference_mode():
        out = model(torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)).to(dtype))
    assert torch.isfinite(out).all()
    assert max(largest.values()) < 100, largest
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(m.momentum == 0.1 for m in norms) and not model.training  # calibrated, then back as built
    assert norms[0].running_var.float().mean() != 1.0


def test_models_are_built_alike_from_their_seed():
    a, b = build_model("resnet18"), build_model("resnet18")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(build_model("resnet18", seed=1).conv1.weight, a.conv1.weight)


def test_a_runtime_module_credited_no_time_reads_fused_not_an_infinite_speed_up():
    """ONNX Runtime credits the stem's fused kernel to relu: conv1 reads 0 ms under it, which is no speed-up at all
    (inf× was shown); the legend says to read the stem as one. Without a runtime column, no such legend."""
    from dataclasses import replace

    from fixtures.render.modes import FUSED, modes_tables
    from stubs import runtime_facts

    steady, zero = [10.0] * 7, [0.0] * 7
    eager = _mode_record(GroupKey("resnet18", TINY, "cpu"), {"": steady, "conv1": steady, "relu": steady})
    group = GroupKey("resnet18", TINY, "cpu", executor="onnxruntime")
    rounds = {"": [5.0] * 7, "conv1": zero, "relu": [8.0] * 7}
    lines = modes_tables([eager, _mode_record(group, rounds, runtime=runtime_facts())])
    assert lines[3:6] == [
        "model  10.000           2.00× (2.00–2.00)",
        f"conv1  10.000           {FUSED}",
        "relu   10.000           1.25× (1.25–1.25)",
    ]
    assert lines[-1].startswith("    ") and "read the stem as one" in " ".join(lines[-2:])
    assert not any("read the stem" in line for line in modes_tables([eager, _mode_record(replace(group, executor="compile"), rounds)]))
