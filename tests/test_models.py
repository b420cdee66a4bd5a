"""The kinds of model (fixtures/models.py) and their parts (fixtures/stages_and_blocks.py), checked against figures nobody
here chose: torchvision's and timm's own models, torchvision's published parameter counts, FlopCounterMode."""

from __future__ import annotations

import socket
import textwrap
import urllib.request

import pytest
import timm
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models import get_model_weights
from torchvision.models._utils import IntermediateLayerGetter

from fixtures.flops import flops_by_module
from fixtures.models import ModelSpec, SegmentationModel, ZooError, build_model, check_model, known_models, model_spec
from fixtures.shapes import first_tensor, module_shapes
from fixtures.stages_and_blocks import STAGES, find_parts, parts_of
from fixtures.structure_report import model_structure

SMALL = (1, 3, 64, 64)
TV_STAGES = STAGES
TIMM_STAGES = ("conv1", "bn1", "act1", "maxpool", "layer1", "layer2", "layer3", "layer4", "global_pool", "fc")
SEG_STAGES = (*(f"backbone.{s}" for s in STAGES[:8]), "classifier", "upsample")


def meta(builder):
    with torch.device("meta"):
        return builder().eval()


def counted(model: torch.nn.Module, shape: tuple[int, ...] = SMALL) -> int:
    """FlopCounterMode's total for one forward of `model`, counted here, apart from fixtures.flops."""
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(torch.empty(shape, device="meta"))
    return counter.get_total_flops()


def params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- names -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "kind"),
    [
        ("resnet50", "resnet50", "torchvision"),
        ("resnet50+os8", "resnet50+os8", "torchvision"),
        (" resnet101+backbone+os16 ", "resnet101+os16+backbone", "torchvision"),  # modifiers in their one order
        ("deeplabv3_resnet50", "deeplabv3_resnet50", "segmentation"),
        ("fcn_resnet101+aux", "fcn_resnet101+aux", "segmentation"),
        ("timm.resnet50d", "timm.resnet50d", "timm"),
        ("timm.resnet18+os8", "timm.resnet18+os8", "timm"),  # timm dilates BasicBlocks; torchvision does not
        ("mypkg.nets:build", "mypkg.nets.build", "user"),
        ("mypkg.nets.build", "mypkg.nets.build", "user"),  # the ids' spelling reads back as the same builder
    ],
)
def test_names_and_their_canonical_spelling(text, name, kind):
    spec = model_spec(text)
    assert (spec.name, spec.kind) == (name, kind)
    assert model_spec(spec.name) == spec  # every part of the suite rebuilds the model from this name


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("resnet19", "unknown model 'resnet19': choose from resnet18, resnet34, *, or a builder package.module:function"),
        ("resnet18+os8", "model 'resnet18+os8': torchvision's resnet18 is built from BasicBlocks, which have no dilation*"),
        ("resnet50+os4", "model 'resnet50+os4': unknown or repeated modifier '+os4': use +os16 or +os8, +backbone"),
        ("resnet50+os8+os16", "model 'resnet50+os8+os16': unknown or repeated modifier '+os16'*"),
        ("fcn_resnet50+os16", "model 'fcn_resnet50+os16': a segmentation model takes +aux only*"),
        ("resnet50+aux", "model 'resnet50+aux': unknown or repeated modifier '+aux'*"),
        ("timm.resnet51", "unknown timm model 'resnet51': timm.NAME takes a name of timm.list_models(module='resnet')*"),
        ("timm.vit_base_patch16_224", "unknown timm model 'vit_base_patch16_224'*"),  # timm's, but no ResNet
        ("pkg.mod:fn+backbone", "model 'pkg.mod:fn+backbone': +os16, +os8, +backbone apply to torchvision's and timm's*"),
        ("timm.models.resnet:resnet50", "model 'timm.models.resnet:resnet50': a builder inside timm can't be told*"),
        ("resnet50@os8", "unknown model 'resnet50@os8'*"),
    ],
)
def test_bad_names_are_one_line(text, message):
    import fnmatch

    with pytest.raises(ZooError) as error:
        model_spec(text)
    assert "\n" not in str(error.value)
    assert fnmatch.fnmatchcase(str(error.value), message), str(error.value)


def test_known_names_build_and_the_default_matrix_is_unchanged():
    from fixtures.options import Settings

    assert Settings.defaults().models == ("resnet18", "resnet34", "resnet50", "resnet101")
    names = known_models()
    assert {"resnet50+os8+backbone", "deeplabv3_resnet101+aux", "wide_resnet50_2+os16"} <= set(names)
    assert "resnet18+os8" not in names
    assert all(model_spec(n).name == n for n in names)
    assert "timm.seresnext50_32x4d+os8" in known_models(include_timm=True)


# --- parameter counts: torchvision's and timm's own ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("resnet50+os8", lambda: torchvision.models.resnet50(weights=None, replace_stride_with_dilation=[False, True, True])),
        ("resnet101+os16", lambda: torchvision.models.resnet101(weights=None)),  # dilation moves no parameter
        ("resnet50+backbone", lambda: IntermediateLayerGetter(torchvision.models.resnet50(), {"layer4": "out"})),
        ("deeplabv3_resnet50", lambda: torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None)),
        ("fcn_resnet50", lambda: torchvision.models.segmentation.fcn_resnet50(weights=None, weights_backbone=None)),
        ("timm.resnet50d", lambda: timm.create_model("resnet50d", pretrained=False)),
        ("timm.resnet26t+os8", lambda: timm.create_model("resnet26t", pretrained=False)),
        ("timm.seresnext50_32x4d", lambda: timm.create_model("seresnext50_32x4d", pretrained=False)),
        ("timm.resnetrs50+backbone", lambda: timm.create_model("resnetrs50", pretrained=False, num_classes=0)),
    ],
)
def test_parameters_equal_the_libraries_own_models(name, reference):
    assert module_shapes(name, SMALL)[1][""].params == params(meta(reference))


@pytest.mark.parametrize("name", ["deeplabv3_resnet50", "deeplabv3_resnet101", "fcn_resnet50", "fcn_resnet101", "resnet50"])
def test_parameters_equal_torchvision_s_published_counts(name):
    """torchvision's weights carry num_params (their models are trained with the auxiliary head): no download needed."""
    published = {w.meta["num_params"] for w in get_model_weights(name)}
    suite = name + ("+aux" if name in ("deeplabv3_resnet50", "deeplabv3_resnet101", "fcn_resnet50", "fcn_resnet101") else "")
    assert {module_shapes(suite, SMALL)[1][""].params} == published  # 42,004,074 for deeplabv3_resnet50, …


# --- FLOPs: FlopCounterMode on the library's own model, and the parts add up ------------------------------------------


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("resnet50+os8", lambda: torchvision.models.resnet50(replace_stride_with_dilation=[False, True, True])),
        ("resnet50+os16", lambda: torchvision.models.resnet50(replace_stride_with_dilation=[False, False, True])),
        ("resnet50+backbone", lambda: IntermediateLayerGetter(torchvision.models.resnet50(), {"layer4": "out"})),
        ("deeplabv3_resnet50+aux", lambda: torchvision.models.segmentation.deeplabv3_resnet50(weights_backbone=None, aux_loss=True)),
        ("fcn_resnet50", lambda: torchvision.models.segmentation.fcn_resnet50(weights_backbone=None)),
        ("timm.resnet26t", lambda: timm.create_model("resnet26t")),
        ("timm.seresnext50_32x4d+os8", lambda: timm.create_model("seresnext50_32x4d", output_stride=8)),
    ],
)
def test_flops_equal_flop_counter_mode_and_the_parts_add_up(name, reference):
    flops, parts = flops_by_module(name, SMALL), parts_of(name)
    assert flops[""] == counted(meta(reference)) > 0
    assert sum(flops[s] for s in parts.stages) == flops[""]
    for layer in parts.layers:  # each layer's blocks add up to it
        assert sum(flops[b] for b in parts.blocks if b.startswith(layer + ".")) == flops[layer]


def test_dilation_costs_flops_the_stride_would_save():
    # At output stride 8 layer3 and layer4 run on 4x and 16x the positions; their parameters are the same.
    base, os8 = flops_by_module("resnet50", SMALL), flops_by_module("resnet50+os8", SMALL)
    assert base["layer2"] == os8["layer2"] and os8["layer4"] > 10 * base["layer4"]


# --- shapes follow the output stride ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "strides"),
    [
        ("resnet50", (4, 8, 16, 32)),
        ("resnet50+os16", (4, 8, 16, 16)),
        ("resnet50+os8", (4, 8, 8, 8)),
        ("resnet50+os8+backbone", (4, 8, 8, 8)),
        ("deeplabv3_resnet50", (4, 8, 8, 8)),
        ("timm.resnet50d+os16", (4, 8, 16, 16)),
        ("timm.resnet18+os8", (4, 8, 8, 8)),
    ],
)
def test_stage_output_shapes_follow_the_output_stride(name, strides):
    shape = (1, 3, 128, 192)
    rows = {row.name: row for row in model_structure(name, "x", shape, "stage").rows}
    layers = parts_of(name).layers
    assert [rows[layer].output_shape[2:] for layer in layers] == [(128 // s, 192 // s) for s in strides]
    assert model_spec(name).stride == strides[-1]


def test_what_each_kind_outputs():
    assert model_structure("resnet50+os8", "x", SMALL).output_shape == (1, 1000)
    assert model_structure("resnet50+os8+backbone", "x", SMALL).output_shape == (1, 2048, 8, 8)
    assert model_structure("deeplabv3_resnet50", "x", SMALL).output_shape == (1, 21, 64, 64)  # the dict's "out"
    assert first_tensor({"aux": torch.zeros(1), "out": torch.ones(2)}).shape == (2,)
    assert first_tensor({"a": torch.zeros(3)}).shape == (3,)


# --- stages and blocks -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "stages", "blocks", "block_type"),
    [
        ("resnet18", TV_STAGES, 8, "BasicBlock"),
        ("resnet50+os8", TV_STAGES, 16, "Bottleneck"),
        ("resnet50+backbone", TV_STAGES[:8], 16, "Bottleneck"),
        ("deeplabv3_resnet50", SEG_STAGES, 16, "Bottleneck"),
        ("fcn_resnet101+aux", (*SEG_STAGES, "aux_classifier", "aux_upsample"), 33, "Bottleneck"),
        ("timm.resnet50d", TIMM_STAGES, 16, "Bottleneck"),  # a deep stem: conv1 is a Sequential, one stage
        ("timm.seresnext26d_32x4d", TIMM_STAGES, 8, "Bottleneck"),  # squeeze-and-excitation inside the blocks
        ("timm.resnetrs50", TIMM_STAGES, 16, "Bottleneck"),  # maxpool is a strided conv stem there
        ("timm.resnet18d+backbone", TIMM_STAGES[:8], 8, "BasicBlock"),
    ],
)
def test_stages_and_blocks_follow_the_module_names(name, stages, blocks, block_type):
    parts = parts_of(name)
    assert parts.stages == stages
    assert len(parts.blocks) == blocks and parts.block_type == block_type
    prefix = "backbone." if model_spec(name).kind == "segmentation" else ""
    assert parts.blocks[0] == f"{prefix}layer1.0" and parts.layers == tuple(f"{prefix}layer{i}" for i in range(1, 5))


def test_segmentation_outputs_equal_torchvision_s_forward():
    torch.manual_seed(0)
    for name, aux in (("deeplabv3_resnet50", False), ("fcn_resnet50", True)):
        built = torchvision.models.get_model(name, weights=None, weights_backbone=None, aux_loss=aux).eval()
        x = torch.randn(1, 3, 72, 56)  # not a multiple of 8: the upsampling goes back to the input's own size
        with torch.inference_mode():
            expected = built(x)
            wrapped = SegmentationModel(built)
            got = wrapped(x)
        assert list(got) == list(expected) == (["out", "aux"] if aux else ["out"])
        for key in expected:
            assert torch.equal(got[key], expected[key])
        assert params(wrapped) == params(built)


def test_backbones_output_the_libraries_own_features():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        tv = torchvision.models.resnet50(replace_stride_with_dilation=[False, True, True]).eval()
        ours = ModelSpec("torchvision", "resnet50", 8, backbone=True)
        from fixtures.models import Backbone

        assert torch.equal(Backbone.of(tv)(x), IntermediateLayerGetter(tv, {"layer4": "out"})(x)["out"])
        tm = timm.create_model("resnet26t", pretrained=False).eval()
        assert torch.equal(Backbone.of(tm)(x), tm.forward_features(x))
    assert ours.name == "resnet50+os8+backbone"


def test_timm_builds_without_touching_the_network(monkeypatch):
    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("the network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    # The guard sees what a download would do: a name lookup, a connection.
    with pytest.raises(OSError):
        urllib.request.urlopen("https://huggingface.co/timm/resnet50d.ra2_in1k", timeout=1)
    assert attempts
    attempts.clear()
    model_spec.cache_clear()
    for name in ("timm.resnet50d", "timm.seresnext50_32x4d+os8"):
        assert isinstance(build_model(name), torch.nn.Module)
    assert check_model("timm.resnetrs50") == "timm.resnetrs50"
    assert attempts == []


# --- a user's builder ------------------------------------------------------------------------------------------------

USER_MODULE = '''
import torch
from torch import nn


class Net(nn.Module):
    """Two layer<N> Sequentials of blocks: found by the rule."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=4)
        self.layer1 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.layer2 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1))
        self.head = nn.Linear(8, 2)
        self.unused = nn.Linear(8, 8)  # its forward never calls it: not a stage

    def forward(self, x):
        return self.head(self.layer2(self.layer1(self.stem(x))).mean((2, 3)))


class Declared(Net):
    resnet_profile_stages = ("head", "stem", "layer1.0")  # out of order: the forward's order wins
    resnet_profile_blocks = ("layer2.0",)


def net():
    return Net()


def declared():
    return Declared()


def plain():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())


def nested():
    model = Net()
    model.resnet_profile_stages = ("layer1", "layer1.0")
    return model


def uncalled():
    model = Net()
    model.resnet_profile_stages = ("stem", "unused")
    return model


def wrong_type():
    model = Net()
    model.resnet_profile_blocks = "layer1.0"
    return model


def raises():
    raise RuntimeError("no such checkpoint\\nsecond line")


def number():
    return 3


class MakesTensors(Net):
    def forward(self, x):
        return super().forward(x) + torch.zeros(2)  # made on the default device: meta while the suite reads shapes


def makes_tensors():
    return MakesTensors()


def single():
    return nn.Conv2d(3, 4, 3)  # no child: no stage, no block


def needs_a_size():
    return nn.Linear(10, 2)  # a 1x3x224x224 input can't pass


not_callable = 5
'''


@pytest.fixture(scope="module")
def user_module(tmp_path_factory):
    """A builder module on sys.path (a name of its own: the name caches are per process)."""
    import sys

    folder = tmp_path_factory.mktemp("builders")
    (folder / "profile_user_nets.py").write_text(textwrap.dedent(USER_MODULE))
    sys.path.insert(0, str(folder))
    yield "profile_user_nets"
    sys.path.remove(str(folder))
    sys.modules.pop("profile_user_nets", None)


def test_a_user_s_builder_by_the_rule_and_by_declaration(user_module):
    assert check_model(f"{user_module}:net") == f"{user_module}.net"
    parts = parts_of(f"{user_module}.net")
    assert parts.stages == ("stem", "layer1", "layer2", "head")  # not "unused": the forward never calls it
    assert parts.blocks == ("layer1.0", "layer1.1", "layer2.0") and parts.block_type == "Conv2d, ReLU"
    declared = parts_of(check_model(f"{user_module}:declared"))
    assert declared.stages == ("stem", "layer1.0", "head") and declared.blocks == ("layer2.0",)
    plain = parts_of(check_model(f"{user_module}.plain"))
    assert plain.stages == ("0", "1") and plain.blocks == () and plain.block_type is None
    flops = flops_by_module(f"{user_module}.net", SMALL)
    assert sum(flops[s] for s in parts.stages) == flops[""] > 0
    assert module_shapes(f"{user_module}.net", SMALL)[1][""].params == params(meta(lambda: __import__(user_module).net()))


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("nope", "model '{m}:nope': module '{m}' has no callable 'nope'"),
        ("not_callable", "model '{m}:not_callable': module '{m}' has no callable 'not_callable'"),
        ("raises", "model '{m}:raises': raises() raised RuntimeError: no such checkpoint"),
        ("number", "model '{m}:number': number() returned 'int', not a torch.nn.Module"),
        ("nested", "model '{m}.nested': stage 'layer1.0' is inside stage 'layer1': stages must not nest"),
        ("uncalled", "model '{m}.uncalled': stage 'unused' is not a module its forward calls"),
        ("wrong_type", "model '{m}.wrong_type': resnet_profile_blocks must be a tuple of dotted module names, not 'layer1.0'"),
        ("needs_a_size", "model '{m}.needs_a_size': its forward failed on a meta-device input of 1x3x224x224 (RuntimeError: *"),
    ],
)
def test_a_builder_that_does_not_fit_is_one_line(user_module, function, message):
    import fnmatch

    with pytest.raises(ZooError) as error:
        check_model(f"{user_module}:{function}")
    text = str(error.value)
    assert "\n" not in text and fnmatch.fnmatchcase(text, message.format(m=user_module)), text


def test_a_module_that_does_not_import_is_one_line():
    with pytest.raises(ZooError) as error:
        check_model("no_such_package.nets:build")
    assert str(error.value) == (
        "model 'no_such_package.nets:build': can't import 'no_such_package.nets' (ModuleNotFoundError: No module named "
        "'no_such_package'); is it on sys.path (PYTHONPATH)?"
    )


def test_find_parts_on_a_given_module():
    from stubs import ResNetStub

    parts = find_parts(meta(ResNetStub), "stub")
    assert parts.stages == ("conv1", "layer1") and parts.blocks == ("layer1.0", "layer1.1")
    assert parts.of("model") == ("",) and parts.of("block") == parts.blocks


def test_a_model_without_stages_or_blocks_says_so_and_keeps_its_model_case(user_module):
    from fixtures.inputs import parse_input
    from fixtures.matrix import Matrix, build_groups
    from fixtures.render.terminal import parts_header

    made = check_model(f"{user_module}:makes_tensors")
    assert parts_of(made).stages == ("stem", "layer1", "layer2", "head")
    assert flops_by_module(made, SMALL)[""] == flops_by_module(f"{user_module}.net", SMALL)[""]
    single = check_model(f"{user_module}:single")
    matrix = Matrix(build_groups((single, "resnet18"), (parse_input("1x3x64x64"),), ("cpu",)), ("model", "stage", "block"))
    assert [c.id for c in matrix.cases() if c.group.model == single] == [f"{single}-1x3x64x64-cpu-model"]
    assert matrix.without() == [(single, "stage"), (single, "block")]
    assert parts_header(matrix.without()) == [
        f"resnet-profile: {single} has no stages (no top-level child its forward calls, no resnet_profile_stages): "
        "its stage cases are left out (docs/models.md)",
        f"resnet-profile: {single} has no residual blocks (no layer<N> nn.Sequential among its stages, no "
        "resnet_profile_blocks): its block cases are left out (docs/models.md)",
    ]
