"""The report's runtimes: a stored run (tests/data/small_run.json) with resnet18's whole model and stages also saved
under ONNX Runtime, read back into the Runtimes section and the per-stage table, cell by cell."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from fixtures.json_contract import parse_run
from fixtures.report import render_markdown
from fixtures.report.load import run_of
from stubs import markdown_rows as _rows

DATA = Path(__file__).parent / "data" / "small_run.json"
RUNTIME = {
    "executor": "onnxruntime",
    "runtime": "onnxruntime",
    "export_s": 3.25,
    "build_s": 0.125,
    "runtime_precision": "fp32",
    "runtime_threads": 2,
    "output_max_rel_diff": 3.2e-06,
}
WHOLE = {"credited_ratio": 0.9985, "profiler_whole_ratio": 0.9875, "profiler_unattributed_ms": 0.0125}


def with_onnxruntime() -> str:
    """The stored run plus resnet18's model and stage cases under onnxruntime, each 4x faster."""
    run = json.loads(DATA.read_text())
    added = []
    for bench in run["benchmarks"]:
        if bench["name"].startswith("test_latency[resnet18-") and bench["extra_info"]["scope"] in ("model", "stage"):
            twin = copy.deepcopy(bench)
            twin["name"] = twin["name"].replace("-cpu-", "-cpu-onnxruntime-")
            twin["group"] += "-onnxruntime"
            for key in ("mean", "median", "min", "max", "stddev", "q1", "q3"):
                twin["stats"][key] /= 4
            twin["extra_info"].update(RUNTIME, figure_kind="profiler" if bench["extra_info"]["module"] else "clock")
            if twin["extra_info"]["scope"] == "model":
                twin["extra_info"].update(WHOLE)
            added.append(twin)
    run["benchmarks"] += added
    return json.dumps(run)


def test_the_runtimes_section_sets_each_executor_beside_eager():
    text = render_markdown(run_of(parse_run(with_onnxruntime(), "run.json")))
    section = text.split("\n### Runtimes side by side")[1].split("\n### ")[0]
    assert "#### ResNet-18 · 1x3x32x32 · cpu" in section and "ResNet-50" not in section  # resnet50 has no runtime
    assert _rows(section, "eager") == [["eager", "65.789", "1.00", "-", "-", "-", "-", "-", "-", "-", "-"]]
    assert _rows(section, "onnxruntime") == [
        ["onnxruntime", "16.447", "4.00", "3.2e-06", "3.2", "0.1", "fp32", "2", "0.999", "0.988", "0.013"]
    ]


def test_a_runtimes_stage_table_ends_with_its_unattributed_row():
    text = render_markdown(run_of(parse_run(with_onnxruntime(), "run.json")))
    per_stage = text.split("\n### Per stage")[1].split("\n### ")[0]
    tables = per_stage.split("\n#### ")[1:]
    titles = [table.splitlines()[0] for table in tables]
    assert titles == ["ResNet-18 · 1x3x32x32 · cpu", "ResNet-18 · 1x3x32x32 · cpu · onnxruntime", "ResNet-50 · 1x3x32x32 · cpu"]
    # Only the runtime's table has the row: eager's stages are in situ, every node of them its own.
    assert [_rows(table, "unattributed (profiler)") for table in tables] == [
        [], [["unattributed (profiler)", "", "", "0.013", "", "", ""]], []]


def test_a_run_without_runtimes_has_no_runtimes_section():
    assert "Runtimes side by side" not in render_markdown(run_of(parse_run(DATA.read_text(), "run.json")))
