"""The matrix: case counts, ids, block names read from torchvision's builders."""

from __future__ import annotations

from fixtures.inputs import NAMED_INPUTS, parse_input
from fixtures.matrix import GroupKey, build_cases, build_groups
from fixtures.stages_and_blocks import block_names

DEFAULT_MODELS = ("resnet18", "resnet34", "resnet50", "resnet101")
DEFAULT_INPUTS = (NAMED_INPUTS["cityscapes"], NAMED_INPUTS["pascal"])


def test_block_names_follow_the_builders():
    # torchvision's layer counts: resnet18 [2,2,2,2], resnet34/50 [3,4,6,3], resnet101 [3,4,23,3], resnet152 [3,8,36,3]
    assert block_names("resnet18") == ("layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1", "layer4.0", "layer4.1")
    assert [len(block_names(m)) for m in (*DEFAULT_MODELS, "resnet152")] == [8, 16, 16, 33, 50]
    assert block_names("resnet101")[-1] == "layer4.2"


def test_default_cpu_matrix_counts():
    cases = build_cases(build_groups(DEFAULT_MODELS, DEFAULT_INPUTS, ("cpu",)), ("model", "stage", "block"))
    counts = {scope: sum(c.scope == scope for c in cases) for scope in ("model", "stage", "block")}
    assert counts == {"model": 8, "stage": 80, "block": 146}
    assert len({c.id for c in cases}) == len(cases)


def test_ids_read_well_and_group_cases_together():
    cases = build_cases(build_groups(("resnet50",), (NAMED_INPUTS["cityscapes"],), ("cuda",)), ("model", "stage", "block"))
    ids = [c.id for c in cases]
    assert ids[0] == "resnet50-cityscapes-cuda-model"
    assert ids[1] == "resnet50-cityscapes-cuda-stage-conv1"
    assert "resnet50-cityscapes-cuda-block-layer3.2" in ids
    assert {c.group.id for c in cases} == {"resnet50-cityscapes-cuda"}


def test_only_non_default_modes_reach_the_id():
    size = parse_input("4x3x224x224")
    assert GroupKey("resnet18", size, "cpu").id == "resnet18-4x3x224x224-cpu"
    assert GroupKey("resnet18", size, "cuda", "bf16", "channels_last", "eager").id == "resnet18-4x3x224x224-cuda-bf16-channels_last"
