"""Many hosts saving into one storage, and many GPUs of one host: `--history` judges each host's and each device's runs
on their own, the trend charts draw one line per host and device, and machines side by side has one column group per
device (a host's CPU, each GPU: name and index, the host where two read alike)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from pytest_benchmark.stats import Stats

from fixtures.regression import RegressionPolicy
from fixtures.report import main
from fixtures.report.history import build_history
from fixtures.report.load import load_run, load_storage
from fixtures.report.model import FIRST, SLOWER, UNCHANGED, Report
from fixtures.report.tables import history_runs, machines_side_by_side

TEMPLATE = json.loads((Path(__file__).parent / "data" / "small_run.json").read_text())
RESNET18 = [b for b in TEMPLATE["benchmarks"] if b["extra_info"]["model"] == "resnet18"]
# pytest-benchmark's folder per machine id (system, Python, bits): hosts alike in those share it in a shared storage.
MACHINE_ID = "Linux-CPython-3.11-64bit"
POLICY = RegressionPolicy(0.10, 0.01)


def _stats(samples: list[float]) -> dict:
    stats = Stats()
    for seconds in samples:
        stats.update(seconds)
    return {**stats.as_dict(), "data": list(samples), "iterations": 1}


def _run(when: str, node: str, factor: dict[str, float] | None = None, cases: list[dict] | None = None,
         machine: dict | None = None) -> dict:
    """A saved run of `node`: ten rounds per case, (index + 1) ms spread over +0..9%, times `factor` per module."""
    run = copy.deepcopy({k: v for k, v in TEMPLATE.items() if k != "benchmarks"})
    run["datetime"] = when
    run["machine_info"].update({"node": node, **(machine or {})})
    run["benchmarks"] = []
    for index, bench in enumerate(copy.deepcopy(cases or RESNET18)):
        scale = (factor or {}).get(bench["extra_info"]["module"], (factor or {}).get("*", 1.0))
        bench["stats"] = _stats([(index % 19 + 1) * 1e-3 * (1 + 0.01 * k) * scale for k in range(10)])
        bench["extra_info"]["fps"] = 1 / bench["stats"]["mean"]
        run["benchmarks"].append(bench)
    return run


def _storage(folder: Path, runs: dict[str, dict]) -> Path:
    for name, run in runs.items():
        path = folder / MACHINE_ID / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(run))
    return folder


def two_hosts(folder: Path) -> Path:
    """Two hosts alike in every setting (CPU, torch, threads) but their names, saving in turn into one storage folder:
    node-b is twice as slow as node-a throughout; node-a's second run has layer3.0 30% slower."""
    return _storage(folder, {
        "0001_node-a.json": _run("2026-11-01T10:00:00+00:00", "node-a"),
        "0001_node-b.json": _run("2026-11-01T11:00:00+00:00", "node-b", {"*": 2.0}),
        "0002_node-a.json": _run("2026-11-02T10:00:00+00:00", "node-a", {"layer3.0": 1.3}),
        "0002_node-b.json": _run("2026-11-02T11:00:00+00:00", "node-b", {"*": 2.0}),
    })


def test_each_host_is_judged_against_its_own_runs(tmp_path: Path) -> None:
    """Were hosts alike taken for one machine, node-b's first run would read 2x slower than node-a's: it is a first."""
    history = build_history(load_storage(str(two_hosts(tmp_path))), POLICY)
    verdicts = {t.bench.module or "model": [p.verdict for p in t.points] for t in history.trends}
    assert verdicts["layer3.0"] == [FIRST, FIRST, SLOWER, UNCHANGED]
    assert verdicts["model"] == verdicts["conv1"] == [FIRST, FIRST, UNCHANGED, UNCHANGED]
    layer3 = next(t for t in history.trends if t.bench.module == "layer3.0")
    assert [p.previous.name if p.previous else None for p in layer3.points] == [
        None, None, "0001_node-a.json", "0001_node-b.json"]
    # Each host is a line of its own in every trend, named by its CPU and, as the CPUs read alike, its name.
    assert list(history.places.values()) == ["AMD EPYC (node-a)", "AMD EPYC (node-b)"]
    assert [len({p.place for p in t.points}) for t in history.trends] == [2] * 19
    assert [row[4] for row in history_runs(history).rows] == [
        "H1: AMD EPYC (node-a)", "H2: AMD EPYC (node-b)", "H1: AMD EPYC (node-a)", "H2: AMD EPYC (node-b)"]


def test_history_shows_the_hosts_side_by_side(tmp_path: Path) -> None:
    """The whole command on the shared storage: the hosts' newest runs side by side, each point's tooltip naming its
    host."""
    out = tmp_path / "out"
    assert main(["--history", str(two_hosts(tmp_path / "storage")), "--out", str(out)]) == 0
    markdown = (out / "report.md").read_text().split("### Machines side by side")[1]
    header = next(line for line in markdown.splitlines() if line.startswith("| Model"))
    assert [c.strip() for c in header.strip("|").split("|")][4:] == [
        f"AMD EPYC (node-{n}): {c}" for n in "ab" for c in ("ms", "std", "FPS")]
    row = next(line for line in markdown.splitlines() if line.startswith("| ResNet-18"))
    assert [c.strip() for c in row.strip("|").split("|")][4:6] == ["1.045", "0.030"]  # node-a's newest: 0002
    assert [c.strip() for c in row.strip("|").split("|")][7:9] == ["2.090", "0.061"]  # node-b's: twice that
    page = (out / "report.html").read_text()
    assert "<title>#3 0002_node-a.json · commit" in page and "UTC · AMD EPYC (node-a)\n" in page
    assert "UTC · AMD EPYC (node-b)\nmedian 2.090 ms" in page


def _gpu_cases(index: int, name: str = "NVIDIA H200", uuid: str | None = None, index_in_device: bool = True) -> list[dict]:
    """resnet18's cases on one GPU, as the suite saves them (device, its index and name; a UUID where NVML has it)."""
    cases = copy.deepcopy(RESNET18)
    for bench in cases:
        device = f"cuda:{index}" if index_in_device else "cuda"
        bench["extra_info"].update(device=device, device_index=index, device_name=name)
        if uuid:
            bench["extra_info"]["device_uuid"] = uuid
        bench["name"] = bench["name"].replace("-cpu-", f"-{device.replace(':', '')}-")
    return cases


def test_gpus_of_one_host_side_by_side(tmp_path: Path) -> None:
    """The same matrix on both GPUs of a host, one merged run, GPU 1 slower: one row per case, a column group per GPU,
    so the slow card stands out; and each GPU its own line in the history."""
    run = _run("2026-11-01T10:00:00+00:00", "gpu-box", machine={"gpu": "NVIDIA H200", "gpu_count": 2})
    fast, slow = _gpu_cases(0), _gpu_cases(1)
    for bench, twin in zip(fast, slow):
        bench["stats"], twin["stats"] = (_stats([ms * 1e-3 * (1 + 0.01 * k) for k in range(10)]) for ms in (1, 1.25))
        bench["extra_info"]["fps"], twin["extra_info"]["fps"] = 1 / bench["stats"]["mean"], 1 / twin["stats"]["mean"]
    run["benchmarks"] = fast + slow
    path = tmp_path / "merged.json"
    path.write_text(json.dumps(run))
    section = machines_side_by_side(Report((load_run(path),), (load_run(path),)))
    inference = section.tables[0]
    assert inference.title == "Inference Time · cuda"
    assert inference.column_groups == (("", 4), ("NVIDIA H200 #0", 3), ("NVIDIA H200 #1", 3))
    assert inference.rows == (("ResNet-18", "1x3x32x32", "cuda", "BasicBlock", "1.045", "0.030", "956.94",
                               "1.306", "0.038", "765.55"),)
    stages = section.tables[1]
    assert stages.title == "Per stage · ResNet-18 · 1x3x32x32 · cuda" and len(stages.rows) == 10
    assert stages.rows[0][0] == "conv1" and stages.rows[0][1] == "1.045" and stages.rows[0][4] == "1.306"
    history = build_history([load_run(path)], POLICY)
    assert list(history.places.values()) == ["NVIDIA H200 #0", "NVIDIA H200 #1"]


def test_gpus_of_two_hosts_are_named_by_host_where_they_read_alike(tmp_path: Path) -> None:
    runs = []
    for n, node in enumerate(("node-a", "node-b")):
        data = _run(f"2026-11-0{n + 1}T10:00:00+00:00", node, cases=_gpu_cases(0) + _gpu_cases(1, "NVIDIA A100"),
                    machine={"gpu": "NVIDIA H200"})
        (tmp_path / f"{node}.json").write_text(json.dumps(data))
        runs.append(load_run(tmp_path / f"{node}.json"))
    section = machines_side_by_side(Report(tuple(runs), (runs[-1],)))
    assert [label for label, _ in section.tables[0].column_groups[1:]] == [
        "NVIDIA H200 #0 (node-a)", "NVIDIA A100 #1 (node-a)", "NVIDIA H200 #0 (node-b)", "NVIDIA A100 #1 (node-b)"]


def test_workers_bound_to_one_gpu_each_are_told_apart_by_uuid(tmp_path: Path) -> None:
    """Under CUDA_VISIBLE_DEVICES each worker's GPU is cuda, index 0: the UUID keeps the two GPUs' histories apart and
    names them when nothing else does."""
    folder = _storage(tmp_path, {
        "0001_gpu0.json": _run("2026-11-01T10:00:00+00:00", "box", cases=_gpu_cases(0, uuid="GPU-1111", index_in_device=False)),
        "0002_gpu1.json": _run("2026-11-01T11:00:00+00:00", "box", {"*": 2.0},
                               cases=_gpu_cases(0, uuid="GPU-2222", index_in_device=False)),
    })
    history = build_history(load_storage(str(folder)), POLICY)
    assert {p.verdict for t in history.trends for p in t.points} == {FIRST}  # one GPU never judged by the other
    assert list(history.places.values()) == ["NVIDIA H200 #0 (box, GPU-1111)", "NVIDIA H200 #0 (box, GPU-2222)"]


def test_one_device_has_no_side_by_side(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_text(json.dumps(_run("2026-11-01T10:00:00+00:00", "solo")))
    assert machines_side_by_side(Report((load_run(path),), (load_run(path),))) is None


@pytest.mark.parametrize("names, expected", [
    ({1: ["a", "x"], 2: ["b", "x"]}, {1: "a", 2: "b"}),
    ({1: ["a", "x"], 2: ["a", "y"]}, {1: "a (x)", 2: "a (y)"}),
    ({1: ["a", "x", "p"], 2: ["a", "x", "q"], 3: ["b", "x", "r"]}, {1: "a (x, p)", 2: "a (x, q)", 3: "b"}),
    ({1: ["a", "", "p"], 2: ["a", "x", "q"]}, {1: "a", 2: "a (x)"}),
])
def test_labels_grow_only_where_they_read_alike(names: dict, expected: dict) -> None:
    from fixtures.report.model import distinct

    assert distinct(names) == expected


def test_labels_are_plain_text(tmp_path: Path) -> None:
    """Labels go into markdown headers and SVG titles: no brackets left open, no newline."""
    history = build_history(load_storage(str(two_hosts(tmp_path))), POLICY)
    assert all(re.fullmatch(r"[^\n()]+( \([^\n()]+\))?", label) for label in history.places.values())


@pytest.mark.parametrize("runs", [1, 5, 12, 13, 40, 300, 1000])
def test_a_long_history_labels_a_dozen_runs(runs: int) -> None:
    """Hundreds of runs: each trend chart labels at most 12 of them, the first and the newest always (each point's
    tooltip names its run); a short history labels every run."""
    from fixtures.report.charts import MAX_RUN_LABELS, labelled_runs

    shown = labelled_runs(runs)
    assert shown == sorted(set(shown)) and shown[0] == 0 and shown[-1] == runs - 1
    assert len(shown) == runs if runs <= MAX_RUN_LABELS else 2 <= len(shown) <= MAX_RUN_LABELS
