"""`python -m fixtures.export`: each format against the shape its tool documents, the bounds of the median (the saved
CI where there is one, else the rounds' min-max), unit conversions, Conbench results built through benchadapt, bad
input."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from fixtures.export import main
from fixtures.export.metrics import CI_BOUNDS, ROUNDS_BOUNDS
from stubs import BAD_RUNS

ROOT = Path(__file__).parent.parent
DATA = Path(__file__).parent / "data" / "small_run.json"
TEMPLATE = json.loads(DATA.read_text())
REPO = "https://github.com/acme/resnet-profile"
MODEL18 = "test_latency[resnet18-1x3x32x32-cpu-model]"
CONV1 = "test_latency[resnet18-1x3x32x32-cpu-stage-conv1]"


def _write(tmp_path: Path, data: dict, name: str = "run.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def _export(capsys: pytest.CaptureFixture[str], *args: str) -> object:
    assert main(list(args)) == 0
    out = capsys.readouterr()
    assert out.err == ""
    return json.loads(out.out)


def _with_ci(low: float | None, high: float | None) -> dict:
    """The small run, its resnet18 whole-model case given a CI of the median (as the suite saves it) and FLOPs."""
    data = copy.deepcopy(TEMPLATE)
    bench = next(b for b in data["benchmarks"] if b["name"] == MODEL18)
    bench["extra_info"].update(ci_low_ms=low, ci_high_ms=high, ci_rel=None, flops=4_000_000_000, tflops_per_s=0.06)
    return data


def _bench(name: str, data: dict = TEMPLATE) -> dict:
    return next(b for b in data["benchmarks"] if b["name"] == name)


# --- github-action-benchmark ------------------------------------------------------------------------------------------

# github-action-benchmark's custom tools parse each entry with this zod schema (src/extract.ts): name, value, unit,
# optional range and extra; `range` is read by extractRangeInfo as "± X" or "+- X".
GITHUB_KEYS = {"name", "unit", "value", "range", "extra"}
RANGE = re.compile(r"(?P<prefix>(\+-|±)\s*)(?P<value>\d.*)")


def _check_github_shape(entries: object) -> list[dict]:
    assert isinstance(entries, list) and entries
    for entry in entries:
        assert {"name", "unit", "value"} <= entry.keys() <= GITHUB_KEYS, entry
        assert isinstance(entry["name"], str) and isinstance(entry["unit"], str)
        assert isinstance(entry["value"], (int, float)) and not isinstance(entry["value"], bool)
        assert all(isinstance(entry[k], str) for k in ("range", "extra") if k in entry)
        if "range" in entry:
            assert RANGE.match(entry["range"]), entry["range"]
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names)), "each entry is one chart: names must not repeat"
    return entries


def test_github_smaller_is_better(capsys: pytest.CaptureFixture[str]) -> None:
    """Latency of every case (the saved median, ms) and peak memory of the two whole-model cases (MiB)."""
    entries = _check_github_shape(_export(capsys, "github", str(DATA)))
    by_name = {e["name"]: e for e in entries}
    assert len(entries) == 46 + 2
    latency = by_name[f"{MODEL18} latency"]
    assert (latency["unit"], latency["value"]) == ("ms", _bench(MODEL18)["extra_info"]["p50_ms"])
    memory = by_name[f"{MODEL18} peak-memory"]
    assert (memory["unit"], memory["value"]) == ("MiB", _bench(MODEL18)["extra_info"]["peak_mib"])
    assert "range" not in memory
    assert sum(e["name"].endswith("peak-memory") for e in entries) == 2
    # No saved CI in this run: the bounds are the rounds' min and max; range is the larger distance to one of them.
    stats = _bench(MODEL18)["stats"]
    low, high, median = stats["min"] * 1e3, stats["max"] * 1e3, latency["value"]
    assert float(RANGE.match(latency["range"])["value"]) == pytest.approx(max(median - low, high - median), rel=1e-5)
    assert latency["extra"].splitlines() == [
        f"{ROUNDS_BOUNDS}: {low:.6g} to {high:.6g} ms", "rounds: 3", "device: cpu (AMD EPYC)", "host: vm"]


def test_github_bigger_is_better_holds_tflops_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    entries = _check_github_shape(_export(capsys, "github-bigger", str(_write(tmp_path, _with_ci(60.0, 70.0)))))
    assert [(e["name"], e["unit"], e["value"]) for e in entries] == [(f"{MODEL18} tflops", "TFLOP/s", 0.06)]
    # TFLOP/s = FLOPs / median: the CI's slow end (70 ms) bounds it from below, the fast end (60 ms) from above.
    assert entries[0]["extra"].splitlines()[0] == f"{CI_BOUNDS}: {4e9 / 0.070 / 1e12:.6g} to {4e9 / 0.060 / 1e12:.6g} TFLOP/s"


def test_github_bigger_without_tflops_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The action fails on an empty file; a run saved before TFLOP/s were recorded says so here instead."""
    path = _write(tmp_path, TEMPLATE)
    assert main(["github-bigger", str(path)]) == 2
    assert capsys.readouterr().err == f"error: {path}: no case has a TFLOP/s figure to export for customBiggerIsBetter\n"


# --- the bounds of the median -----------------------------------------------------------------------------------------


def test_bounds_are_the_saved_ci_where_there_is_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bmf = _export(capsys, "bencher", str(_write(tmp_path, _with_ci(60.0, 70.0))))
    assert bmf[MODEL18]["latency"]["lower_value"] == pytest.approx(60.0 * 1e6, rel=1e-12)
    assert bmf[MODEL18]["latency"]["upper_value"] == pytest.approx(70.0 * 1e6, rel=1e-12)
    entries = _export(capsys, "github", str(_write(tmp_path, _with_ci(60.0, 70.0))))
    latency = next(e for e in entries if e["name"] == f"{MODEL18} latency")
    median = _bench(MODEL18)["extra_info"]["p50_ms"]  # 65.79: the interval is not symmetric about it
    assert latency["range"] == f"± {max(median - 60.0, 70.0 - median):.6g}"
    assert latency["extra"].startswith(f"{CI_BOUNDS}: 60 to 70 ms\n")


@pytest.mark.parametrize("ci", [(None, None), (60.0, None)], ids=["null", "half"])
def test_bounds_fall_back_to_the_rounds(ci: tuple, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Too few rounds for a CI (the suite saves null): the rounds' min and max, and the metric says so."""
    bmf = _export(capsys, "bencher", str(_write(tmp_path, _with_ci(*ci))))
    stats = _bench(MODEL18)["stats"]
    assert bmf[MODEL18]["latency"]["lower_value"] == pytest.approx(stats["min"] * 1e9, rel=1e-12)
    assert bmf[MODEL18]["latency"]["upper_value"] == pytest.approx(stats["max"] * 1e9, rel=1e-12)


# --- Bencher Metric Format --------------------------------------------------------------------------------------------


def _check_bmf_shape(bmf: object) -> dict:
    """Bencher's BMF JSON schema (bencher.dev/bmf.json): benchmark -> measure -> {value (required), lower_value,
    upper_value}, all numbers; names of benchmarks up to 1024 characters, measure slugs up to 64."""
    assert isinstance(bmf, dict) and bmf
    for benchmark, measures in bmf.items():
        assert isinstance(benchmark, str) and 0 < len(benchmark) <= 1024
        assert isinstance(measures, dict) and measures
        for measure, metric in measures.items():
            assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", measure) and len(measure) <= 64
            assert "value" in metric and set(metric) <= {"value", "lower_value", "upper_value"}
            assert all(isinstance(v, float) for v in metric.values())
            if "lower_value" in metric:
                assert metric["lower_value"] <= metric["value"] <= metric["upper_value"]
    return bmf


def test_bencher_latency_is_in_nanoseconds(capsys: pytest.CaptureFixture[str]) -> None:
    """Bencher's built-in latency measure is in ns: the suite's ms × 1e6. Memory stays MiB (a measure of its own)."""
    bmf = _check_bmf_shape(_export(capsys, "bencher", str(DATA)))
    assert len(bmf) == 46
    conv1 = _bench(CONV1)
    assert bmf[CONV1] == {"latency": {
        "value": pytest.approx(conv1["extra_info"]["p50_ms"] * 1e6, rel=1e-12),
        "lower_value": pytest.approx(conv1["stats"]["min"] * 1e9, rel=1e-12),
        "upper_value": pytest.approx(conv1["stats"]["max"] * 1e9, rel=1e-12)}}
    assert bmf[CONV1]["latency"]["value"] == pytest.approx(316_661.0, abs=1.0)  # 0.316661 ms
    assert bmf[MODEL18]["peak-memory"] == {"value": _bench(MODEL18)["extra_info"]["peak_mib"]}


# --- Conbench ---------------------------------------------------------------------------------------------------------

# What Conbench's server checks on a result (conbench/entities/benchmark_result.py, units.py, hardware.py).
CONBENCH_UNITS = {"s", "ns", "B/s", "i/s"}


def test_conbench_results_through_benchadapt(capsys: pytest.CaptureFixture[str]) -> None:
    """One result per case, built with benchadapt.BenchmarkResult: the rounds (s), the case as string tags, the run's
    host, commit and date; stable ids. Rebuilding each from its own dict through benchadapt gives it back unchanged,
    and benchadapt's 'not publishable' warnings are errors here (pytest.ini)."""
    from benchadapt import BenchmarkResult
    from benchadapt._machine_info import machine_info

    results = _export(capsys, "conbench", str(DATA), "--repository", REPO)
    assert len(results) == 46
    for result in results:
        assert BenchmarkResult(**result).to_publishable_dict() == result
        assert result["stats"]["unit"] in CONBENCH_UNITS
        assert all(isinstance(k, str) and k and isinstance(v, str) and v for k, v in result["tags"].items())
        assert result["github"] == {"repository": REPO, "commit": TEMPLATE["commit_info"]["id"]}
        assert datetime.fromisoformat(result["timestamp"]).tzinfo is not None
        assert {"run_id", "batch_id", "timestamp", "tags", "context", "info", "machine_info"} <= result.keys()
    first = results[0]
    bench = _bench(MODEL18)
    assert first["stats"] == {"data": bench["stats"]["data"], "unit": "s", "iterations": 1}
    assert first["tags"] == {"name": "test_latency", "model": "resnet18", "input": "1x3x32x32", "device": "cpu",
                             "scope": "model", "dtype": "fp32", "memory_format": "contiguous", "executor": "eager"}
    assert results[1]["tags"]["module"] == "conv1"  # the whole model's empty module is left out, as Conbench drops it
    assert first["optional_benchmark_info"]["peak_mib"] == bench["extra_info"]["peak_mib"]
    assert first["optional_benchmark_info"]["median_ms_bounds_are"] == ROUNDS_BOUNDS
    assert first["timestamp"] == TEMPLATE["datetime"]
    assert len({r["run_id"] for r in results}) == 1 and len({r["batch_id"] for r in results}) == 2  # two groups
    # The run's host in the shape of benchadapt's own machine_info() (which reads this machine), numbers as text.
    assert first["machine_info"].keys() == machine_info().keys()
    assert first["machine_info"]["name"] == "vm" and first["machine_info"]["cpu_model_name"] == "AMD EPYC"
    assert all(int(first["machine_info"][k]) >= 0 for k in ("cpu_thread_count", "gpu_count", "memory_bytes"))
    # The same run exported again: the same results.
    assert _export(capsys, "conbench", str(DATA), "--repository", REPO) == results


def test_conbench_repository_from_benchadapts_variable(capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONBENCH_PROJECT_REPOSITORY", REPO + "/")
    results = _export(capsys, "conbench", str(DATA))
    assert results[0]["github"]["repository"] == REPO


def test_conbench_needs_the_rounds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = copy.deepcopy(TEMPLATE)
    del _bench(CONV1, data)["stats"]["data"]
    path = _write(tmp_path, data)
    assert main(["conbench", str(path), "--repository", REPO]) == 2
    assert capsys.readouterr().err == (
        f"error: {path}: {CONV1} was saved without per-round samples (stats.data), which Conbench results carry: "
        "save runs with the default --bench-save-samples on\n")


# --- bad input --------------------------------------------------------------------------------------------------------

BAD = BAD_RUNS  # the saved runs every reader of the contract refuses, and the line it says


@pytest.mark.parametrize("case", list(BAD))
@pytest.mark.parametrize("fmt", ["github", "bencher", "conbench"])
def test_bad_input_is_one_line(case: str, fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    content, message = BAD[case]
    path = tmp_path / f"{case}.json"
    if content is not None:
        path.write_text(content)
    assert main([fmt, str(path), "--repository", REPO]) == 2
    assert capsys.readouterr().err == f"error: {path}: {message}\n"


def test_duplicate_names_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = copy.deepcopy(TEMPLATE)
    data["benchmarks"].append(copy.deepcopy(_bench(CONV1)))
    path = _write(tmp_path, data)
    assert main(["bencher", str(path)]) == 2
    assert capsys.readouterr().err == f"error: {path}: two benchmarks named {CONV1!r}: a dashboard can't tell them apart\n"


@pytest.mark.parametrize("args, message", [
    (["xml", str(DATA)], "argument FORMAT: invalid choice: 'xml'"),
    (["conbench", str(DATA)], "conbench needs --repository https://github.com/ORG/REPO (or $CONBENCH_PROJECT_REPOSITORY)"),
    (["conbench", str(DATA), "--repository", "https://gitlab.com/a/b"],
     "argument --repository: 'https://gitlab.com/a/b': Conbench needs https://github.com/ORG/REPO"),
])
def test_usage_errors_exit_2(args: list[str], message: str, capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONBENCH_PROJECT_REPOSITORY", raising=False)
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err.splitlines()[-1]


def test_the_command_writes_a_file(tmp_path: Path) -> None:
    """The real command line: -o writes the file and says so on stderr; stdout stays empty."""
    out = tmp_path / "deep" / "bmf.json"
    done = subprocess.run([sys.executable, "-m", "fixtures.export", "bencher", str(DATA), "-o", str(out)],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", f"wrote {out}: 46 benchmarks\n")
    assert len(json.loads(out.read_text())) == 46
