"""Memory reports: the reference's table, an independent numel × element_size count, memlab, named rows, peaks."""

from __future__ import annotations

import math
from pathlib import Path

import memray
import pytest
import torch
import torchvision

from fixtures.inputs import NAMED_INPUTS, make_input, parse_input
from fixtures.matrix import GroupKey
from fixtures.memory import MIB, ForwardMemory, MemoryReport, Peak, measure_forward, static_memory
from fixtures.models import build_model
from fixtures.modes import prepare
from fixtures.render.files import memory_file, memory_text
from fixtures.stages_and_blocks import STAGES

# The reference README's Memory Report: Allocated Memory (MB), # Params (M), # Tensors (M). Its counts are truncated to
# three decimals (11,689,512 params print as 11.689), and its "MB" is MiB: 17,990,588 float32 elements are 68.63 MiB.
REFERENCE = {
    ("resnet18", "cityscapes"): (68.69, 11.689, 17.990),
    ("resnet18", "pascal"): (46.60, 11.689, 12.200),
    ("resnet34", "cityscapes"): (108.16, 21.797, 28.106),
    ("resnet34", "pascal"): (85.20, 21.797, 22.315),
    ("resnet50", "cityscapes"): (121.73, 25.557, 31.901),
    ("resnet50", "pascal"): (100.23, 25.557, 26.111),
    ("resnet101", "cityscapes"): (194.65, 44.549, 50.946),
    ("resnet101", "pascal"): (172.65, 44.549, 45.155),
}
# Rows whose memory figure disagrees with the reference's own tensor count (# Tensors × 4 bytes) by more than the
# CUDA allocator's 512-byte blocks can explain; the reference must have counted something else there (its memlab run
# collected every live tensor of the process). For these the count is checked, and the memory against that count.
INCONSISTENT = {("resnet34", "cityscapes"), ("resnet50", "pascal"), ("resnet101", "cityscapes"), ("resnet101", "pascal")}
BLOCK_SLACK_MIB = 0.07  # 512-byte blocks (+0.02 MiB here) and the reference's rounding


def _floor3(value: float) -> float:
    return math.floor(value * 1000 + 1e-9) / 1000


@pytest.mark.parametrize(("model", "inp"), list(REFERENCE), ids=[f"{m}-{i}" for m, i in REFERENCE])
def test_memory_table_equals_reference(model: str, inp: str) -> None:
    mib, params_m, tensors_m = REFERENCE[model, inp]
    static = static_memory(model, NAMED_INPUTS[inp].shape, "fp32", False)
    assert _floor3(static.params / 1e6) == params_m
    assert _floor3(static.tensors / 1e6) == tensors_m
    if (model, inp) in INCONSISTENT:
        assert static.bytes / MIB == pytest.approx(tensors_m * 1e6 * 4 / MIB, abs=0.01)
        assert abs(static.block_bytes / MIB - mib) > BLOCK_SLACK_MIB  # still off: the day it matches, revisit
    else:
        assert abs(static.block_bytes / MIB - mib) <= BLOCK_SLACK_MIB


@pytest.mark.parametrize("model", ["resnet18", "resnet50"])
@pytest.mark.parametrize("inp", ["cityscapes", "pascal"])
def test_memory_equals_independent_count(model: str, inp: str) -> None:
    """state_dict (not named_parameters/buffers) plus the input, numel × element_size, on the meta device."""
    with torch.device("meta"):
        state = torchvision.models.get_model(model, weights=None).state_dict()
    shape = NAMED_INPUTS[inp].shape
    expected = sum(t.numel() * t.element_size() for t in state.values()) + math.prod(shape) * 4
    static = static_memory(model, shape, "fp32", False)
    assert static.bytes == expected
    assert static.tensors == sum(t.numel() for t in state.values()) + math.prod(shape)


def test_every_tensor_named() -> None:
    static = static_memory("resnet18", (1, 3, 32, 32), "fp32", False)
    with torch.device("meta"):
        model = torchvision.models.resnet18()
    names = [row.name for row in static.rows]
    assert names == [n for n, _ in model.named_parameters()] + [n for n, _ in model.named_buffers()] + ["input"]
    assert not any(name.startswith("Tensor") for name in names)
    assert static.rows[-1].shape == (1, 3, 32, 32) and static.rows[-1].kind == "input"
    nbt = next(r for r in static.rows if r.name == "bn1.num_batches_tracked")
    assert (nbt.dtype, nbt.bytes, nbt.block_bytes) == ("int64", 8, 512)


def test_memlab_counts_elements_but_overstates_bytes() -> None:
    """pytorch-memlab 0.3.2: right element count, memory × element_size (why the suite doesn't ship its figure)."""
    from pytorch_memlab import MemReporter

    model = torchvision.models.resnet18().eval()
    x = torch.randn(1, 3, 32, 32)
    reporter = MemReporter(model)
    # Hand it our tensors rather than letting it scan the whole process with gc.
    reporter.device_mapping[torch.device("cpu")] = [*model.parameters(), *model.buffers(), x]
    reporter.get_stats()
    stats = reporter.device_tensor_stat[torch.device("cpu")]
    static = static_memory("resnet18", (1, 3, 32, 32), "fp32", False)
    assert sum(s[2] for s in stats) == static.tensors
    by_name = {s[0]: s[3] for s in stats}
    assert by_name["conv1.weight"] == 4 * 9408 * 4  # 4× the 37,632 bytes it holds
    assert sum(s[3] for s in stats) > 3 * static.bytes


def probe(group: GroupKey, scopes: list[list[str]], warm: bool = True):
    """measure_forward on a fresh eager model of the group (called once first when `warm`)."""
    model, x = prepare(build_model(group.model), make_input(group.input, 0), group)
    with torch.inference_mode():
        if warm:
            model(x)
        return measure_forward(group, model, x, lambda: model(x), scopes)


def test_cpu_peak_of_one_forward() -> None:
    group = GroupKey("resnet18", parse_input("1x3x64x64"), "cpu")
    forward = probe(group, [list(STAGES)])
    static = static_memory("resnet18", (1, 3, 64, 64), "fp32", False)
    assert forward.tool == "memray"
    assert forward.whole.resident == static.bytes
    assert forward.whole.peak == static.bytes + forward.whole.increase
    # conv1's output (64x32x32 float32) and bn1's output are alive together at some point
    assert forward.whole.increase >= 2 * 64 * 32 * 32 * 4
    assert list(forward.modules) == list(STAGES)
    assert forward.modules["conv1"].increase >= 64 * 32 * 32 * 4
    assert forward.modules["conv1"].peak is None  # mid-forward, only the increase is known on the CPU


def test_nested_tracker_degrades_to_not_measured(tmp_path: Path) -> None:
    group = GroupKey("resnet18", parse_input("1x3x32x32"), "cpu")
    with memray.Tracker(tmp_path / "outer.bin"):
        forward = probe(group, [["conv1"]])
    assert forward.whole.peak is None
    assert "another memray tracker is active" in forward.whole.note
    assert forward.modules["conv1"].increase is None


def test_memory_text_rows() -> None:
    group = GroupKey("resnet18", NAMED_INPUTS["cityscapes"], "cpu")
    report = MemoryReport(group, static_memory("resnet18", group.input.shape, "fp32", False), ForwardMemory("fake", Peak(100 * MIB, 50 * MIB)))
    lines = memory_text(report).splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("Allocated Memory (MiB)"))
    assert lines[header + 2].split() == ["68.63", "68.64", "11.690", "17.991", "150.00", "50.00"]
    assert any(line.split()[:3] == ["input", "input", "1x3x1024x2048"] for line in lines if line.strip())
    assert any(line.startswith("layer4.1.bn2.running_var ") for line in lines)


def test_the_probes_are_warm_and_the_cold_figures_were_not():
    """The first call of a module allocates what later calls reuse (oneDNN primitives, the allocator's first blocks):
    probed cold, conv1 and layer2 look bigger than they are. The runner probes after the warm-up."""
    group = GroupKey("resnet18", parse_input("1x3x128x128"), "cpu")
    cold, warm = probe(group, [["conv1", "layer2"]], warm=False), probe(group, [["conv1", "layer2"]])
    for module in ("conv1", "layer2"):
        assert warm.modules[module].increase < cold.modules[module].increase, module


def test_memory_files_are_named_by_the_whole_group():
    def named(group: GroupKey) -> str:
        return memory_file(MemoryReport(group, static_memory("resnet18", (1, 3, 8, 8), "fp32", False),
                                        ForwardMemory("fake", Peak(1, 1))))

    tiny = parse_input("1x3x64x64")
    assert named(GroupKey("resnet18", tiny, "cuda:1")) == "memory_reports/resnet18_1x3x64x64_cuda1.txt"
    assert named(GroupKey("resnet18", tiny, "cuda", "bf16", executor="cuda_graph")) == (
        "memory_reports/resnet18_1x3x64x64_cuda_bf16_cuda_graph.txt")
    assert named(GroupKey("resnet18", tiny, "cuda", executor="compile", compile_mode="max-autotune", fold_bn=True)) == (
        "memory_reports/resnet18_1x3x64x64_cuda_compile_max-autotune_fold_bn.txt")


def test_folded_batchnorm_is_what_is_resident():
    plain, folded = (static_memory("resnet18", (1, 3, 32, 32), "fp32", fold) for fold in (False, True))
    assert not any(".bn" in row.name or row.name.startswith("bn") for row in folded.rows)
    # Every BatchNorm's weight, bias, running mean and variance go; each folded convolution gains a bias.
    assert folded.params < plain.params and folded.bytes < plain.bytes


# --- one tracked pass: markers in memray's record stream -------------------------------------------------------------


def _record(kind: str, address: int, size: int = 0, tid: int = 1, python: bool = True):
    """One of memray's records: by default of thread 1, with a Python frame on its stack (the caller's are)."""
    from types import SimpleNamespace

    frames = [("forward", "model.py", 1)] if python else []
    return SimpleNamespace(allocator=int(memray.AllocatorType[kind]), address=address, size=size, tid=tid,
                           stack_trace=lambda max_stacks=None: frames[:max_stacks])


def _mark(code: int, address: int = 1, header: int = 33):
    from fixtures.memory import MARKER_BASE, MARKER_STRIDE

    return [_record("CALLOC", address, MARKER_BASE + MARKER_STRIDE * code + header), _record("FREE", address)]


def test_span_increases_reads_live_bytes_between_the_markers() -> None:
    from fixtures.memory import span_increases

    records = [
        _record("MALLOC", 90, 7),  # before the pass's start marker: live, but its span starts above it
        *_mark(0),  # the pass starts (its header size learned here)
        _record("MALLOC", 100, 1000),
        *_mark(2),  # module 0 starts with 1000 live (+7)
        _record("MALLOC", 101, 500),
        _record("FREE", 100),  # a free of what was live before the module: live falls
        *_mark(4),  # module 1 (nested in 0) starts
        _record("POSIX_MEMALIGN", 102, 3000),
        _record("FREE", 102),
        *_mark(5),  # module 1 ends: it peaked 3000 above its start
        _record("REALLOC", 101, 800),  # the same address again: 500 replaced by 800
        *_mark(3),  # module 0 ends
        _record("FREE", 555),  # a free of an address never seen: nothing
        *_mark(1),
    ]
    increases = span_increases(records, [0, 2, 4, 5, 3, 1])
    # The pass: 1000 + 500 - 1000 + 3000 = 3500 at its peak. Module 0: from 1000, peak 3500 -> 2500. Module 1: 3000.
    assert increases == {0: 3500, 2: 2500, 4: 3000}
    with pytest.raises(RuntimeError, match="lack the pass's markers from code 1"):
        span_increases(records[:-2], [0, 2, 4, 5, 3, 1])
    # A real allocation of a marker's size is not a marker unless it is the next one emitted.
    decoy = _mark(4, address=7)[:1]
    assert span_increases([*_mark(0), *decoy, *_mark(2), *_mark(3), *_mark(1)], [0, 2, 3, 1]) == {
        0: decoy[0].size, 2: 0}


def test_only_the_threads_that_run_the_forward_count() -> None:
    """Thread 1 emits the markers (the caller); thread 3 runs no Python (torch's intra-op pool): both count. Thread 2
    runs Python (execnet's thread, a user's): what it allocates, and frees, is its own, whatever span is open."""
    from fixtures.memory import span_increases

    records = [
        *_mark(0),
        _record("MALLOC", 100, 1000),
        *_mark(2),
        _record("MALLOC", 200, 50_000, tid=2),  # another Python thread, while module 0 runs
        _record("MALLOC", 300, 700, tid=3, python=False),  # an intra-op worker's buffer
        _record("FREE", 300),
        _record("MALLOC", 101, 400),
        _record("FREE", 200),
        _record("MALLOC", 201, 90_000, tid=2, python=False),  # the same thread inside native code: still not ours
        *_mark(3),
        _record("FREE", 201),
        *_mark(1),
    ]
    assert span_increases(records, [0, 2, 3, 1]) == {0: 1000 + 700, 2: 700}


def test_a_thread_allocating_during_a_forward_is_not_in_its_figures(tmp_path: Path) -> None:
    """A background thread allocates 64 MiB while layer1.0 runs (its conv2 waits until it has); the one tracked pass
    gives every module and the whole pass the figures of a pass without it."""
    import threading

    from fixtures.memory import memray_pass

    model = build_model("resnet18").eval()
    x = make_input(parse_input("1x3x64x64"), 0)
    go, done, leave = threading.Event(), threading.Event(), threading.Event()

    def background() -> None:
        while not leave.is_set():
            if go.wait(0.01):
                go.clear()
                held = bytearray(64 * MIB)
                done.set()
                leave.wait()
                del held

    def allocate_in_layer1_0(_module, _args) -> None:
        go.set()
        assert done.wait(10)
        done.clear()

    names = ["conv1", "layer1", "layer1.0", "layer2"]
    modules = {n: model.get_submodule(n) for n in names}
    with torch.inference_mode():
        model(x)
        alone = memray_pass(lambda: model(x), modules, tmp_path)
        thread = threading.Thread(target=background, name="background", daemon=True)
        thread.start()
        handle = model.layer1[0].conv2.register_forward_pre_hook(allocate_in_layer1_0)
        try:
            beside = memray_pass(lambda: model(x), modules, tmp_path)
        finally:
            handle.remove()
            leave.set()
            thread.join()
    assert beside[1]["layer1.0"] < 8 * MIB  # without the rule: 64 MiB more
    for name in names:
        assert abs(beside[1][name] - alone[1][name]) <= max(64 * 1024, 0.02 * alone[1][name]), name
    assert abs(beside[0] - alone[0]) <= max(64 * 1024, 0.02 * alone[0])


def test_one_tracked_pass_agrees_with_memray_and_with_a_tracker_per_module(tmp_path: Path) -> None:
    from fixtures.memory import memray_pass

    group = GroupKey("resnet18", parse_input("1x3x128x128"), "cpu")
    model, x = prepare(build_model(group.model), make_input(group.input, 0), group)
    names = [*STAGES, "layer1.0", "layer1.1", "layer3.0"]  # stages and blocks, nested
    with torch.inference_mode():
        model(x)
        # A forward read by memray itself: its peak is the one computed from its records (markers aside).
        path = tmp_path / "own.bin"
        with memray.Tracker(path, file_format=memray.FileFormat.ALL_ALLOCATIONS):
            model(x)
        own = memray.FileReader(path).metadata.peak_memory
        whole, modules = memray_pass(lambda: model(x), {n: model.get_submodule(n) for n in names}, tmp_path)
        # The earlier design: one tracker around each module, its peak what the module allocated.
        alone = {}
        for name in names:
            module = model.get_submodule(name)
            path = tmp_path / f"{name}.bin"

            def start(_module, _args, path=path):
                alone["tracker"] = memray.Tracker(path, file_format=memray.FileFormat.AGGREGATED_ALLOCATIONS)
                alone["tracker"].__enter__()

            def stop(_module, _args, _out, name=name, path=path):
                alone.pop("tracker").__exit__(None, None, None)
                alone[name] = memray.FileReader(path).metadata.peak_memory

            handles = [module.register_forward_pre_hook(start), module.register_forward_hook(stop)]
            model(x)
            for handle in handles:
                handle.remove()
    assert list(modules) == names
    # Two forwards never allocate quite alike (the dispatcher's small buffers): within 64 KiB or 2%.
    assert abs(whole - own) <= max(64 * 1024, 0.02 * own), (whole, own)
    for name in names:
        assert abs(modules[name] - alone[name]) <= max(64 * 1024, 0.02 * alone[name]), (name, modules[name], alone[name])
    assert modules["layer1"] >= modules["layer1.0"] > 0  # a stage holds its blocks' peaks
