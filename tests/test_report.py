"""The report command on a stored run (tests/data/small_run.json): tables row by row, the change, plots, bad input."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.report import load_run, main, render_markdown
from stubs import BAD_RUNS
from stubs import markdown_rows as _rows

DATA = Path(__file__).parent / "data" / "small_run.json"
ROOT = Path(__file__).parent.parent


def test_latency_rows() -> None:
    text = render_markdown(load_run(DATA))
    # The median is stats.median; a run saved before the interval existed has no ±.
    assert _rows(text, "ResNet-18")[0] == ["ResNet-18", "1x3x32x32", "cpu", "BasicBlock", "204.468", "277.249", "65.789",
                                           "4.89"]
    assert _rows(text, "ResNet-50")[0] == ["ResNet-50", "1x3x32x32", "cpu", "Bottleneck", "15.812", "0.266", "15.785",
                                           "63.25"]


def test_stage_and_block_rows() -> None:
    text = render_markdown(load_run(DATA))
    conv1 = _rows(text, "conv1")
    assert conv1 == [
        ["conv1", "1x64x16x16", "9,408", "6.386", "10.516", "0.317", "3.1"],
        ["conv1", "1x64x16x16", "9,408", "0.296", "0.014", "0.288", "1.2"],
    ]
    assert [r[3] for r in _rows(text, "sum of stages")] == ["206.743", "25.223"]
    assert [r[3] for r in _rows(text, "whole model")] == ["204.468", "15.812", "204.468", "15.812"]
    assert _rows(text, "layer1.0") == [
        ["layer1.0", "1x64x8x8", "73,984", "22.982", "39.021", "0.541", "12.0"],
        ["layer1.0", "1x256x8x8", "75,008", "0.442", "0.016", "0.447", "1.9"],
    ]
    assert len(_rows(text, "layer4.2")) == 1  # resnet50 has three blocks in layer4, resnet18 two


def test_memory_rows_and_machine() -> None:
    text = render_markdown(load_run(DATA))
    memory = text.split("### Memory Report")[1]
    assert _rows(memory, "ResNet-18") == [["ResNet-18", "1x3x32x32", "cpu", "fp32 eager", "BasicBlock", "44.64", "11.690", "11.702", "44.85", "0.20"]]
    assert _rows(memory, "ResNet-50") == [["ResNet-50", "1x3x32x32", "cpu", "fp32 eager", "Bottleneck", "97.71", "25.557", "25.613", "97.96", "0.25"]]
    assert "CPU: AMD EPYC (2 torch threads); GPU: none; torch 2.14.1" in text


def test_change_per_row(tmp_path: Path) -> None:
    data = json.loads(DATA.read_text())
    for bench in data["benchmarks"]:
        bench["stats"]["mean"] *= 1.1
    slower = tmp_path / "slower.json"
    slower.write_text(json.dumps(data))
    text = render_markdown(load_run(slower), base=load_run(DATA))
    assert _rows(text, "ResNet-18")[0][-2:] == ["+20.447", "+10.0"]
    assert _rows(text, "ResNet-50")[0][-2:] == ["+1.581", "+10.0"]
    assert all(row[-1] == "+10.0" for row in _rows(text, "conv1"))
    assert _rows(text.split("### Memory Report")[1], "ResNet-18")[0][-2:] == ["+0.000", "+0.0"]


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plots_are_pngs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(DATA), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "report.md").read_text().startswith("## Results: small_run.json")
    for name in ("stage_breakdown.png", "model_comparison.png"):
        width, height = _png_size(tmp_path / name)
        assert 500 <= width <= 3000 and 100 <= height <= 2000, (name, width, height)
        assert 5_000 < (tmp_path / name).stat().st_size < 1_000_000
    assert "| ResNet-18 |" in capsys.readouterr().out


BAD = BAD_RUNS  # the saved runs every reader of the contract refuses, and the line it says


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    content, message = BAD[case]
    path = tmp_path / f"{case}.json"
    if content is not None:
        path.write_text(content)
    assert main([str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {path}: {message}\n"


def test_bad_input_from_the_command_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fixtures.report", str(tmp_path / "nope.json"), str(DATA)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 2
    assert result.stderr == f"error: {tmp_path / 'nope.json'}: no such file\n"
    assert result.stdout == ""


def test_each_median_carries_its_precision_and_marks(tmp_path: Path) -> None:
    data = json.loads(DATA.read_text())
    for bench in data["benchmarks"]:
        if bench["extra_info"]["model"] == "resnet18" and bench["extra_info"]["scope"] == "model":
            bench["extra_info"].update(ci_rel=0.0123, stop="budget", drifted=True)
        if bench["extra_info"]["model"] == "resnet50" and bench["extra_info"]["scope"] == "model":
            bench["extra_info"].update(ci_rel=0.004, stop="precise", drifted=False)
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data))
    text = render_markdown(load_run(path))
    assert _rows(text, "ResNet-18")[0][6] == "65.789 ±1.2*~"  # imprecise (the budget ended it) and drifted
    assert _rows(text, "ResNet-50")[0][6] == "15.785 ±0.4"
    assert "the time budget ended the group before its precision target" in text
