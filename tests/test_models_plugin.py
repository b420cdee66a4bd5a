"""Every kind of model through the real plugin: one tiny run of each (collected, timed, reported), -k on their ids, and
the report's Block column from what the run saved.

The runs are in-process (pytester.runpytest_inprocess, --import-mode=importlib, as tests/test_newcomer.py explains):
no CUDA is touched, and one torch import serves them all.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stubs import checkout_project

ROOT = Path(__file__).resolve().parent.parent
BUILDERS = '''
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=4)
        self.layer1 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.layer1(self.stem(x)).mean((2, 3)))


def net():
    return Net()


def plain():
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=4), nn.ReLU())
'''
MODELS = "resnet50+os8,deeplabv3_resnet50+aux,timm.resnet26t,resnet18+backbone,team_nets:net,team_nets:plain"
RATIO = "[0-9].[0-9][0-9][0-9]"  # a ratio of the summary table, not '-'
TINY = ("--bench-devices", "cpu", "--bench-models", MODELS, "--bench-inputs", "1x3x64x64", "--bench-rounds", "2",
        "--bench-warmup", "1", "--bench-threads", "1")


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """The checkout's entry points and benchmarks, and a team's builder module beside them; `run(*args)` runs pytest."""
    return checkout_project(pytester, monkeypatch, files={"team_nets.py": BUILDERS})


def test_every_kind_collects_runs_and_reports(project):
    result = project("benchmarks/", *TINY, "--benchmark-json=out.json")
    assert result.ret == pytest.ExitCode.OK, result.outlines[-30:]
    result.stdout.fnmatch_lines([
        "resnet-profile: team_nets.plain has no residual blocks (no layer<N> nn.Sequential among its stages, no",
        "    resnet_profile_blocks): its block cases are left out (docs/models.md)",
    ])
    result.stdout.fnmatch_lines([
        "*resnet-profile*",
        # stages/whole and blocks/layers for every kind (their values are timings: not asserted)
        f"resnet50+os8-1x3x64x64-cpu * 2 * {RATIO} * {RATIO} * {RATIO} *",
        f"deeplabv3_resnet50+aux-1x3x64x64-cpu * 2 * {RATIO} * {RATIO} * {RATIO} *",
        f"timm.resnet26t-1x3x64x64-cpu * 2 * {RATIO} * {RATIO} * {RATIO} *",
        f"resnet18+backbone-1x3x64x64-cpu * 2 * {RATIO} * {RATIO} * {RATIO} *",
        f"team_nets.net-1x3x64x64-cpu * 2 * {RATIO} * {RATIO} * {RATIO} *",
        f"team_nets.plain-1x3x64x64-cpu * 2 * {RATIO} * - * {RATIO} *",  # no blocks: no blocks/layers ratio
    ])
    benches = json.loads((project.path / "out.json").read_text())["benchmarks"]
    by_model: dict[str, list[dict]] = {}
    for bench in benches:
        by_model.setdefault(bench["extra_info"]["model"], []).append(bench["extra_info"])
    counts = {m: [sum(e["scope"] == s for e in infos) for s in ("model", "stage", "block")] for m, infos in by_model.items()}
    assert counts == {
        "resnet50+os8": [1, 10, 16],
        "deeplabv3_resnet50+aux": [1, 12, 16],
        "timm.resnet26t": [1, 10, 8],
        "resnet18+backbone": [1, 8, 8],
        "team_nets.net": [1, 3, 2],
        "team_nets.plain": [1, 2, 0],
    }
    facts = {m: (infos[0]["model_kind"], infos[0]["output_stride"], infos[0]["block_type"]) for m, infos in by_model.items()}
    assert facts == {
        "resnet50+os8": ("torchvision", 8, "Bottleneck"),
        "deeplabv3_resnet50+aux": ("segmentation", 8, "Bottleneck"),
        "timm.resnet26t": ("timm", 32, "Bottleneck"),
        "resnet18+backbone": ("torchvision", 32, "BasicBlock"),
        "team_nets.net": ("user", None, "Conv2d, ReLU"),
        "team_nets.plain": ("user", None, None),
    }
    seg = {e["module"]: e for e in by_model["deeplabv3_resnet50+aux"]}
    assert seg["upsample"]["module_output_shape"] == [1, 21, 64, 64] and seg["upsample"]["flops"] == 0
    assert seg["backbone.layer4"]["module_output_shape"] == [1, 2048, 8, 8]  # output stride 8
    assert seg[""]["peak_mib"] is not None and seg[""]["params"] == 42_004_074
    assert [seg[m]["module_index"] for m in ("backbone.conv1", "classifier", "aux_upsample")] == [0, 8, 11]
    structures = project.path / "reports" / "model_structures"
    assert sorted(p.name for p in structures.iterdir()) == sorted(f"{m}_1x3x64x64.txt" for m in by_model)
    assert (project.path / "reports" / "memory_reports" / "timm.resnet26t_1x3x64x64_cpu.txt").exists()

    from fixtures.report import load_run, render_markdown

    text = render_markdown(load_run(project.path / "out.json"))
    blocks = {cells[0]: cells[3] for line in text.split("### Per stage")[0].splitlines()
              if line.startswith("| ") and len(cells := [c.strip() for c in line.strip("|").split("|")]) > 3}
    assert {k: blocks[k] for k in ("ResNet-50+os8", "timm.resnet26t", "team_nets.net", "team_nets.plain")} == {
        "ResNet-50+os8": "Bottleneck", "timm.resnet26t": "Bottleneck", "team_nets.net": "Conv2d, ReLU",
        "team_nets.plain": "-",
    }


@pytest.mark.parametrize(
    ("expression", "selected"),
    [
        # -k matches substrings: the +aux model's two heads match too
        ("deeplabv3_resnet50 and classifier", ["deeplabv3_resnet50-1x3x64x64-cpu-stage-classifier",
                                               "deeplabv3_resnet50+aux-1x3x64x64-cpu-stage-classifier",
                                               "deeplabv3_resnet50+aux-1x3x64x64-cpu-stage-aux_classifier"]),
        ("deeplabv3_resnet50- and classifier", ["deeplabv3_resnet50-1x3x64x64-cpu-stage-classifier"]),
        ("deeplabv3_resnet50+aux and upsample",
         ["deeplabv3_resnet50+aux-1x3x64x64-cpu-stage-upsample", "deeplabv3_resnet50+aux-1x3x64x64-cpu-stage-aux_upsample"]),
        ("resnet50+os8 and block and layer4",
         [f"resnet50+os8-1x3x64x64-cpu-block-layer4.{i}" for i in range(3)]),
        ("timm.resnet26t and stage-layer4", ["timm.resnet26t-1x3x64x64-cpu-stage-layer4"]),
        ("team_nets.net and block", ["team_nets.net-1x3x64x64-cpu-block-layer1.0", "team_nets.net-1x3x64x64-cpu-block-layer1.1"]),
        ("backbone.layer2.3", ["deeplabv3_resnet50-1x3x64x64-cpu-block-backbone.layer2.3",
                               "deeplabv3_resnet50+aux-1x3x64x64-cpu-block-backbone.layer2.3"]),
    ],
)
def test_k_selects_the_new_ids(project, expression, selected):
    models = "deeplabv3_resnet50,deeplabv3_resnet50+aux,resnet50+os8,resnet50,timm.resnet26t,team_nets:net"
    result = project("benchmarks/test_latency.py", *TINY[:2], "--bench-models", models, *TINY[4:6], "--collect-only",
                     "-q", "-k", expression)
    assert result.ret == pytest.ExitCode.OK, result.outlines[-10:]
    ids = [line.split("[", 1)[1].rstrip("]") for line in result.outlines if line.startswith("benchmarks/")]
    assert ids == selected


@pytest.mark.parametrize(
    ("models", "line"),
    [
        ("timm.resnet51", "*argument --bench-models: unknown timm model 'resnet51': timm.NAME takes a name of *"),
        ("resnet50,resnet18+os8", "*argument --bench-models: model 'resnet18+os8': torchvision's resnet18 is built from *"),
        ("team_nets:gone", "*argument --bench-models: model 'team_nets:gone': module 'team_nets' has no callable 'gone'"),
        ("not_there.nets:build", "*argument --bench-models: model 'not_there.nets:build': can't import 'not_there.nets'*"),
    ],
)
def test_a_bad_model_is_one_line_and_a_usage_error(project, models, line):
    result = project("benchmarks/test_latency.py", "--bench-models", models, "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([line])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_fold_bn_runs_for_every_kind(project):
    models = "timm.resnet50d,team_nets:net"  # a deep stem; a user's model (tests/test_modes.py checks the outputs)
    result = project("benchmarks/test_latency.py", *TINY[:2], "--bench-models", models, *TINY[4:], "--bench-fold-bn",
                     "on", "--bench-scopes", "model,stage", "--benchmark-json=out.json")
    assert result.ret == pytest.ExitCode.OK, result.outlines[-30:]
    benches = json.loads((project.path / "out.json").read_text())["benchmarks"]
    assert {b["extra_info"]["fold_bn"] for b in benches} == {True} and len(benches) == 2 + 10 + 3
