"""A golden run: the whole pipeline on a fake clock, compared with files recorded before the code was moved around.

One small matrix (resnet18 on a tiny input, every scope), timed by a fake clock with a fake memory probe, so every
figure is exact; a budgets file in which two entries match one case (the documented rule: the most specific entry
governs, alone, and limits are not merged); a baseline in which some cases were twice as fast. What is compared:
the JSON's benchmarks (names, groups, params, stats, every extra_info key and value), the terminal's resnet-profile
section, the gates' verdicts, the memory and structure report files, and report.md. Machine-dependent text (the CPU's
name, wall times, dates, paths) is masked.

When a change is meant to alter an output, rewrite the golden files with `GOLDEN_UPDATE=1 pytest tests/test_golden.py`
and read the diff (`git diff tests/golden/`): every line that moved is a change a user sees.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stubs import project_copy, run_suite, stages_twice_as_fast

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("GOLDEN_UPDATE") == "1"

# The seam: the run's session times with a fake clock and a fake memory probe (the rest is the real plugin).
CONFTEST = '''
pytest_plugins = ["fixtures.plugin"]

import pytest

STEPS = (0.0040, 0.0050, 0.0045, 0.0061, 0.0038)
HOST = (0.0010, 0.0012, 0.0011)


def fake_memory(group, model, x, forward, scopes):
    from fixtures.memory import ForwardMemory, Peak

    modules = {m: Peak(1000 * (n + 1), 2**20 * (n + 1)) for n, m in enumerate(m for names in scopes for m in names)}
    return ForwardMemory("fake", Peak(50 * 2**20, 20 * 2**20), modules)


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    # Imported here: the plugin must be loaded by pytest_plugins (assertion rewriting) before this file touches it.
    from fixtures.plugin import SESSION
    from fixtures.runner import GroupRunner
    from fixtures.timers import FakeClock

    session = config.stash[SESSION]
    # The reference workload on a fake clock too: every sample 10 ms, so the machine reads unchanged.
    from fixtures.reference import Reference

    ticks = iter(range(10**9))
    session.reference = Reference(lambda: 1, timer=lambda: next(ticks) * 0.01, work=lambda threads: lambda: None,
                                  every_s=float("inf"))
    # The blocks' hooks at 3 µs: 1e-3 of a fake stage, so stages and blocks keep separate passes on any machine.
    session._runner_factory = lambda plan: GroupRunner(plan, clock_factory=lambda device: FakeClock(STEPS, HOST),
                                                       forward_memory=fake_memory, hook_cost=lambda: 3e-6)
'''

# Two entries govern the whole-model case: entry 2 is more specific (it names the model), so it alone governs, and the
# case passes. Were entry 1 to govern, or the limits to merge, its p99_ms would fail it.
BUDGETS = """
[[budget]]
device = "cpu"
scope = "model"
median_ms = 1e9
p99_ms = 0.000001

[[budget]]
device = "cpu"
model = "resnet18"
scope = "model"
median_ms = 1e9

[[budget]]
device = "cpu"
scope = "stage"
module = "layer*"
median_ms = 1.0

[[budget]]
device = "cpu"
scope = "block"
mean_ms = 1e9
peak_mib = 10
"""

ARGS = ("--bench-devices", "cpu", "--bench-models", "resnet18", "--bench-inputs", "1x3x64x64", "--bench-rounds", "6",
        "--bench-threads", "1", "--bench-warmup", "1", "-p", "no:cacheprovider", "-k", "not memory_budget")


def _pytest(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return run_suite(folder, *args)


def _close(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    return a == b


def _differences(a: object, b: object, where: str = "") -> list[str]:
    """Where two JSON values differ (a path per difference), for a readable failure."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{where}.{k}: only now" for k in a.keys() - b.keys()] + [f"{where}.{k}: only golden" for k in b.keys() - a.keys()]
        return out + [d for k in a.keys() & b.keys() for d in _differences(a[k], b[k], f"{where}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for n, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{where}[{n}]")]
    return [] if _close(a, b) else [f"{where}: now {a!r}, golden {b!r}"]


def _benchmarks(path: Path) -> list[dict]:
    """What the golden JSON holds of a run: each benchmark, its CPU's name masked."""
    out = []
    for bench in json.loads(path.read_text())["benchmarks"]:
        info = dict(bench["extra_info"])
        info["device_name"] = "<cpu>"
        out.append({"name": bench["name"], "group": bench["group"], "params": bench["params"],
                    "options": bench["options"], "stats": bench["stats"], "extra_info": info})
    return out


def _masked(text: str, folder: Path) -> str:
    text = text.replace(str(folder), "<tmp>")
    text = re.sub(r"\b\d+\.\d+ ?s\b", "<s>", text)  # wall times
    text = re.sub(r"in \d+\.\d+s", "in <s>", text)
    return text


def _section(stdout: str) -> str:
    """The terminal's resnet-profile section and the short test summary, wall-time column masked."""
    lines = stdout.splitlines()
    start = next(n for n, line in enumerate(lines) if "resnet-profile" in line and line.startswith("="))
    kept = []
    for line in lines[start:]:
        # The summary table's last column is the group's wall time.
        kept.append(re.sub(r"\s\d+\.\d+$", " <wall>", line) if line.startswith("resnet18-") else line)
    return "\n".join(kept)


def _report(text: str) -> str:
    """report.md with its machine line (CPU, versions, node, date) masked."""
    return re.sub(r"^CPU: .*$", "<machine line>", text, flags=re.M)


def _check(name: str, actual: object) -> None:
    path = GOLDEN / name
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(actual if isinstance(actual, str) else json.dumps(actual, indent=1, sort_keys=True) + "\n")
        return
    expected = path.read_text()
    if isinstance(actual, str):
        assert actual == expected, f"{name} differs from the golden file (GOLDEN_UPDATE=1 rewrites it)"
    else:
        differences = _differences(actual, json.loads(expected))
        assert not differences, f"{name} differs from the golden file (GOLDEN_UPDATE=1 rewrites it): {differences[:12]}"


@pytest.fixture(scope="module")
def golden_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = project_copy(tmp_path_factory.mktemp("golden"), CONFTEST)
    first = _pytest(folder, *ARGS, "--benchmark-json=first.json")
    assert first.returncode == 0, first.stdout + first.stderr
    # The baseline: the same run with the stages twice as fast (so they regressed), the model and blocks as run.
    stages_twice_as_fast(folder / "first.json", folder / "baseline.json")
    (folder / "budgets.toml").write_text(BUDGETS)
    second = _pytest(folder, *ARGS, "--benchmark-json=out.json", "--bench-budgets=budgets.toml",
                     "--bench-regression=baseline.json")
    report = subprocess.run([sys.executable, "-m", "fixtures.report", "out.json", "--no-plots", "--out", "rep"],
                            cwd=folder, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                            timeout=600)
    assert report.returncode == 0, report.stderr
    return {"folder": folder, "first": first, "second": second}


def test_the_first_run_is_the_golden_one(golden_run):
    folder = golden_run["folder"]
    _check("first.json", _benchmarks(folder / "first.json"))
    _check("first-summary.txt", _masked(_section(golden_run["first"].stdout), folder))


def test_the_gated_run_is_the_golden_one(golden_run):
    folder, second = golden_run["folder"], golden_run["second"]
    assert second.returncode == 1, second.stdout + second.stderr  # budgets and the regression gate fail some cases
    _check("gated.json", _benchmarks(folder / "out.json"))
    _check("gated-summary.txt", _masked(_section(second.stdout), folder))


def test_the_most_specific_budget_entry_governs_alone(golden_run):
    """Entry 2 governs the whole-model case: it passes, though entry 1 (less specific) would fail it on p99_ms."""
    out = golden_run["second"].stdout
    assert "test_latency[resnet18-1x3x64x64-cpu-model] - " not in out  # no failure line for the whole model
    assert "p99_ms" not in out
    assert "test_latency[resnet18-1x3x64x64-cpu-stage-layer1] - Failed: over budget: median_ms" in out


def test_the_report_files_are_the_golden_ones(golden_run):
    folder = golden_run["folder"]
    _check("report.md", _report((folder / "rep" / "report.md").read_text()))
    _check("memory.txt", (folder / "reports" / "memory_reports" / "resnet18_1x3x64x64_cpu.txt").read_text())
    _check("structure.txt", (folder / "reports" / "model_structures" / "resnet18_1x3x64x64.txt").read_text())


def test_two_workers_give_the_golden_gated_run(golden_run):
    """The gated run on two pytest-xdist workers: the same JSON (the measuring worker aside), verdicts and reports."""
    folder = golden_run["folder"]
    spread = _pytest(folder, *ARGS, "--benchmark-json=spread.json", "--bench-budgets=budgets.toml",
                     "--bench-regression=baseline.json", "-n", "2")
    assert spread.returncode == 1, spread.stdout + spread.stderr
    benchmarks = _benchmarks(folder / "spread.json")
    assert {b["extra_info"]["worker"] for b in benchmarks} <= {"gw0", "gw1"}
    for bench in benchmarks:
        bench["extra_info"]["worker"] = None
    by_name = {b["name"]: b for b in benchmarks}
    golden = json.loads((GOLDEN / "gated.json").read_text())
    assert sorted(by_name) == sorted(b["name"] for b in golden)
    differences = [d for b in golden for d in _differences(by_name[b["name"]], b, b["name"])]
    assert not differences, differences[:12]
    failed = sorted(line for line in spread.stdout.splitlines() if line.startswith("FAILED "))
    assert failed == sorted(line for line in golden_run["second"].stdout.splitlines() if line.startswith("FAILED "))
    assert (folder / "reports" / "memory_reports" / "resnet18_1x3x64x64_cpu.txt").read_text() == (
        GOLDEN / "memory.txt").read_text()
