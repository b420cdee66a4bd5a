"""The crediting rule on synthetic profiles: renamed, fused and inserted nodes, an unknown node, the model's own forward;
ONNX Runtime's trace split into runs; a recorded TensorRT profile. Every figure is exact."""

from __future__ import annotations

import pytest

from fixtures.crediting import (
    BY_FED,
    BY_NAME,
    BY_OUTPUT,
    BY_PATH,
    NOT_FOUND,
    Credit,
    GraphOrigins,
    TensorRTOrigins,
    credit,
)
from fixtures.runtimes.ort import candidates as ort_candidates
from fixtures.runtimes.ort import runs
from fixtures.runtimes.ov import candidates as ov_candidates

US = 1e-6

# A mini ResNet as torch.onnx exports it: node name -> module (the BatchNorm-folded convolutions carry the BatchNorm's
# scope), and each node's output tensor.
NODES = {
    "node_Conv_1": ("bn1", "getitem"),
    "node_relu": ("relu", "relu"),
    "node_max_pool2d": ("maxpool", "max_pool2d"),
    "node_Conv_2": ("layer1.0.bn1", "getitem_3"),
    "node_relu_1": ("layer1.0.relu", "relu_1"),
    "node_Conv_3": ("layer1.0.bn2", "getitem_6"),
    "node_add": ("layer1.0", "add"),
    "node_relu_2": ("layer1.0.relu", "relu_2"),
    "node_Conv_4": ("layer1.1.bn1", "getitem_9"),
    "node_Conv_5": ("layer10.0.conv1", "getitem_12"),  # a stage whose name starts with another's
    "node_view": ("", "view"),  # the model's own forward, outside every stage
    "node_linear": ("fc", "linear"),
}
STAGES = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer10", "fc")
BLOCKS = ("layer1.0", "layer1.1", "layer10.0")


def origins(candidates=lambda name: (name,)) -> GraphOrigins:
    return GraphOrigins(
        {name: module for name, (module, _) in NODES.items()},
        {tensor: name for name, (_, tensor) in NODES.items()},
        candidates,
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("node_Conv_4", Credit("layer1.1.bn1", BY_NAME)),  # kept its exported name
        ("relu_1_nchwc_kernel_time", Credit("layer1.0.relu", BY_OUTPUT)),  # renamed after its output tensor
        ("relu_nchwc_kernel_time", Credit("relu", BY_OUTPUT)),  # the stem's Conv+ReLU, fused: the ReLU's output
        ("getitem_6_nchwc_kernel_time", Credit("layer1.0.bn2", BY_OUTPUT)),  # fused Conv+Add+ReLU, named by the Conv
        ("ReorderOutput_kernel_time", Credit(None, NOT_FOUND)),  # inserted, named after nothing
        ("node_view_kernel_time", Credit("", BY_NAME)),
    ],
)
def test_onnxruntime_names_are_credited_by_the_rule(name, expected):
    assert origins(ort_candidates).credit(name) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("node_Conv_1", Credit("bn1", BY_NAME)),  # fused with the ReLU after it, the node keeps the Conv's name
        ("linear", Credit("fc", BY_OUTPUT)),  # renamed after its output tensor
        ("x_f32_abcd_bf16_acdb_node_Conv_1", Credit("bn1", BY_FED)),  # an inserted reorder, named after what it feeds
        # Named after two nodes, it feeds the second: the longest name that ends it is the fed node.
        ("node_relu_1_f32_acdb_bf16_abcd_node_relu_2", Credit("layer1.0.relu", BY_FED)),
        ("linear/sink_port_0", Credit("fc", BY_OUTPUT)),  # a port of the node writing `linear`
        ("mystery", Credit(None, NOT_FOUND)),
    ],
)
def test_openvino_names_are_credited_by_the_rule(name, expected):
    assert origins(ov_candidates).credit(name) == expected


def test_a_fed_node_must_end_the_name_after_an_underscore():
    """'xnode_relu' is not named after node_relu: a reorder's name joins its parts with underscores."""
    assert origins().credit("xnode_relu") == Credit(None, NOT_FOUND)


# Three profiled forwards of the mini ResNet under ONNX Runtime (its names, microseconds).
ORT_ROUNDS = [
    [
        ("relu_nchwc", 100 * US),
        ("max_pool2d_nchwc", 10 * US),
        ("relu_1_nchwc", 50 * US),
        ("getitem_6_nchwc", 60 * US),
        ("node_Conv_4", 40 * US),
        ("getitem_12_nchwc", 30 * US),
        ("ReorderOutput", 5 * US),
        ("node_view", 2 * US),
        ("node_linear", 20 * US),
    ],
    [
        ("relu_nchwc", 120 * US),
        ("max_pool2d_nchwc", 10 * US),
        ("relu_1_nchwc", 52 * US),
        ("getitem_6_nchwc", 60 * US),
        ("node_Conv_4", 44 * US),
        ("getitem_12_nchwc", 30 * US),
        ("ReorderOutput", 9 * US),
        ("node_view", 2 * US),
        ("node_linear", 20 * US),
    ],
    [
        ("relu_nchwc", 110 * US),
        ("max_pool2d_nchwc", 12 * US),
        ("relu_1_nchwc", 48 * US),
        ("getitem_6_nchwc", 66 * US),
        ("node_Conv_4", 42 * US),
        ("getitem_12_nchwc", 30 * US),
        ("ReorderOutput", 7 * US),
        ("node_view", 4 * US),
        ("node_linear", 20 * US),
    ],
]


def test_stage_and_block_figures_are_sums_of_their_nodes_per_round():
    result = credit(ORT_ROUNDS, origins(ort_candidates), STAGES, [*STAGES, *BLOCKS])
    m = {name: [round(s / US, 6) for s in seconds] for name, seconds in result.modules.items()}
    assert m["conv1"] == [0, 0, 0]  # fused into the ReLU's node: nothing of its own
    assert m["bn1"] == [0, 0, 0]
    assert m["relu"] == [100, 120, 110]
    assert m["maxpool"] == [10, 10, 12]
    assert m["layer1"] == [150, 156, 156]  # layer1.0's two nodes and layer1.1's
    assert m["layer1.0"] == [110, 112, 114]
    assert m["layer1.1"] == [40, 44, 42]
    assert m["layer10"] == m["layer10.0"] == [30, 30, 30]  # not inside layer1
    assert m["fc"] == [20, 20, 20]
    assert [round(s / US, 6) for s in result.total_s] == [317, 347, 339]
    assert [round(s / US, 6) for s in result.staged_s] == [310, 336, 328]  # all but the reorder and the view


def test_what_no_stage_gets_is_unattributed_never_dropped():
    result = credit(ORT_ROUNDS, origins(ort_candidates), STAGES, list(STAGES))
    assert {name: round(s / US, 6) for name, s in result.unattributed.items()} == {"ReorderOutput": 7, "node_view": 2}
    assert result.total_ms == pytest.approx(0.339)  # the median round's total
    assert result.staged_ms == pytest.approx(0.328)
    assert result.unattributed_ms == pytest.approx(0.011)  # the median of 7, 11 and 11 µs
    assert result.credited_ratio == pytest.approx(0.328 / 0.339)
    assert result.via == {BY_OUTPUT: 5, BY_NAME: 3, NOT_FOUND: 1}
    assert result.rounds == 3


def test_a_profile_without_rounds_has_no_figures():
    result = credit([], origins(), STAGES, list(STAGES))
    assert result.total_ms is None and result.credited_ratio is None and result.unattributed_ms is None


def test_onnxruntime_trace_splits_into_runs_by_their_model_run_span():
    def node(name, ts, dur):
        return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur, "args": {"op_name": "Conv"}}

    events = [
        {"cat": "Session", "name": "model_loading_uri", "ts": 0, "dur": 50},
        {"cat": "Session", "name": "model_run", "ts": 100, "dur": 100},  # the warm call, dropped
        node("node_Conv_4", 110, 30),
        {"cat": "Node", "name": "node_Conv_4_fence_before", "ts": 109, "dur": 0},  # not a kernel time
        {"cat": "Session", "name": "model_run", "ts": 300, "dur": 100},
        node("relu_nchwc", 310, 40),
        node("ReorderOutput", 390, 5),
        {"cat": "Session", "name": "model_run", "ts": 500, "dur": 100},
        node("relu_nchwc", 510, 44),
    ]
    assert runs(events, skip=1) == [[("relu_nchwc", 40e-6), ("ReorderOutput", 5e-6)], [("relu_nchwc", 44e-6)]]


# A TensorRT profile of the mini ResNet as torch-tensorrt names its layers (each FX node's module path, then its name)
# and TensorRT fuses, reformats and groups them: one round, microseconds.
TRT_ROUND = [
    (
        "Reformatting CopyNode for Input Tensor 0 to [CONVOLUTION]-[aten_ops.convolution.default]-[conv1/convolution] "
        "+ [ACTIVATION]-[aten_ops.relu.default]-[relu/relu]",
        4 * US,
    ),
    (
        "[CONVOLUTION]-[aten_ops.convolution.default]-[conv1/convolution] + "
        "[ACTIVATION]-[aten_ops.relu.default]-[relu/relu]",
        30 * US,
    ),
    ("[POOLING]-[aten_ops.max_pool2d.default]-[maxpool/max_pool2d]", 5 * US),
    (
        "[CONVOLUTION]-[aten_ops.convolution.default]-[layer1.0.conv1/convolution_1] + "
        "[ACTIVATION]-[aten_ops.relu.default]-[layer1.0.relu/relu_1]",
        20 * US,
    ),
    (
        "[CONVOLUTION]-[aten_ops.convolution.default]-[layer1.0.conv2/convolution_2] + "
        "[ELEMENTWISE]-[aten_ops.add.Tensor]-[layer1.0/add] + [ACTIVATION]-[aten_ops.relu.default]-[layer1.0.relu/relu_2]",
        25 * US,
    ),
    ("[CONVOLUTION]-[aten_ops.convolution.default]-[/layer1/1/conv1/convolution_3]", 18 * US),  # an older release
    (
        "{ForeignNode[[REDUCE]-[aten_ops.mean.dim]-[avgpool/mean]...[MATRIX_MULTIPLY]-[aten_ops.addmm.default]-"
        "[fc/addmm]]}",
        12 * US,
    ),
    ("[SHUFFLE]-[aten_ops.view.default]-[view]", 1 * US),  # the model's own forward
    ("PWN(unnamed_fusion)", 2 * US),  # named after nothing torch-tensorrt wrote
]


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        (0, Credit("relu", BY_PATH)),  # a reformat: the layer it feeds, named last after the ReLU
        (1, Credit("relu", BY_PATH)),
        (4, Credit("layer1.0.relu", BY_PATH)),  # Conv+Add+ReLU: the last part's module
        (5, Credit("layer1.1.conv1", BY_PATH)),
        (6, Credit("fc", BY_PATH)),  # a Myelin region from avgpool to fc: named last after fc
        (7, Credit("", BY_PATH)),
        (8, Credit(None, NOT_FOUND)),
    ],
)
def test_tensorrt_names_are_credited_by_the_rule(index, expected):
    assert TensorRTOrigins().credit(TRT_ROUND[index][0]) == expected


def test_a_recorded_tensorrt_profile_gives_exact_figures():
    stages = ("conv1", "bn1", "relu", "maxpool", "layer1", "avgpool", "fc")
    result = credit([TRT_ROUND], TensorRTOrigins(), stages, [*stages, "layer1.0", "layer1.1"])
    m = {name: round(seconds[0] / US, 6) for name, seconds in result.modules.items()}
    assert m == {
        "conv1": 0,
        "bn1": 0,
        "relu": 34,
        "maxpool": 5,
        "layer1": 63,
        "avgpool": 0,
        "fc": 12,
        "layer1.0": 45,
        "layer1.1": 18,
    }
    assert round(result.total_s[0] / US, 6) == 117
    assert {name[:20]: round(s / US, 6) for name, s in result.unattributed.items()} == {
        "[SHUFFLE]-[aten_ops.": 1,
        "PWN(unnamed_fusion)": 2,
    }
