"""report.html and --history: three saved runs (two machines), the regression marks, machines side by side, the block
heatmap's cells, older runs, bad storage — and the page opened in headless Chromium."""

from __future__ import annotations

import contextlib
import copy
import json
import re
import shutil
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_benchmark.stats import Stats

from fixtures.regression import RegressionPolicy
from fixtures.report import main
from fixtures.report.history import build_history
from fixtures.report.load import load_run, load_storage
from fixtures.report.model import FASTER, FIRST, NO_SAMPLES, SLOWER, UNCHANGED, Report
from fixtures.report.page import render as render_page
from fixtures.report.tables import machines_side_by_side

ROOT = Path(__file__).parent.parent
TEMPLATE = json.loads((Path(__file__).parent / "data" / "small_run.json").read_text())
RESNET18 = [b for b in TEMPLATE["benchmarks"] if b["extra_info"]["model"] == "resnet18"]  # model, 10 stages, 8 blocks
OTHER_MACHINE = {"cpu_brand": "Intel(R) Xeon(R) Platinum 8480+", "node": "other-box", "cpu": {"brand_raw": "Xeon"}}
ROUNDS = 10


def _stats(samples: list[float]) -> dict:
    """The stats block pytest-benchmark writes for these rounds, per-round data included (--benchmark-save-data)."""
    stats = Stats()
    for seconds in samples:
        stats.update(seconds)
    return {**stats.as_dict(), "data": list(samples), "iterations": 1}


def _base(index: int) -> list[float]:
    """Ten rounds of case `index`: (index + 1) ms, spread over +0..9%."""
    return [(index + 1) * 1e-3 * (1 + 0.01 * k) for k in range(ROUNDS)]


# How run a2 changes some cases against a1 (same machine): what the rule must and must not mark.
A2_CHANGES = {
    "layer3.0": lambda s: [x * 1.3 for x in s],  # every round 30% slower: slower
    "layer2.0": lambda s: [x * 1.05 for x in s],  # significant, but below the 10% threshold: unmarked
    "layer1.0": lambda s: [x * 0.5 for x in s[:4]] + [x * 1.35 for x in s[4:]],  # median +35%, not significant: unmarked
    "conv1": lambda s: [x * 0.7 for x in s],  # every round 30% faster: faster
}


def _run(when: str, commit: str, change: dict | None = None, machine: dict | None = None, data: bool = True) -> dict:
    run = copy.deepcopy({k: v for k, v in TEMPLATE.items() if k != "benchmarks"})
    run["datetime"] = when
    run["commit_info"]["id"] = commit * 40
    run["machine_info"].update(machine or {})
    run["benchmarks"] = []
    for index, bench in enumerate(copy.deepcopy(RESNET18)):
        samples = _base(index)
        module = bench["extra_info"]["module"]
        samples = (change or {}).get(module, lambda s: s)(samples)
        bench["stats"] = _stats(samples)
        bench["extra_info"]["fps"] = 1 / bench["stats"]["mean"]
        if not data:
            del bench["stats"]["data"]
        run["benchmarks"].append(bench)
    return run


def write_storage(folder: Path, a2_data: bool = True) -> Path:
    """Three saved runs whose file-name order (0001_a1, 0001_b, 0002_a2) is not their datetime order (a1, a2, b)."""
    runs = {
        "Linux-A/0001_a1.json": _run("2026-11-01T10:00:00+00:00", "a"),
        "Linux-A/0002_a2.json": _run("2026-11-02T10:00:00+00:00", "b", A2_CHANGES, data=a2_data),
        "Linux-B/0001_b.json": _run("2026-11-03T10:00:00+00:00", "c", {m: lambda s: [x * 2 for x in s]
                                                                         for m in ("", "layer3.0", "conv1")},
                                    machine=OTHER_MACHINE),
    }
    return _save(folder, runs)


def _save(folder: Path, runs: dict[str, dict]) -> Path:
    """Each run written as pytest-benchmark JSON under `folder` (name: its path there); returns the folder."""
    for name, run in runs.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(json.dumps(run))
    return folder


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m fixtures.report --history STORAGE --out OUT` on the three runs, once for this module."""
    root = tmp_path_factory.mktemp("history")
    storage = write_storage(root / "storage")
    assert main(["--history", str(storage), "--out", str(root / "out")]) == 0
    return root / "out"


def _verdicts(storage: Path) -> dict[str, list[str]]:
    history = build_history(load_storage(str(storage)), RegressionPolicy(0.10, 0.01))
    return {t.bench.module or "model": [p.verdict for p in t.points] for t in history.trends}


def test_history_points_and_marks(rendered: Path, tmp_path: Path) -> None:
    """Three points per case in datetime order; marked only where the rule holds, and only within one machine."""
    history = build_history(load_storage(str(write_storage(tmp_path))), RegressionPolicy(0.10, 0.01))
    assert len(history.trends) == len(RESNET18) == 19
    for trend in history.trends:
        assert [p.run.name for p in trend.points] == ["0001_a1.json", "0002_a2.json", "0001_b.json"]
    verdicts = {t.bench.module or "model": [p.verdict for p in t.points] for t in history.trends}
    assert verdicts["layer3.0"] == [FIRST, SLOWER, FIRST]  # b is twice as slow, but on another machine
    assert verdicts["conv1"] == [FIRST, FASTER, FIRST]
    assert verdicts["layer2.0"] == verdicts["layer1.0"] == verdicts["model"] == [FIRST, UNCHANGED, FIRST]
    assert sum(v == [FIRST, UNCHANGED, FIRST] for v in verdicts.values()) == 17
    noisy = next(p for t in history.trends for p in t.points if t.bench.module == "layer1.0" and p.result)
    assert noisy.result.change > 0.3 and noisy.result.p_value > 0.01  # slower medians, not significant: unmarked

    # The point's median and IQR are pytest-benchmark's; check them against the rounds themselves.
    point = history.trends[0].points[0]
    rounds = sorted(point.bench.samples_s)
    assert point.bench.median_ms == pytest.approx(statistics.median(rounds) * 1e3, rel=1e-12)
    assert (point.bench.q1_ms, point.bench.q3_ms) == pytest.approx((rounds[2] * 1e3, rounds[7] * 1e3), rel=1e-12)

    markdown = (rendered / "report.md").read_text().split("#### Every change")[1].split("####")[0]
    changes = [line for line in markdown.splitlines() if "▲ slower" in line or "▼ faster" in line]
    slower = next(p for t in history.trends for p in t.points if t.bench.module == "layer3.0" and p.result)
    assert slower.result.p_value < 0.01  # the rule's p, from fixtures.regression (whose test pins the statistics)
    assert [[c.strip() for c in line.strip("|").split("|")][6:] for line in changes] == [
        ["+30.0", f"{slower.result.p_value:.2g}", "▲ slower"], ["-30.0", "-", "▼ faster"]]
    assert [[c.strip() for c in line.strip("|").split("|")][:4] for line in changes] == [
        ["ResNet-18 · 1x3x32x32 · cpu · layer3.0", "AMD EPYC", "#1 aaaaaaa", "#2 bbbbbbb"],
        ["ResNet-18 · 1x3x32x32 · cpu · conv1", "AMD EPYC", "#1 aaaaaaa", "#2 bbbbbbb"]]

    page = (rendered / "report.html").read_text()
    captions = dict(re.findall(r'data-case="test_latency\[resnet18-1x3x32x32-cpu-(\w+(?:-[\w.]+)?)\]">'
                               r"<figcaption>(.*?)</figcaption>", page))
    assert len(captions) == 19
    assert "▲ slower at #2" in captions["block-layer3.0"] and "▼ faster at #2" in captions["stage-conv1"]
    assert sum("slower" in c or "faster" in c for c in captions.values()) == 2
    assert "<title>#2 0002_a2.json · commit bbbbbbb · 2026-11-02 10:00 UTC" in page
    assert "SLOWER vs 0001_a1.json (aaaaaaa): median +30.0%" in page


def test_runs_without_samples_show_the_trend_without_verdict(tmp_path: Path) -> None:
    verdicts = _verdicts(write_storage(tmp_path, a2_data=False))
    assert verdicts["layer3.0"] == verdicts["conv1"] == [FIRST, NO_SAMPLES, FIRST]
    history = build_history(load_storage(str(tmp_path)), RegressionPolicy(0.10, 0.01))
    report = Report(history.runs, (history.runs[-1],), history=history)
    page = render_page(report, with_charts=False)
    assert "Saved without per-round samples (--bench-save-samples off), so shown in the trends with no verdict: " \
           "0002_a2.json." in page


def test_machines_side_by_side(rendered: Path) -> None:
    """Two machines: the Inference Time and per-stage tables get one column group (ms, std, FPS / share) each."""
    markdown = (rendered / "report.md").read_text().split("### Machines side by side")[1]
    header = next(line for line in markdown.splitlines() if line.startswith("| Model"))
    assert [c.strip() for c in header.strip("|").split("|")][4:] == [
        "AMD EPYC: ms", "AMD EPYC: std", "AMD EPYC: FPS",
        "Intel(R) Xeon(R) Platinum 8480+: ms", "Intel(R) Xeon(R) Platinum 8480+: std", "Intel(R) Xeon(R) Platinum 8480+: FPS"]
    row = next(line for line in markdown.splitlines() if line.startswith("| ResNet-18"))
    # a2's whole model (1.045 ms mean: unchanged) beside b's (twice that)
    assert [c.strip() for c in row.strip("|").split("|")][4:] == ["1.045", "0.030", "956.94", "2.090", "0.061", "478.47"]
    page = (rendered / "report.html").read_text()
    machines = page.split('<section id="machines">')[1].split("</section>")[0]
    first_table = machines.split("</table>")[0]
    assert re.findall(r'<th class="group" colspan="3" scope="colgroup">(.*?)</th>', first_table) == [
        "AMD EPYC", "Intel(R) Xeon(R) Platinum 8480+"]


def test_gpu_tables_are_named_by_gpu(tmp_path: Path) -> None:
    """cuda cases of two GPU machines: a cuda table first, its column groups named by the GPUs; cpu rows by CPU brand."""
    runs = []
    for n, (gpu, cpu) in enumerate([("NVIDIA H200", "AMD EPYC 9454"), ("NVIDIA GeForce RTX 2080 Ti", "Intel Xeon")]):
        data = _run(f"2026-11-0{n + 1}T10:00:00+00:00", "ab"[n], machine={"gpu": gpu, "cpu_brand": cpu})
        cuda = copy.deepcopy([b for b in data["benchmarks"] if b["extra_info"]["scope"] == "model"])
        for bench in cuda:
            bench["extra_info"].update(device="cuda", device_name=gpu)  # the GPU's name, as the suite saves it
        data["benchmarks"] += cuda
        (tmp_path / f"{n}.json").write_text(json.dumps(data))
        runs.append(load_run(tmp_path / f"{n}.json"))
    section = machines_side_by_side(Report(tuple(runs), (runs[-1],)))
    gpu_table, cpu_table = section.tables[0], section.tables[1]
    assert gpu_table.title == "Inference Time · cuda" and cpu_table.title == "Inference Time · cpu"
    assert gpu_table.column_groups == (("", 4), ("NVIDIA H200", 3), ("NVIDIA GeForce RTX 2080 Ti", 3))
    assert cpu_table.column_groups == (("", 4), ("AMD EPYC 9454", 3), ("Intel Xeon", 3))
    assert [row[2] for row in gpu_table.rows] == ["cuda"]


def test_heatmap_cells_are_the_block_shares(tmp_path: Path) -> None:
    """Block means 1,1,2,2,3,3,4,4 ms: shares 5,5,10,10,15,15,20,20% in the per-block table and in the heatmap."""
    run = copy.deepcopy(TEMPLATE)
    run["benchmarks"] = copy.deepcopy(RESNET18)
    means = iter([1, 1, 2, 2, 3, 3, 4, 4])
    blocks = [b for b in run["benchmarks"] if b["extra_info"]["scope"] == "block"]
    for bench in blocks:
        bench["stats"]["mean"] = next(means) / 1e3
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run))
    assert main([str(path), "--out", str(tmp_path / "out"), "--no-plots"]) == 0
    expected = {b["extra_info"]["module"]: b["stats"]["mean"] * 1e3 / 20.0 * 100 for b in blocks}
    markdown = (tmp_path / "out" / "report.md").read_text().split("### Per block")[1]
    table = {cells[0]: cells[6] for line in markdown.splitlines() if line.startswith("| layer")
             for cells in [[c.strip() for c in line.strip("|").split("|")]]}
    assert table == {m: f"{share:.1f}" for m, share in expected.items()}
    assert sorted(table.values(), key=float) == ["5.0", "5.0", "10.0", "10.0", "15.0", "15.0", "20.0", "20.0"]
    page = (tmp_path / "out" / "report.html").read_text()
    cells = re.findall(r'data-block="([\w.]+)" data-share="([^"]+)">([^<]*)</td>', page)
    assert {m: text for m, _, text in cells} == table
    assert {m: float(share) for m, share, _ in cells} == expected


def test_new_kinds_order_by_module_index_share_heatmap_columns_and_name_their_blocks(tmp_path: Path) -> None:
    """A segmentation model's modules (backbone.layer1.0 …), saved shuffled: the tables follow extra_info's module_index,
    the heatmap puts backbone.layerN.i under layerN.i beside the classifier's, the Block column reads block_type."""
    run = copy.deepcopy(TEMPLATE)
    seg = copy.deepcopy(RESNET18)
    indices = {"stage": 0, "block": 0}
    for bench in seg:
        info = bench["extra_info"]
        info["model"], info["block_type"] = "deeplabv3_resnet50", "Bottleneck-ish"
        if info["scope"] != "model":
            info["module_index"] = indices[info["scope"]]
            indices[info["scope"]] += 1
            info["module"] = ("backbone." + info["module"]) if info["module"].startswith("layer") else info["module"]
        else:
            info["module_index"] = 0
        bench["name"] = bench["name"].replace("resnet18", "deeplabv3_resnet50")
    run["benchmarks"] = copy.deepcopy(RESNET18) + seg[::-1]  # the file's order is no guide
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run))
    assert main([str(path), "--out", str(tmp_path / "out"), "--no-plots"]) == 0
    text = (tmp_path / "out" / "report.md").read_text()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.split("### Per stage")[0].splitlines()
            if line.startswith("| ResNet-18") or line.startswith("| deeplabv3")]
    assert [(r[0], r[3]) for r in rows] == [("ResNet-18", "BasicBlock"), ("deeplabv3_resnet50", "Bottleneck-ish")]
    stages = text.split("#### deeplabv3_resnet50")[1].split("####")[0]
    names = [line.split("|")[1].strip() for line in stages.splitlines() if line.startswith("| ")][1:11]
    assert names == ["conv1", "bn1", "relu", "maxpool", *(f"backbone.layer{i}" for i in range(1, 5)), "avgpool", "fc"]
    page = (tmp_path / "out" / "report.html").read_text()
    heatmap = page.split('id="block-heatmap"')[1].split("</table>")[0]
    rows_html = heatmap.split("<tbody>")[1].split("</tr>")[:2]
    cells = [re.findall(r'data-block="([\w.]+)"', row) for row in rows_html]
    assert cells[0] == [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)]
    assert cells[1] == [f"backbone.layer{i}.{j}" for i in range(1, 5) for j in range(2)]  # the same eight columns
    assert heatmap.count('class="layer"') == 4


def test_older_run_renders_with_empty_columns(tmp_path: Path) -> None:
    """extra_info with only what the first version wrote: the report renders, the missing figures read '-'."""
    run = copy.deepcopy(TEMPLATE)
    for bench in run["benchmarks"]:
        bench["extra_info"] = {k: bench["extra_info"][k] for k in ("model", "input", "device", "scope", "module")}
        bench["stats"].pop("data")
    path = tmp_path / "old.json"
    path.write_text(json.dumps(run))
    assert main([str(path), "--out", str(tmp_path / "out"), "--no-plots"]) == 0
    text = (tmp_path / "out" / "report.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| ResNet-18"))
    assert [c.strip() for c in row.strip("|").split("|")] == [
        "ResNet-18", "1x3x32x32", "cpu", "BasicBlock", "204.468", "277.249", "65.789", "-"]
    conv1 = next(line for line in text.splitlines() if line.startswith("| conv1"))
    assert [c.strip() for c in conv1.strip("|").split("|")][:3] == ["conv1", "-", "-"]
    assert "### Memory Report" not in text
    assert load_run(path).benches[0].modes == ("fp32", "contiguous", "eager")  # the modes it measured


def _foreign(folder: Path) -> str:
    (folder / "Linux").mkdir(parents=True)
    (folder / "Linux" / "0001_x.json").write_text('{"results": []}')
    return f"{folder / 'Linux' / '0001_x.json'}: not a pytest-benchmark JSON (no 'benchmarks' list)"


def _other_suite(folder: Path) -> str:
    (folder / "Linux").mkdir(parents=True)
    (folder / "Linux" / "0001_x.json").write_text(
        '{"benchmarks": [{"name": "test_x", "extra_info": {}, "stats": {"mean": 1.0}}]}')
    return f"{folder / 'Linux' / '0001_x.json'}: no ResNet Profile benchmarks (extra_info has no model/input/device/scope)"


BAD_STORAGE = {
    "missing": lambda f: f"{f / 'nope'}: no such storage folder (pytest-benchmark saves runs there with --benchmark-save)",
    "empty": lambda f: f"{f}: no saved runs (save one with pytest benchmarks/ --benchmark-save=NAME)",
    "other-tool": _foreign,
    "other-suite": _other_suite,
}


@pytest.mark.parametrize("case", list(BAD_STORAGE))
def test_bad_storage_is_one_line(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "storage"
    folder.mkdir()
    message = BAD_STORAGE[case](folder)
    target = folder / "nope" if case == "missing" else folder
    assert main(["--history", str(target), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"
    assert not (tmp_path / "out").exists()


# --- a history that reads from the top ------------------------------------------------------------------------------

RESNET50_MODEL = next(b for b in TEMPLATE["benchmarks"] if b["extra_info"]["model"] == "resnet50"
                      and b["extra_info"]["scope"] == "model")


def one_host_two_configurations(folder: Path) -> Path:
    """One host's runs on 2 threads, then on 1 thread, then on 2 again (layer3.0 slower, conv1 faster, layer4.1 gone,
    resnet50 new), then an unrelated host's one-case run, the newest."""
    one_thread = _run("2026-11-02T10:00:00+00:00", "b", machine={"cpu_threads": 1})
    again = _run("2026-11-03T10:00:00+00:00", "c", A2_CHANGES)
    again["benchmarks"] = [b for b in again["benchmarks"] if b["extra_info"]["module"] != "layer4.1"]
    again["benchmarks"].append({**copy.deepcopy(RESNET50_MODEL), "stats": _stats(_base(30))})
    other = _run("2026-11-04T10:00:00+00:00", "d", machine=OTHER_MACHINE)
    other["benchmarks"] = [{**copy.deepcopy(RESNET50_MODEL), "stats": _stats(_base(30))}]
    runs = {"0001_two.json": _run("2026-11-01T10:00:00+00:00", "a"), "0002_one.json": one_thread,
            "0003_two.json": again, "0001_other.json": other}
    return _save(folder, runs)


@pytest.fixture(scope="module")
def configurations(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("configurations")
    assert main(["--history", str(one_host_two_configurations(root / "storage")), "--out", str(root / "out")]) == 0
    return root / "out"


def test_a_hosts_threads_are_configurations_and_the_summary_comes_first(configurations: Path, tmp_path: Path) -> None:
    """The history opens on each host and configuration's newest run against the one before it (newest first: the
    unrelated host's first run, the host's 2-thread run against its previous 2-thread run, its lone 1-thread run);
    a host is one host whatever its threads; trends only where a line has two points."""
    history = build_history(load_storage(str(one_host_two_configurations(tmp_path))), RegressionPolicy(0.10, 0.01))
    assert len(history.hosts) == 2
    summary = [[c.strip() for c in line.strip("|").split("|")] for line in
               (configurations / "report.md").read_text().split("#### Summary")[1].split("####")[0].splitlines()
               if line.startswith("| H") and not line.startswith("| Host")]
    assert [row[:2] + row[4:] for row in summary] == [
        ["H2: Intel(R) Xeon(R) Platinum 8480+", "torch 2.14.1+cu130, 2 threads", "-", "-", "-", "-", "1", "-"],
        ["H1: AMD EPYC", "torch 2.14.1+cu130, 2 threads", "1", "1", "16", "0", "1", "1"],
        ["H1: AMD EPYC", "torch 2.14.1+cu130, 1 thread", "-", "-", "-", "-", "19", "-"],
    ]
    assert [row[2].split(" · ")[0] for row in summary] == ["#4 0001_other.json", "#3 0003_two.json", "#2 0002_one.json"]
    assert summary[1][3].startswith("#1 0001_two.json")
    markdown = (configurations / "report.md").read_text()
    history_md = markdown.split("## Newest run")[0]
    # The summary, then the newest runs' changes, the runs, and only then the chart.
    order = [history_md.index(t) for t in ("#### Summary", "#### Slower and faster in the newest runs", "#### Runs",
                                             "![History](history.png)", "#### New and gone in the newest runs")]
    assert order == sorted(order)
    assert "| ResNet-18 · 1x3x32x32 · cpu · layer3.0 | AMD EPYC · torch 2.14.1+cu130, 2 threads |" in history_md
    assert "#### New and gone in the newest runs: 1 new, 1 gone" in history_md
    # 18 cases have two points on one line (the 2-thread runs'); layer4.1 (one on each configuration) and resnet50
    # (one on each host) have none.
    assert len(history.drawn) == 18 and len(history.trends) == 20
    assert {t.bench.module for t in history.trends if t not in history.drawn} == {"layer4.1", ""}
    assert list(history.places.values()) == [
        "AMD EPYC · torch 2.14.1+cu130, 2 threads", "AMD EPYC · torch 2.14.1+cu130, 1 thread",
        "Intel(R) Xeon(R) Platinum 8480+"]
    page = (configurations / "report.html").read_text()
    assert page.count('<figure class="trend"') == 18
    # Machines side by side: the two hosts, the first in its newest configuration (2 threads), not three machines.
    section = machines_side_by_side(Report(history.runs, (history.runs[-1],), history=history))
    assert section is not None and section.tables[0].column_groups == (
        ("", 4), ("AMD EPYC", 3), ("Intel(R) Xeon(R) Platinum 8480+", 3))


# --- the page in a real browser ----------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# What a root, offline, headless Chromium needs here (no sandbox as root; no background traffic to a closed network).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = ROOT / "reports" / "test-artifacts"


@contextlib.contextmanager
def _in_chromium(page_file: Path, tmp_path: Path) -> Iterator[tuple[Any, list[str], list[str]]]:
    """The page opened in headless Chromium: (the page, the problems seen, the requests made)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -r requirements.txt)")
    problems: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            tmp_path / "profile", executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1366, "height": 900})
        try:
            page = browser.new_page()
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_file.as_uri(), wait_until="load")
            yield page, problems, requests
        finally:
            browser.close()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium; .ci/run does)")
def test_the_history_page_opens_on_its_summary_in_headless_chromium(configurations: Path, tmp_path: Path) -> None:
    """The first screen: the summary of each host and configuration's newest run, then the newest runs' changes;
    the trend charts only of the 18 cases with two points on a line, the changed group's first."""
    page_file = configurations / "report.html"
    with _in_chromium(page_file, tmp_path) as (page, problems, requests):
        page.screenshot(path=str(tmp_path / "history_top.png"), full_page=False)
        tables = page.locator("#history table.data")
        assert "Summary" in page.locator("#history h4").first.inner_text()
        summary = tables.first.bounding_box()
        assert summary is not None and summary["y"] + summary["height"] < 900  # within the first screen
        assert tables.first.locator("tbody tr").count() == 3
        assert tables.nth(1).locator("tbody tr").count() == 2  # layer3.0 slower, conv1 faster
        assert page.locator("figure.trend svg").count() == 18
        assert page.locator("#shown").inner_text() == "18 of 18 trend charts shown"
        assert page.locator(".trend-group h4").first.inner_text().startswith("ResNet-18")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(tmp_path / "history_top.png", ARTIFACTS / "history_top.png")
    assert problems == []
    assert requests == [page_file.as_uri()]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium; .ci/run does)")
def test_page_in_headless_chromium(rendered: Path, tmp_path: Path) -> None:
    """No console error, no failed or outside request; tables, heatmap and trend charts rendered; filters narrow."""
    page_file = rendered / "report.html"
    with _in_chromium(page_file, tmp_path) as (page, problems, requests):
        page.screenshot(path=str(tmp_path / "report_page.png"), full_page=False)

        assert page.locator("#inference-time table.data tbody tr").count() == 1
        assert page.locator("#inference-time figure.chart svg").is_visible()
        assert page.locator("#per-stage figure.chart svg").count() == 1
        assert page.locator("#block-heatmap td[data-share]").count() == 8
        assert page.locator("#block-heatmap").is_visible()
        trends = page.locator("figure.trend svg")
        assert trends.count() == 19 and trends.first.is_visible()
        box = trends.first.bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 100
        assert page.locator("#machines th.group").first.is_visible()
        assert page.locator("#shown").inner_text() == "19 of 19 trend charts shown"
        page.select_option('select[data-filter="scope"]', "block")
        assert page.locator("#shown").inner_text() == "8 of 19 trend charts shown"
        assert page.locator("figure.trend:visible").count() == 8
        assert page.locator("#inference-time table.data tbody tr:visible").count() == 0
        page.select_option('select[data-filter="scope"]', "")
        assert page.locator("figure.trend:visible").count() == 19
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(tmp_path / "report_page.png", ARTIFACTS / "report_page.png")
    assert problems == []
    assert requests == [page_file.as_uri()]  # everything inline: the page itself is the only request


def test_where_the_time_goes_section_from_top_ops(tmp_path: Path) -> None:
    """A run traced with --bench-trace: the report gains one row per traced stage or block, in forward order, with the
    profiler/median ratio and the top operators, in markdown and on the page; an untraced run has no such section."""
    run = copy.deepcopy(TEMPLATE)
    run["benchmarks"] = copy.deepcopy(RESNET18)
    ops = {"conv1": [{"name": "aten::mkldnn_convolution", "calls": 1, "ms": 1.5, "share": 0.75}],
           "maxpool": [{"name": "aten::max_pool2d_with_indices", "calls": 1, "ms": 0.8, "share": 0.96}]}
    for bench in run["benchmarks"]:
        info = bench["extra_info"]
        if info["module"] in ops:
            info.update(top_ops=ops[info["module"]], p50_ms=2.0, profiler_ms=2.1)
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run))
    assert main([str(path), "--out", str(tmp_path / "out"), "--no-plots"]) == 0
    markdown = (tmp_path / "out" / "report.md").read_text()
    section = markdown.split("### Where the time goes")[1].split("\n### ")[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("| ")]
    assert [r[:5] for r in rows[1:]] == [["conv1", "stage", "2.000", "2.100", "1.050!"],  # ! beyond ±5%
                                         ["maxpool", "stage", "2.000", "2.100", "1.050!"]]
    assert "aten::max_pool2d_with_indices" in rows[2][5]
    assert "Where the time goes" in (tmp_path / "out" / "report.html").read_text()
    untraced = tmp_path / "plain.json"
    untraced.write_text(json.dumps({**run, "benchmarks": copy.deepcopy(RESNET18)}))
    assert main([str(untraced), "--out", str(tmp_path / "plain"), "--no-plots"]) == 0
    assert "Where the time goes" not in (tmp_path / "plain" / "report.md").read_text()
