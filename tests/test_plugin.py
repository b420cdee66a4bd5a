"""The plugin end to end, in subprocesses (CUDA state is per process): options, errors, JSON, compare, faults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from stubs import FAIL_RESNET34, copy_checkout

ROOT = Path(__file__).resolve().parent.parent
TINY = ("--bench-devices", "cpu", "--bench-models", "resnet18", "--bench-inputs", "1x3x64x64", "--bench-rounds", "3")
CONTRACT = {
    "model", "input", "input_shape", "device", "device_name", "scope", "module", "module_input_shape",
    "module_output_shape", "params", "timer", "warmup", "p50_ms", "p90_ms", "p99_ms", "fps", "dtype", "threads",
}


@pytest.fixture
def suite(pytester, monkeypatch):
    """A copy of the suite's entry points in a temporary directory, importing fixtures/ from the checkout."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    copy_checkout(pytester.path)

    def run(*args, path="benchmarks/test_latency.py"):
        return pytester.runpytest_subprocess(path, "-p", "no:cacheprovider", *args)

    def inprocess(*args, path="benchmarks/test_latency.py"):
        # For runs that stop at configure or collection: no CUDA state is touched, and no torch import is paid again.
        # importlib mode keeps benchmarks/test_memory.py apart from the tests/test_memory.py this process imported.
        return pytester.runpytest_inprocess(path, "-p", "no:cacheprovider", "--import-mode=importlib", *args)

    run.path = pytester.path
    run.inprocess = inprocess
    return run


def test_help_lists_the_options_with_defaults(suite):
    result = suite.inprocess("--help")
    result.stdout.fnmatch_lines(["ResNet Profile (timing torchvision ResNets):", "*--bench-models=NAMES*"])
    # Each option's block: its line (two spaces, the flag) and the wrapped help below it, up to the next option.
    blocks: dict[str, str] = {}
    flag = None
    for line in result.stdout.lines:
        if line.startswith("  -"):
            flag = line.split()[0]
            blocks[flag] = " ".join(line.split()[1:])
        elif flag is not None and line.startswith("   "):
            blocks[flag] += " " + line.strip()
        else:
            flag = None
    for flag, default in [
        ("--bench-models=NAMES", "'resnet18,resnet34,resnet50,resnet101'"),
        ("--bench-inputs=SIZES", "'cityscapes,pascal'"),
        ("--bench-devices=DEVICES", "'auto'"),
        ("--bench-scopes=SCOPES", "'model,stage,block'"),
        ("--bench-warmup=N", "'auto'"),
        ("--bench-rounds=N", "'auto'"),
        ("--bench-precision=PCT", "'auto'"),
        ("--bench-time-budget=SECONDS", "'auto'"),
        ("--bench-threads=N", "'auto'"),
        ("--bench-fold-bn=on|off", "'off'"),
    ]:
        assert blocks[flag].endswith(f"Default: {default}"), (flag, blocks[flag])
    text = " ".join(result.stdout.str().split())  # argparse wraps help lines
    models = text.split("--bench-models=NAMES", 1)[1].split(" --bench-inputs", 1)[0]
    for spelling in ("NAME+os16", "NAME+os8", "NAME+backbone", "resnet50+os8+backbone", "deeplabv3_resnet50",
                     "fcn_resnet101 (+aux", "timm.NAME", "package.module:function", "package.module.function",
                     "docs/models.md"):
        assert spelling in models, spelling


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("--bench-models", "resnet19"), "*argument --bench-models: unknown model 'resnet19': choose from resnet18, *"),
        (("--bench-inputs", "3x224x224"), "*argument --bench-inputs: unknown input '3x224x224': use one of *"),
        (("--bench-inputs", "1x3x0x64"), "*input '1x3x0x64' has a zero dimension*"),
        (("--bench-devices", "gpu"), "*argument --bench-devices: unknown device 'gpu': choose from cpu, cuda, cuda:N *"),
        (("--bench-scopes", "layers"), "*unknown scope 'layers': choose from model, stage, block"),
        (("--bench-warmup", "-3"), "*warm-up calls must be an integer >= 0 or 'auto', not '-3'"),
    ],
)
def test_bad_input_is_one_line_and_a_usage_error(suite, args, line):
    result = suite.inprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([line])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_bad_ini_value_names_its_key(suite):
    ini = suite.path / "pytest.ini"
    ini.write_text(ini.read_text() + "bench_models = resnet18,nope\n")
    result = suite.inprocess("--collect-only", "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: ini option bench_models: unknown model 'nope': choose from *"])


def test_default_cpu_matrix_collects_every_case(suite):
    result = suite.inprocess("--bench-devices", "cpu", "--collect-only", "-q", path="benchmarks")
    lines = result.stdout.lines
    assert sum("-model]" in line for line in lines) == 8
    assert sum("-stage-" in line for line in lines) == 80
    assert sum("-block-" in line for line in lines) == 146
    assert "benchmarks/test_latency.py::test_latency[resnet101-cityscapes-cpu-block-layer3.22]" in lines


def test_tiny_run_writes_the_json_contract_and_the_stage_sum(suite):
    result = suite(*TINY, "--benchmark-json=out.json")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "*[[]resnet-profile[]] measuring resnet18-1x3x64x64-cpu: 19 cases, warm-up 1*",
            "*resnet-profile*",
            "group * rounds * stages/whole*",
            "resnet18-1x3x64x64-cpu * 3 *",
            "timed with perf_counter after 1 warm-up call (cpu)",
            "1 groups measured in *",
            "*19 passed*",
        ]
    )
    data = json.loads((suite.path / "out.json").read_text())
    benches = data["benchmarks"]
    scopes = [b["extra_info"]["scope"] for b in benches]
    assert (scopes.count("model"), scopes.count("stage"), scopes.count("block")) == (1, 10, 8)
    for bench in benches:
        assert CONTRACT <= set(bench["extra_info"])
        assert bench["group"] == "resnet18-1x3x64x64-cpu"
        assert bench["stats"]["rounds"] == 3
        assert bench["params"] == {"bench_case": bench["param"]}
    model = next(b for b in benches if b["extra_info"]["scope"] == "model")
    assert model["extra_info"]["module"] == "" and model["extra_info"]["params"] == 11_689_512
    assert model["extra_info"]["p50_ms"] == pytest.approx(model["stats"]["median"] * 1e3)
    for key in ("torch", "torchvision", "cuda", "cudnn", "gpu", "gpu_driver", "cudnn_allow_tf32", "matmul_allow_tf32", "cpu_threads"):
        assert key in data["machine_info"]


def test_k_selection_times_only_the_selected_modules(suite):
    result = suite(*TINY, "-k", "layer3", "--benchmark-json=out.json")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*measuring resnet18-1x3x64x64-cpu: 3 cases*", "*3 passed, 16 deselected*"])
    names = sorted(b["extra_info"]["module"] for b in json.loads((suite.path / "out.json").read_text())["benchmarks"])
    assert names == ["layer3", "layer3.0", "layer3.1"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_a_gpu_asked_for_where_there_is_none_is_one_line_and_exit_4(suite):
    """A GPU job whose GPU vanished must not pass green with its cuda cases skipped."""
    for devices in ("cuda", "cpu,cuda", "cuda:0"):
        result = suite(*TINY[2:], "--bench-devices", devices, "--bench-scopes", "model")
        assert result.ret == pytest.ExitCode.USAGE_ERROR, devices
        assert "Traceback" not in result.stderr.str() and "passed" not in result.stdout.str()
        result.stderr.fnmatch_lines(["*--bench-devices*device*no GPU is visible*" if devices != "cuda:0"
                                     else "*device 'cuda:0' does not exist*"])


def test_a_failing_group_fails_its_cases_only_and_the_json_is_written(suite):
    (suite.path / "conftest.py").write_text(
        (suite.path / "conftest.py").read_text()
        + FAIL_RESNET34
    )
    result = suite(*TINY[:2], "--bench-models", "resnet34,resnet18", *TINY[4:], "--bench-scopes", "model,stage",
                   "--benchmark-json=out.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*resnet34-1x3x64x64-cpu could not be measured: RuntimeError: CUDA out of memory*", "*11 failed, 11 passed*"]
    )
    # Each failed case says its line and nothing else: no pytest-benchmark warning that its fixture went unused.
    assert "not used at all" not in result.stdout.str() and "warnings summary" not in result.stdout.str()
    benches = json.loads((suite.path / "out.json").read_text())["benchmarks"]
    assert {b["group"] for b in benches} == {"resnet18-1x3x64x64-cpu"} and len(benches) == 11


