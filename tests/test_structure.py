"""Model structures: totals against torchvision and FlopCounterMode, forward order, one row per module, depths."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from fixtures.render.files import structure_text
from fixtures.stages_and_blocks import STAGES, block_names
from fixtures.structure_report import model_structure

SMALL = (1, 3, 64, 64)


def _flop_total(model_name: str, shape: tuple[int, ...]) -> int:
    """FlopCounterMode's whole-model total, counted here independently of fixtures.flops."""
    with torch.device("meta"):
        model = torchvision.models.get_model(model_name, weights=None).eval()
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(torch.empty(shape, device="meta"))
    return counter.get_total_flops()


@pytest.mark.parametrize(("model", "shape"), [("resnet18", (1, 3, 1024, 2048)), ("resnet50", (1, 3, 500, 334))])
def test_totals_equal_torchvision_and_flop_counter(model: str, shape: tuple[int, ...]) -> None:
    s = model_structure(model, "x", shape, "layer")
    with torch.device("meta"):
        reference = torchvision.models.get_model(model, weights=None)
    assert s.total_params == sum(p.numel() for p in reference.parameters())
    assert s.total_flops == _flop_total(model, shape)
    leaves = [row for row in s.rows if row.leaf]
    assert sum(row.params for row in leaves) == s.total_params
    assert sum(row.flops for row in leaves) == s.total_flops


def test_resnet18_cityscapes_is_151_6_gflop() -> None:
    assert round(model_structure("resnet18", "cityscapes", (1, 3, 1024, 2048)).total_flops / 1e9, 1) == 151.6


def test_rows_once_each_in_forward_order() -> None:
    s = model_structure("resnet18", "small", SMALL, "layer")
    names = [row.name for row in s.rows]
    with torch.device("meta"):
        every = [n for n, _ in torchvision.models.resnet18().named_modules() if n]
    assert sorted(names) == sorted(every)  # each module once, none missing (the reference printed them twice)
    assert names[:5] == ["conv1", "bn1", "relu", "maxpool", "layer1"]
    assert names[-2:] == ["avgpool", "fc"]
    # downsample runs after the block's conv2/bn2 and before the next block
    assert names.index("layer2.0.bn2") < names.index("layer2.0.downsample") < names.index("layer2.1")


def test_conv_geometry_and_shapes() -> None:
    rows = {row.name: row for row in model_structure("resnet18", "small", SMALL, "layer").rows}
    assert (rows["conv1"].kernel, rows["conv1"].stride, rows["conv1"].padding) == ((7, 7), (2, 2), (3, 3))
    assert rows["conv1"].output_shape == (1, 64, 32, 32)
    assert rows["layer2.0.downsample.0"].kernel == (1, 1)
    assert rows["fc"].output_shape == (1, 1000) and rows["fc"].kernel is None
    assert rows["conv1"].flops == 2 * 64 * 3 * 7 * 7 * 32 * 32  # a multiply-add is 2 FLOPs


@pytest.mark.parametrize(("depth", "count"), [("stage", len(STAGES)), ("block", len(STAGES) + len(block_names("resnet50")))])
def test_depths(depth: str, count: int) -> None:
    s = model_structure("resnet50", "small", SMALL, depth)
    assert len(s.rows) == count
    assert sum(row.params for row in s.rows if row.depth == 1) == s.total_params


def test_text_has_rows_and_totals() -> None:
    text = structure_text(model_structure("resnet18", "small", SMALL, "stage"))
    lines = text.splitlines()
    assert lines[0] == "resnet18 on small (input 1x3x64x64), depth: stage"
    assert "a multiply-add counts 2 FLOPs" in text
    assert any(line.startswith("conv1 ") and "7x7" in line and "9,408" in line for line in lines)
    assert "total params: 11,689,512 (11.690 M)" in lines
    assert sum(line.split()[0] in STAGES for line in lines if line.strip()) == len(STAGES)
