"""A newcomer's first hour, end to end on the tiniest matrix: a saved run is a baseline, the tables fit a terminal.

These runs are in-process (pytester.runpytest_inprocess): they touch no CUDA state, and sparing the torch import of a
subprocess keeps `make test` short. --import-mode=importlib keeps the copied benchmarks/test_memory.py apart from
tests/test_memory.py, which this process has already imported under the same module name.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from stubs import checkout_project

ROOT = Path(__file__).resolve().parent.parent
# One thread: tiny convolutions gain nothing from two, and on a busy machine OpenMP threads waiting on each other make a
# run many times slower (the fixture restores the thread count afterwards).
TINY = ("--bench-devices", "cpu", "--bench-models", "resnet18", "--bench-inputs", "1x3x64x64", "--bench-rounds", "3",
        "--bench-threads", "1")
WIDTH = 120


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """A copy of the checkout's entry points, benchmarks and budgets; `run(*args)` runs pytest in it, in-process."""
    # (On a CI machine, CI or BUILD_NUMBER set, pytest prints the short test summary's failure messages uncut, whatever
    # the width: tests/conftest.py clears both, as these runs check what a user's terminal shows. --bench-threads holds
    # for its run only: the plugin restores torch's.)
    return checkout_project(pytester, monkeypatch, "budgets")


def too_wide(result: pytest.RunResult, path: Path) -> list[str]:
    """Lines over 120 columns, but for those that print the test's temporary path."""
    return [line for line in result.outlines if len(line) > WIDTH and str(path) not in line]


def table(result: pytest.RunResult) -> list[str]:
    """pytest-benchmark's table: its header line and rows, up to the closing rule."""
    lines = result.outlines
    start = next(n for n, line in enumerate(lines) if line.startswith("Name (time in "))
    end = next(n for n in range(start + 2, len(lines)) if set(lines[n]) == {"-"})
    return [lines[start], *lines[start + 2 : end]]


def test_a_saved_run_is_a_baseline_and_the_output_fits_a_terminal(project):
    first = project("benchmarks/", *TINY, "--benchmark-save=base", "-rs")
    assert first.ret == pytest.ExitCode.OK, first.outlines[-30:]
    saved = json.loads(next(project.path.glob(".benchmarks/*/0001_base.json")).read_text())
    # per-round samples, without --benchmark-save-data
    assert {len(b["stats"]["data"]) for b in saved["benchmarks"]} == {3}
    header, *rows = table(first)
    assert header.split() == ["Name", "(time", "in", "ms)", "Median", "IQR", "Mean", "Rounds"]
    assert [row.split()[0] for row in rows][:4] == ["model", "stage-conv1", "stage-bn1", "stage-relu"]
    assert [row.split()[0] for row in rows][-1] == "block-layer4.1"
    first.stdout.fnmatch_lines([
        "group * rounds * median ms * stages/whole * blocks/layers * hooked/clean * wall s",
        "resnet18-1x3x64x64-cpu * 3 *",
        "timed with perf_counter after 1 warm-up call (cpu)",
        "SKIPPED * no --bench-budgets file: the guard's limit is a peak_mib entry there",
    ])
    assert too_wide(first, project.path) == []
    first.stdout.fnmatch_lines(["benchmark: 5.* (defaults: timer=*", "    *warmup_iterations=*"])  # wrapped at 120

    # The baseline serves the regression gate as saved; the user's own table layout wins; an opt-out saves stats only;
    # a gate's verdict longer than 120 columns (an impossible budget in a long-named file) is cut there too.
    budgets = project.path / "an-impossible-budget-with-a-name-long-enough-to-push-its-verdict-past-120-columns.toml"
    budgets.write_text('[[budget]]\ndevice = "cpu"\nscope = "model"\nmedian_ms = 1e-9\n')
    second = project(
        "benchmarks/test_latency.py", *TINY, "--bench-regression=0001", "--benchmark-autosave",
        "--bench-save-samples=off", "--benchmark-columns=min,max", "--benchmark-sort=name", "--benchmark-time-unit=us",
        f"--bench-budgets={budgets.name}",
    )
    assert second.ret == pytest.ExitCode.TESTS_FAILED, second.outlines[-30:]
    second.stdout.fnmatch_lines([
        "over budget: median_ms * ms > budget 1e-09 ms (+*%)",
        "    [[]an-impossible-budget-*.toml entry 1 (device=cpu,",
        "    scope=model)[]]",
        "regression vs *0001_base.json (median +10% *",
        "* 0 not in baseline",
        "*= 1 failed, 18 passed in *",
    ])
    header, *rows = table(second)
    assert header.split() == ["Name", "(time", "in", "us)", "Min", "Max"]
    assert [row.split()[0] for row in rows][:3] == ["block-layer1.0", "block-layer1.1", "block-layer2.0"]
    autosaved = next(p for p in project.path.glob(".benchmarks/*/0002_*.json"))
    assert all("data" not in b["stats"] for b in json.loads(autosaved.read_text())["benchmarks"])
    assert too_wide(second, project.path) == []


def test_a_missing_gpu_index_is_one_line_and_a_usage_error(project):
    count = torch.cuda.device_count()
    index = max(count, 1)  # cuda:1 here, where no GPU exists; the first index past the last GPU elsewhere
    result = project("benchmarks/", *TINY[2:], f"--bench-devices=cpu,cuda:{index}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    (error,) = [line for line in result.errlines if "error: argument" in line]
    assert error.endswith(
        f"argument --bench-devices: device 'cuda:{index}' does not exist: torch.cuda.device_count() is {count} "
        f"(visible: {'none' if count == 0 else f'cuda:0 … cuda:{count - 1}'})"
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_gpu_by_index_reaches_ids_extra_info_and_machine_info(project, pytester, monkeypatch):
    """On a GPU machine: the last visible GPU by index (in a subprocess: CUDA state is per process)."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    index = torch.cuda.device_count() - 1
    result = pytester.runpytest_subprocess(
        "benchmarks/test_latency.py", *TINY[2:], f"--bench-devices=cuda:{index}", "--bench-scopes=model",
        "-k", f"cuda{index}", "--benchmark-json=out.json", "-p", "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.OK, result.outlines[-20:]
    data = json.loads((project.path / "out.json").read_text())
    (bench,) = data["benchmarks"]
    assert bench["name"] == f"test_latency[resnet18-1x3x64x64-cuda{index}-model]"
    info = bench["extra_info"]
    assert (info["device"], info["device_index"]) == (f"cuda:{index}", index)
    assert info["device_name"] == torch.cuda.get_device_name(index) and info["timer"] == "cuda_event"
    assert (data["machine_info"]["gpu_index"], data["machine_info"]["gpu"]) == (index, info["device_name"])
