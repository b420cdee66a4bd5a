"""Stand-ins the suite's own tests share: a ResNet skeleton, and a conftest snippet that makes one group fail."""

from __future__ import annotations

import torch
from torch import nn


class ResNetStub(nn.Module):
    """A stand-in for a ResNet: one class, so one forward code object shared by every group, as ResNet.forward is;
    resnet18's conv1 and layer1 with its two blocks, by name and in forward order, at a fraction of the cost."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, stride=8)
        self.layer1 = nn.Sequential(nn.ReLU(), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer1(self.conv1(x)).flatten(1)


# Appended to a pytester project's conftest.py: resnet34's group raises an out-of-memory error; other groups run.
FAIL_RESNET34 = (
    "\n\nimport fixtures.runner as _runner\n"
    "_real_run = _runner.GroupRunner.run\n"
    "def _run(self, group, modules, *args):\n"
    "    if group.model == 'resnet34':\n"
    "        raise RuntimeError('CUDA out of memory. Tried to allocate 20.00 GiB')\n"
    "    return _real_run(self, group, modules, *args)\n"
    "_runner.GroupRunner.run = _run\n"
)


def settings(**changes):
    """The option table's defaults, with changes (fixtures.options.Settings.defaults)."""
    from fixtures.options import Settings

    return Settings.defaults(**changes)


def plan(device: str = "cpu", **changes):
    """The plan the default settings give a group on `device`, with changes (fixtures.runner.Plan.for_device)."""
    from dataclasses import replace

    from fixtures.runner import Plan

    return replace(Plan.for_device(settings(), device), **changes)


def context(device_name: str = "cpu", threads: int = 1, **changes):
    """A case's context with nothing measured beside its samples."""
    from fixtures.measurement import CaseContext
    from fixtures.regression import RegressionPolicy

    fields = dict(device_name=device_name, device_index=None, threads=threads, flops=0, peak_tflops=None,
                  peak_row=None, policy=RegressionPolicy(0.10, 0.01))
    return CaseContext(**{**fields, **changes})


def measurement(spec, device_s, host_s=None, timer="perf_counter", warmup=0, info=None, gpu_s=(), compile_s=None,
                **context_fields):
    """A measurement record built by hand (host seconds = device seconds unless given)."""
    from fixtures.measurement import Measurement
    from fixtures.shapes import ModuleInfo

    return Measurement(spec=spec, device_s=tuple(device_s), host_s=tuple(device_s if host_s is None else host_s),
                       gpu_s=tuple(gpu_s), timer=timer, warmup=warmup, info=info or ModuleInfo((1,), (1,), 0),
                       compile_s=compile_s, context=context(**context_fields))


def group_record(result, **context_fields):
    """A group's records built from its result with a stub context (no device queried: cuda groups work on a CPU)."""
    from fixtures.matrix import Matrix
    from fixtures.measurement import GroupRecord, Measurement

    group = result.group
    specs = Matrix([group], ("model",)).specs(group, list(result.samples))
    return GroupRecord(result, {s.module: Measurement.from_group(s, result, context(**context_fields)) for s in specs})


def run_suite(folder, *args: str, env: dict | None = None, clear: tuple[str, ...] = ()):
    """`python -m pytest benchmarks/ ARGS` in `folder` (a project copy), as a user's shell would run it: the suite on
    the path, 120 columns, no CI or pytest settings from this run's environment (nor the names in `clear`)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    run_env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "120"}
    for name in ("CI", "BUILD_NUMBER", "PYTEST_ADDOPTS", *clear):
        run_env.pop(name, None)
    run_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "pytest", "benchmarks/", *args], cwd=folder, env=run_env,
                          capture_output=True, text=True, timeout=600)


def project_copy(folder, conftest: str, files: dict[str, str] | None = None):
    """`folder` made a project of the suite: the given conftest.py, the suite's pytest.ini and benchmarks/, and any
    other files (name -> text). Returns the folder."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    (folder / "conftest.py").write_text(conftest)
    (folder / "pytest.ini").write_text((root / "pytest.ini").read_text())
    (folder / "benchmarks").mkdir()
    for test in (root / "benchmarks").glob("test_*.py"):
        (folder / "benchmarks" / test.name).write_text(test.read_text())
    for name, text in (files or {}).items():
        (folder / name).write_text(text)
    return folder


def stages_twice_as_fast(run_json, baseline_json) -> None:
    """A baseline from a saved run: its stage cases' rounds halved, so the same code reads as a regression of every
    stage (the model and blocks as run)."""
    import json

    saved = json.loads(run_json.read_text())
    for bench in saved["benchmarks"]:
        if bench["extra_info"]["scope"] == "stage":
            bench["stats"]["data"] = [x / 2 for x in bench["stats"]["data"]]
    baseline_json.write_text(json.dumps(saved))


# Saved runs that every reader of the JSON contract (fixtures/json_contract.py) refuses: the file's text (None: no file)
# and the one line it says.
BAD_RUNS = {
    "missing": (None, "no such file"),
    "malformed": ("{not json", "not valid JSON (Expecting property name enclosed in double quotes at line 1 column 2)"),
    "other-tool": ('{"results": []}', "not a pytest-benchmark JSON (no 'benchmarks' list)"),
    "other-suite": ('{"benchmarks": [{"name": "test_x", "extra_info": {}, "stats": {"mean": 1.0}}]}',
                    "no ResNet Profile benchmarks (extra_info has no model/input/device/scope)"),
    "empty-run": ('{"benchmarks": []}', "no benchmarks in this run (an empty run)"),
}


def copy_checkout(path, *folders: str):
    """The checkout's entry points (pytest.ini, conftest.py) and benchmarks/, and any other `folders` (budgets), copied
    into `path` (a pytester directory); fixtures/ is imported from the checkout. Returns `path`."""
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    for name in ("pytest.ini", "conftest.py"):
        shutil.copy(root / name, path / name)
    for folder in ("benchmarks", *folders):
        shutil.copytree(root / folder, path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return path


def checkout_project(pytester, monkeypatch, *folders: str, files: dict[str, str] | None = None):
    """The checkout copied into pytester's folder (copy_checkout, with `folders`), and `files` (name -> text, dedented)
    beside it, importable. Returns `run(*args, subprocess=False)`: pytest there, in-process (--import-mode=importlib
    keeps benchmarks/ apart from tests/) or as a subprocess (the checkout on its PYTHONPATH); `run.path` is the folder."""
    import os
    import textwrap
    from pathlib import Path

    copy_checkout(pytester.path, *folders)
    for name, text in (files or {}).items():
        (pytester.path / name).write_text(textwrap.dedent(text))
    if files:
        monkeypatch.syspath_prepend(str(pytester.path))
    root = Path(__file__).resolve().parent.parent
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))

    def run(*args: str, subprocess: bool = False):
        if subprocess:
            return pytester.runpytest_subprocess(*args, "-p", "no:cacheprovider", timeout=600)
        return pytester.runpytest_inprocess(*args, "-p", "no:cacheprovider", "--import-mode=importlib")

    run.path = pytester.path
    return run


def simulated_power(policy, noise: float, rounds: int, shift: float, cases: int = 1, runs: int = 300,
                    seed: int = 1) -> float:
    """How often the gate flags one case `shift` slower than its baseline, both of `rounds` rounds of lognormal noise,
    among `cases` cases: its p-value must be under alpha / cases (Benjamini-Hochberg's first step, the others unchanged
    and far from significant; one case alone: RegressionResult.regressed)."""
    import numpy as np

    from fixtures.regression import compare

    rng = np.random.default_rng(seed)
    flagged = 0
    for _ in range(runs):
        base = np.exp(rng.normal(0, noise, rounds))
        now = np.exp(rng.normal(0, noise, rounds)) * (1 + shift)
        result = compare("t", base, now, policy)
        flagged += result.slower and result.p_value < policy.alpha / cases
    return flagged / runs


def runtime_facts(version: str = "1.0", runtime: str = "onnxruntime"):
    """A runtime group's facts as a build would report them: fp32 on one thread, outputs equal to eager's."""
    from fixtures.runtimes.facts import OutputCheck, RuntimeFacts

    return RuntimeFacts(runtime, version, "torch.onnx.export", 1.0, 0.1, "fp32", 1, OutputCheck(0, 0, 1e-3))


def latency_name(case) -> str:
    """A case's test name, the key a baseline and the gate know it by."""
    return f"test_latency[{case.id}]"


def markdown_rows(text: str, first_cell: str) -> list[list[str]]:
    """Cells of every markdown table row whose first cell is `first_cell`."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            rows.append(cells)
    return rows
