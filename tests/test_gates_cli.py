"""The gates end to end, through pytest itself: budgets, the regression gate, compare/compare-fail, and bad input.

Runs that measure are subprocesses (CUDA state is per process) on the tiniest matrix; their outcomes are forced by
budgets and baselines so far off that no machine can flip them. Runs that stop at configure time measure nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
TINY = ("--bench-models", "resnet18", "--bench-inputs", "1x3x64x64", "--bench-devices", "cpu", "-p", "no:cacheprovider")


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A project with the real plugin and the real benchmark file."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeconftest('pytest_plugins = ["fixtures.plugin"]')
    pytester.makepyfile(test_latency=(ROOT / "benchmarks" / "test_latency.py").read_text())
    return pytester


def unwrapped(result: pytest.RunResult) -> pytest.LineMatcher:
    """The output with the suite's wrapped lines (cut at 120 columns, continued with a 4-space indent) joined again."""
    lines: list[str] = []
    for line in result.outlines:
        if lines and line.startswith("    ") and lines[-1].strip():
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    return pytest.LineMatcher(lines)


def write(pytester: pytest.Pytester, name: str, text: str) -> str:
    """A file in the project; its name as the subprocess (run in the project) sees it."""
    (pytester.path / name).write_text(text)
    return name


def baseline_from(saved: dict, seconds: float) -> dict:
    """The saved run with every round replaced by `seconds`: a baseline no real measurement can be close to."""
    for bench in saved["benchmarks"]:
        stats = bench["stats"]
        stats["data"] = [seconds] * len(stats["data"])
        for key in ("min", "max", "mean", "median", "q1", "q3", "ld15iqr", "hd15iqr"):
            stats[key] = seconds
        stats["stddev"] = stats["iqr"] = 0.0
    return saved


def test_gates_and_pytest_benchmarks_compare_on_one_saved_run(suite):
    """Three runs: save (with samples); against a baseline 1000x slower; against one 1000x faster. The budgets gate,
    our regression gate and pytest-benchmark's compare/compare-fail each see both directions."""
    storage = f"--benchmark-storage=file://{suite.path / 'store'}"
    stages = (*TINY, "--bench-scopes", "model,stage", "--bench-rounds", "5", storage)
    first = suite.runpytest_subprocess(*stages, "--benchmark-save=base", "--benchmark-save-data")
    assert first.ret == pytest.ExitCode.OK
    (stored,) = (suite.path / "store").glob("*/0001_base.json")
    saved = json.loads(stored.read_text())
    assert len(saved["benchmarks"]) == 11 and all(len(b["stats"]["data"]) == 5 for b in saved["benchmarks"])

    # Slower baseline: compare-fail passes, the regression gate passes; one case over its budget fails alone, the JSON
    # is still written and pytest's closing line is printed. A peak_mib budget on a case without peak_mib is said,
    # not failed (whether this run carries peak_mib is read from its own JSON, so the test holds either way).
    stored.write_text(json.dumps(baseline_from(json.loads(json.dumps(saved)), 1e3)))
    budgets = write(suite, "b.toml", """
[[budget]]
device = "cpu"
scope = "model"
median_ms = 0.000001
peak_mib = 1e9

[[budget]]
device = "cpu"
scope = "stage"
module = "layer*"
median_ms = 1e9
""")
    result = suite.runpytest_subprocess(
        *stages, "--benchmark-compare=0001", "--benchmark-compare-fail=median:10%", "--bench-regression=0001",
        f"--bench-budgets={budgets}", "--benchmark-json=out.json",
    )
    result.stderr.fnmatch_lines(["*Comparing against benchmarks from:*0001_base.json*"])
    # One machine, one configuration: its readings (the machine check, the reference workload) differ from run to run
    # and are left out of pytest-benchmark's comparison of machine_info, which would otherwise warn every time.
    assert "machine_info is different" not in result.stdout.str() + result.stderr.str()
    unwrapped(result).fnmatch_lines([
        "resnet-profile: budgets from b.toml (2 entries)",
        "resnet-profile: regression gate vs *0001_base.json: median +10% and one-sided Mann-Whitney U, false-discovery "
        "rate 0.01 across cases (Benjamini-Hochberg)",
        "over budget: median_ms * ms > budget 1e-06 ms (+*%) [[]b.toml entry 1 (device=cpu, scope=model)[]]",
        "budgets b.toml: 4 within budget, 1 over budget, 6 ungated",
        "  ungated (6, no entry matches): resnet18-1x3x64x64-cpu-stage-conv1, *-stage-bn1, *-stage-relu, *",
        # Faster is a verdict too: each case is p = 1/252 faster, under 0.01 x 11/11 (Benjamini-Hochberg).
        "regression vs *0001_base.json (*): 0 regressed, 0 slower but not significant, 11 faster, 0 unchanged, 0 not "
        "in baseline",
        "  faster (11; significantly, beyond 10%: the baseline is stale, save a new one): "
        "test_latency[[]resnet18-1x3x64x64-cpu-model[]] (-*%, p=0.004), *",
        "FAILED test_latency.py::test_latency[[]resnet18-1x3x64x64-cpu-model[]]*",
        "*= 1 failed, 10 passed in *",
    ])
    unwrapped(result).fnmatch_lines(["model (0001_base) *"])  # compare's table (rows named without the group id)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = json.loads((suite.path / "out.json").read_text())["benchmarks"]
    assert len(out) == 11  # the failed case still saved
    model = next(b for b in out if b["extra_info"]["scope"] == "model")
    unmeasured = "  not measured, so not checked (1): resnet18-1x3x64x64-cpu-model (peak_mib)"
    if model["extra_info"].get("peak_mib") is None:
        unwrapped(result).fnmatch_lines([unmeasured])
    else:
        unwrapped(result).no_fnmatch_line(unmeasured)

    # Faster baseline: 11 cases, each p = 1/252 = 0.004: over 0.01/11 alone, under it once the group's other cases are
    # in (they were measured together), so all 11 are flagged; judged one by one without them, only the last 7 would be.
    # pytest-benchmark's compare-fail raises too, which drops pytest's closing line; our summary is still printed.
    stored.write_text(json.dumps(baseline_from(saved, 1e-7)))
    result = suite.runpytest_subprocess(
        *stages, "--benchmark-compare=0001", "--benchmark-compare-fail=median:10%", "--bench-regression=0001",
    )
    unwrapped(result).fnmatch_lines([
        # (the change as measured, and beyond what the machine explains where the reference workload says it moved)
        "regressed: median 0.000 ms (baseline) -> * ms (+*> 10%), one-sided Mann-Whitney U p=0.004 (exact) < 0.01 "
        "(Benjamini-Hochberg: alpha 0.01 x 11/11 cases) (5 vs 5 rounds) [[]baseline *0001_base.json[]]",
        "regression vs *0001_base.json (median +10% and one-sided Mann-Whitney U, Benjamini-Hochberg at 0.01 over 11 "
        "cases; p-values: 11 exact, 0 normal): 11 regressed, 0 slower but not significant, 0 faster, 0 unchanged, 0 not in "
        "baseline",
    ])
    output = pytest.LineMatcher(result.outlines + result.errlines)
    output.fnmatch_lines([
        "Performance has regressed:",
        "*test_latency[[]resnet18-1x3x64x64-cpu-model[]] (0001_base) - Field 'median' has failed PercentageRegressionCheck*",
    ])
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # an uncaught PerformanceRegression: exit status 1
    output.no_fnmatch_line("*= 11 failed*")  # compare-fail drops pytest's closing line; our gates alone keep it


MACHINE = {"cpu_brand": "Some Other CPU", "gpu": None, "torch": "0.0", "cpu_threads": 999}  # no machine's count
BENCH = [{"name": f"test_latency[resnet18-1x3x64x64-cpu-{case}]", "stats": {"median": 0.01, "data": [0.01] * 5}}
         for case in ("model", "stage-conv1", "x")]


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("--bench-budgets=missing.toml",), "ERROR: missing.toml: budgets file not found"),
        (("--bench-budgets=bad.toml",), "ERROR: bad.toml: invalid TOML: Expected '=' after a key*(at line 2, column 8)"),
        (("--bench-budgets=unknown.toml",), "ERROR: unknown.toml: budget entry 1: unknown key 'colour': use device*"),
        (("--bench-budgets=negative.toml",), "ERROR: negative.toml: budget entry 2: p99_ms must be a positive number, not -1"),
        (("--bench-budgets=text.toml",), "ERROR: text.toml: budget entry 1: median_ms must be a number, not '5 ms'"),
        (("--bench-budgets=statistic.toml",), "ERROR: statistic.toml: budget entry 1: unknown statistic 'p95_ms': *"),
        (("--bench-regression=missing.json",),
         "ERROR: --bench-regression: missing.json: not found: neither a file, a run number (0003), a full name*"),
        (("--bench-regression=corrupt.json",),
         "ERROR: --bench-regression: corrupt.json: not valid JSON (Expecting value at line 1 column 1)"),
        (("--bench-regression=nodata.json",),
         "ERROR: nodata.json: test_latency[[]x[]] has no per-round samples (stats.data): save the baseline again "
         "with --benchmark-save and --bench-save-samples on, the default (or --benchmark-json)"),
        (("--bench-regression=other.json",),
         "ERROR: other.json: baseline is from another machine, torch or thread count (cpu_brand: baseline "
         "'Some Other CPU', now *; torch: baseline '0.0', now *; cpu_threads: baseline 999, now *): its timings don't "
         "compare; pass --bench-regression-force to compare anyway"),
        (("--bench-regression-threshold=ten",), "*argument --bench-regression-threshold: threshold must be a percentage*"),
        (("--bench-budgets=typo.toml",), "ERROR: typo.toml: budget entry 2: input 'pascall' matches no input (did you "
                                         "mean 'pascal'?)*"),
        (("--bench-budgets=single.toml",), "ERROR: single.toml: [[]budget[]] is one table: write [[][[]budget[]][]]*"),
        (("--bench-strict-gate=sometimes",), "*argument --bench-strict-gate: expected on or off*"),
        (("--bench-machine-check=forever",), "*argument --bench-machine-check: machine check window must be seconds*"),
    ],
    ids=["missing-budgets", "bad-toml", "unknown-key", "negative", "non-numeric", "unknown-statistic", "missing-baseline",
         "corrupt-baseline", "baseline-without-samples", "other-machine", "bad-threshold", "typo-budgets",
         "single-table", "bad-strict", "bad-window"],
)
def test_bad_input_is_one_line_and_a_usage_error(suite, args, line):
    write(suite, "bad.toml", '[[budget]]\ndevice "cpu"\n')
    write(suite, "unknown.toml", '[[budget]]\ndevice = "cpu"\ncolour = "red"\nmedian_ms = 1\n')
    write(suite, "negative.toml", '[[budget]]\ndevice = "cpu"\nmedian_ms = 1\n[[budget]]\ndevice = "cpu"\np99_ms = -1\n')
    write(suite, "text.toml", '[[budget]]\ndevice = "cpu"\nmedian_ms = "5 ms"\n')
    write(suite, "statistic.toml", '[[budget]]\ndevice = "cpu"\np95_ms = 5\n')
    write(suite, "corrupt.json", "")
    write(suite, "typo.toml", '[[budget]]\ndevice = "cpu"\nmedian_ms = 1\n[[budget]]\ndevice = "cpu"\ninput = "pascall"\n'
                              'median_ms = 1\n')
    write(suite, "single.toml", '[budget]\ndevice = "cpu"\nmedian_ms = 1\n')
    write(suite, "nodata.json", json.dumps({"machine_info": MACHINE, "benchmarks": [{"name": "test_latency[x]", "stats": {}}]}))
    write(suite, "other.json", json.dumps({"machine_info": MACHINE, "benchmarks": BENCH}))
    # In process: these runs stop at configure time, before anything touches a device.
    result = suite.runpytest_inprocess(*TINY, "--collect-only", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([line])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_force_compares_across_machines_with_a_warning_and_the_options_reach_the_gate(suite):
    other = write(suite, "other.json", json.dumps({"machine_info": MACHINE, "benchmarks": BENCH}))
    result = suite.runpytest_inprocess(
        *TINY, "--collect-only", f"--bench-regression={other}", "--bench-regression-force",
        "--bench-regression-threshold=25%", "--bench-regression-alpha=0.05",
    )
    unwrapped(result).fnmatch_lines([
        "resnet-profile: regression gate vs other.json: median +25% and one-sided Mann-Whitney U, false-discovery rate "
        "0.05 across cases (Benjamini-Hochberg)",
        "resnet-profile: WARNING: baseline from another machine, compared anyway: cpu_brand: *",
        # Two of the collected cases are in the baseline: they share the false-discovery rate.
        "regression vs other.json (median +25% and one-sided Mann-Whitney U, Benjamini-Hochberg at 0.05 over 2 cases; "
        "p-values: 0 exact, 0 normal): 0 regressed, 0 slower but not significant, 0 faster, 0 unchanged, 0 not in "
        "baseline",
        "  WARNING: compared across machines (--bench-regression-force): cpu_brand: *",
    ])
    assert "the run fails" not in result.stdout.str()  # --collect-only measures nothing on purpose
    assert result.ret == pytest.ExitCode.OK


def test_help_lists_the_gate_options(suite):
    result = suite.runpytest_inprocess("--help")
    result.stdout.fnmatch_lines([
        "*--bench-budgets=PATH*", "*--bench-regression=BASELINE*", "*--bench-regression-threshold=PCT*",
        "*--bench-regression-alpha=ALPHA*", "*--bench-regression-force*",
    ])


def test_an_in_process_run_leaves_torchs_threads_and_cudnn_flag_as_it_found_them(suite):
    """A run started in-process (pytester, an IDE) sets torch's thread count and cuDNN flag for itself only: what runs
    after it in the process finds them as they were."""
    before = (torch.get_num_threads(), torch.backends.cudnn.benchmark)
    result = suite.runpytest_inprocess(*TINY, "--collect-only", "--bench-threads", "3", "--bench-cudnn-benchmark", "on")
    assert result.ret == pytest.ExitCode.OK
    assert (torch.get_num_threads(), torch.backends.cudnn.benchmark) == before


def test_a_gate_that_measures_no_case_fails_with_one_line(suite):
    """Every selected case skipped (CUDA graphs need CUDA): the budgets checked nothing, so the run fails."""
    budgets = write(suite, "b.toml", '[[budget]]\ndevice = "cpu"\nmedian_ms = 1e9\n')
    result = suite.runpytest_subprocess(*TINY, "--bench-scopes", "model", "--bench-executors", "cuda_graph",
                                        f"--bench-budgets={budgets}")
    unwrapped(result).fnmatch_lines([
        "resnet-profile: the run fails: the gate (budgets b.toml) measured no case: every selected case was skipped or "
        "deselected, so nothing was checked (pytest -rs names the skips)",
        "*= 1 skipped in *",
    ])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_gaps_are_named_and_fail_a_strict_run_and_baselines_go_by_name(suite, monkeypatch):
    """A budgets entry for another model and stages without a budget: listed, failing only under --bench-strict-gate
    (on, or auto under CI). The baseline is named as it was saved: --bench-regression=base. The machine check and the
    reference workload land in machine_info."""
    storage = f"--benchmark-storage=file://{suite.path / 'store'}"
    args = (*TINY, "--bench-scopes", "model,stage", "--bench-rounds", "6", "--bench-threads", "1", storage)
    budgets = write(suite, "b.toml", '[[budget]]\ndevice = "cpu"\nscope = "model"\nmedian_ms = 1e9\n'
                                     '[[budget]]\ndevice = "cpu"\nmodel = "resnet50"\nmedian_ms = 1e9\n')
    saved = suite.runpytest_subprocess(*args, "--benchmark-save=base", f"--bench-budgets={budgets}")
    unwrapped(saved).fnmatch_lines([
        "resnet-profile: machine check: * usable cores (*), 1 torch thread; other processes used * cores over 0.25 s*",
        "budgets b.toml: 1 within budget, 0 over budget, 10 ungated",
        "  entries that match no case of this run (1): entry 2 (device=cpu, model=resnet50)",
        "*= 11 passed in *",
    ])
    assert saved.ret == pytest.ExitCode.OK
    (stored,) = (suite.path / "store").glob("*/0001_base.json")
    info = json.loads(stored.read_text())["machine_info"]
    assert info["machine_check"]["threads"] == 1 and "others_cores" in info["machine_check"]
    assert len(info["reference"]["samples_s"]["resnet18-1x3x64x64-cpu"]) == 8
    strict = suite.runpytest_subprocess(*args, "--bench-regression=base", f"--bench-budgets={budgets}",
                                        "--bench-strict-gate=on")
    unwrapped(strict).fnmatch_lines([
        "resnet-profile: regression gate vs *0001_base.json: *",
        "resnet-profile: strict gate: a budgets entry that matches no case, an ungated case or a case not in the "
        "baseline fails the run",
        "  machine: *",
        "resnet-profile: the run fails (strict gate): 1 budgets entries match no case, 10 cases ungated, 0 not in the "
        "baseline (listed above); --bench-strict-gate off lists them without failing",
    ])
    assert strict.ret == pytest.ExitCode.TESTS_FAILED
    monkeypatch.setenv("CI", "true")  # auto: strict under CI
    auto = suite.runpytest_subprocess(*args, f"--bench-budgets={budgets}")
    unwrapped(auto).fnmatch_lines(["resnet-profile: the run fails (strict gate): 1 budgets entries match no case, *"])
    assert auto.ret == pytest.ExitCode.TESTS_FAILED
