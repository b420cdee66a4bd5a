"""The structure and memory tests run through pytest in a subprocess: options, -k selection, files, the JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A copy of the benchmarks with the plugin loaded, as a user's checkout would run them."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeconftest('pytest_plugins = ["fixtures.plugin"]')
    pytester.makeini("[pytest]\naddopts = --strict-markers\nfilterwarnings =\n    error\n")
    for name in ("test_latency.py", "test_structure.py", "test_memory.py"):
        (pytester.path / name).write_text((ROOT / "benchmarks" / name).read_text())
    return pytester


def test_help_lists_the_report_options(suite: pytest.Pytester) -> None:
    # In-process: it stops at configure (no CUDA state, no second torch import); importlib mode keeps the copied
    # test_memory.py apart from tests/test_memory.py, which this process has imported under the same name.
    result = suite.runpytest_inprocess("--help", "--import-mode=importlib")
    result.stdout.fnmatch_lines(["*--bench-report-dir=DIR*", "*--bench-structure-depth=DEPTH*"])


def test_bad_depth_is_one_line(suite: pytest.Pytester) -> None:
    result = suite.runpytest_inprocess("--bench-structure-depth", "deep", "--import-mode=importlib")
    result.stderr.fnmatch_lines(["*unknown structure depth 'deep': choose from stage, block, layer*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_reports_and_json(suite: pytest.Pytester) -> None:
    args = ["--bench-models", "resnet18", "--bench-inputs", "1x3x32x32", "--bench-devices", "cpu", "--bench-rounds", "2",
            "--bench-report-dir", "out", "--bench-structure-depth", "block", "-p", "no:cacheprovider"]
    result = suite.runpytest_subprocess(*args, "-k", "memory or structure", "-v", "-rs")
    result.stdout.fnmatch_lines([
        "*test_memory.py::test_memory[[]resnet18-1x3x32x32-cpu[]] PASSED*",
        "*test_structure.py::test_structure[[]resnet18-1x3x32x32[]] PASSED*",
        "SKIPPED*no --bench-budgets file: the guard's limit is a peak_mib entry there*",
    ])
    assert result.ret == 0
    structure = (suite.path / "out/model_structures/resnet18_1x3x32x32.txt").read_text()
    assert "depth: block" in structure and "layer4.1" in structure and "layer4.1.conv1" not in structure
    memory = (suite.path / "out/memory_reports/resnet18_1x3x32x32_cpu.txt").read_text()
    assert "Peak forward" in memory and "not measured" not in memory

    result = suite.runpytest_subprocess(*args, "--bench-scopes", "model", "-k", "latency", "--benchmark-json", "run.json")
    assert result.ret == 0
    (bench,) = json.loads((suite.path / "run.json").read_text())["benchmarks"]
    info = bench["extra_info"]
    assert info["tensors_m"] == pytest.approx(11.702204)
    assert info["allocated_mib"] == pytest.approx(11702204 * 4 / 2**20, abs=1e-4)  # num_batches_tracked: 20 × 8 B
    assert info["peak_mib"] > info["allocated_mib"] and info["activation_mib"] > 0
    assert info["memory_tool"] == "memray"


def test_budget_guards_the_cpu_forward(suite: pytest.Pytester) -> None:
    """The guard's limit is peak_mib of the budgets entry governing the group's whole-model case (most specific wins):
    below what one forward needs it fails through pytest-memray's limit_memory; a generous one passes; an entry
    without peak_mib, or none at all, skips saying so."""
    (suite.path / "b.toml").write_text(
        """
[[budget]]
device = "cpu"
peak_mib = 1024.0

[[budget]]
device = "cpu"
model = "resnet18"
input = "1x3x32x32"
scope = "model"
peak_mib = 1.0

[[budget]]
device = "cpu"
model = "resnet18"
input = "1x3x48x48"
scope = "model"
median_ms = 1e9
"""
    )
    result = suite.runpytest_subprocess(
        "--bench-models", "resnet18", "--bench-inputs", "1x3x32x32,1x3x40x40,1x3x48x48", "--bench-devices", "cpu",
        "--bench-budgets", "b.toml", "-k", "memory_budget", "-p", "no:cacheprovider", "-rs",
    )
    result.stdout.fnmatch_lines([
        "*_ test_memory_budget[[]resnet18-1x3x32x32-cpu[]] _*",
        "*Test was limited to 1.0MiB but allocated*",
        "SKIPPED * b.toml entry 3 governs resnet18-1x3x48x48-cpu-model and has no peak_mib",
        "*1 failed, 1 passed, 1 skipped*",
    ])
