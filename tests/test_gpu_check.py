"""The GPU check's tables and refusals (scripts/gpu_check.py) on made-up runs; its shell side where CUDA is absent."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)


def bench(dtype="fp32", fmt="contiguous", executor="eager", ms=10.0, cudnn=False, fold=False, mode=None,
          scope="model", module="", inp="pascal", timer="cuda_event"):
    modes = [m for m, d in ((dtype, "fp32"), (fmt, "contiguous"), (executor, "eager")) if m != d]
    group = "-".join(["resnet50", inp, "cuda", *modes])
    return {
        "group": group,
        "name": f"test_latency[{group}-{scope}{'-' + module if module else ''}]",
        "stats": {"median": ms / 1e3, "mean": ms / 1e3, "stddev": 0.0, "rounds": 5},
        "extra_info": {"model": "resnet50", "input": inp, "device": "cuda", "scope": scope, "module": module, "dtype": dtype,
                       "memory_format": fmt, "executor": executor, "fold_bn": fold, "cudnn_benchmark": cudnn,
                       "compile_mode": mode, "timer": timer, "gpu_ms": ms / 2},
    }


def write(path: Path, *benches, machine=None) -> Path:
    path.write_text(json.dumps({"machine_info": machine or {"gpu": "NVIDIA H200"}, "benchmarks": list(benches)}))
    return path


LADDER = [  # (settings, median ms): each step adds one factor to the one before it
    (dict(), 10.0),
    (dict(dtype="bf16"), 8.0),
    (dict(dtype="bf16", fmt="channels_last"), 5.0),
    (dict(dtype="bf16", fmt="channels_last", executor="cuda_graph"), 2.5),
    (dict(dtype="bf16", fmt="channels_last", cudnn=True), 4.0),
    (dict(dtype="bf16", fmt="channels_last", cudnn=True, fold=True), 3.2),
    (dict(dtype="bf16", fmt="channels_last", executor="cuda_graph", cudnn=True, fold=True), 2.0),
    (dict(dtype="bf16", fmt="channels_last", executor="compile", mode="default", cudnn=True, fold=True), 2.0),
    (dict(dtype="bf16", fmt="channels_last", executor="compile", mode="reduce-overhead", cudnn=True, fold=True), 1.0),
]


def test_each_factor_is_credited_on_its_own(tmp_path):
    path = write(tmp_path / "modes.json", *(bench(ms=ms, **s) for s, ms in LADDER))
    benches, _ = gpu_check.load([path])
    lines = gpu_check.ladder_table(benches).splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {tuple(c.strip() for c in line.strip("|").split("|"))[:7]: dict(zip(header, (
        c.strip() for c in line.strip("|").split("|")))) for line in lines[2:]}

    def row(dtype, fmt, executor, cudnn, fold, ms):
        return rows[("pascal", dtype, fmt, executor, cudnn, fold, f"{ms:.3f}")]

    factors = ["vs fp32 eager", "× dtype", "× channels_last", "× cuDNN bench", "× BN fold", "× compile", "× CUDA graphs"]
    credit = lambda r: [r[f] for f in factors]  # noqa: E731
    assert credit(row("fp32", "contiguous", "eager", "no", "no", 10)) == ["1.00", "-", "-", "-", "-", "-", "-"]
    assert credit(row("bf16", "contiguous", "eager", "no", "no", 8)) == ["1.25", "1.25", "-", "-", "-", "-", "-"]
    # fp32 channels_last was not measured: the dtype column has nothing to compare with.
    assert credit(row("bf16", "channels_last", "eager", "no", "no", 5)) == ["2.00", "-", "1.60", "-", "-", "-", "-"]
    assert credit(row("bf16", "channels_last", "cuda_graph", "no", "no", 2.5))[-1] == "2.00"
    assert credit(row("bf16", "channels_last", "eager", "yes", "no", 4))[3] == "1.25"
    assert credit(row("bf16", "channels_last", "eager", "yes", "yes", 3.2))[4] == "1.25"
    assert credit(row("bf16", "channels_last", "cuda_graph", "yes", "yes", 2))[4:] == ["-", "-", "1.60"]
    # compile is credited against eager with the same dtype, format, cuDNN and BN settings — not against plain fp32 —
    # and reduce-overhead's graphs against compile default; compile with graphs against eager graphs.
    assert credit(row("bf16", "channels_last", "compile (default)", "yes", "yes", 2)) == [
        "5.00", "-", "-", "-", "-", "1.60", "-"]
    assert credit(row("bf16", "channels_last", "compile (reduce-overhead)", "yes", "yes", 1)) == [
        "10.00", "-", "-", "-", "-", "2.00", "2.00"]


def test_a_figure_measured_in_two_runs_is_refused(tmp_path):
    first = write(tmp_path / "fp32.json", bench(ms=10.0), bench(ms=1.0, scope="stage", module="conv1"))
    second = write(tmp_path / "modes.json", bench(ms=11.0), bench(dtype="bf16", ms=8.0))
    with pytest.raises(gpu_check.CheckError, match=r"test_latency\[resnet50-pascal-cuda-model\] .* was measured by "
                       r"both fp32.json and modes.json: each figure must come from one run"):
        gpu_check.load([first, second])
    # The same case under another session setting (cuDNN benchmark, from an older run's machine_info) is another figure.
    old = bench(ms=9.0)
    del old["extra_info"]["cudnn_benchmark"]
    third = write(tmp_path / "cudnn.json", old, machine={"cudnn_benchmark": True})
    assert len(gpu_check.load([first, third])[0]) == 3


def test_no_case_of_the_device_is_one_line_and_a_failure(tmp_path, capsys):
    cpu_only = write(tmp_path / "fp32.json", bench(timer="perf_counter"))
    status = gpu_check.main(["tables", "--device", "cuda", "--logs", "out/*.log", str(cpu_only),
                             str(tmp_path / "modes.json")])  # a run that wrote nothing: no file
    assert status == 1
    assert capsys.readouterr().err == (
        "gpu_check: no cuda_event case was recorded: every cuda case was skipped or failed (see out/*.log)\n"
    )
    assert gpu_check.main(["tables", "--device", "cuda", str(tmp_path / "none.json")]) == 1


def test_the_compile_part_needs_a_compiler_and_python_headers(tmp_path):
    assert "needs a C compiler at run time and none of cc, gcc, clang is on PATH" in gpu_check.compiler_problem(
        "cuda", which=lambda name: None)
    found = lambda name: "/usr/bin/" + name  # noqa: E731
    assert "Python.h is missing" in gpu_check.compiler_problem("cuda", which=found, include=str(tmp_path))
    (tmp_path / "Python.h").write_text("")
    assert gpu_check.compiler_problem("cuda", which=found, include=str(tmp_path)) is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_the_check_refuses_in_one_line_where_cuda_is_absent(capsys):
    # scripts/gpu_check.sh runs this before anything else and stops on its exit status.
    assert gpu_check.main(["preflight", "--device", "cuda"]) == 1
    assert capsys.readouterr().err == (
        f"gpu_check: CUDA is not usable here: torch.cuda.is_available() is False (torch {torch.__version__} built for "
        f"CUDA {torch.version.cuda}; is the driver too old for it, or no GPU visible?)\n"
    )
    assert gpu_check.main(["preflight", "--device", "cpu"]) == 0
