"""Each group stands alone: compile groups compile from a clean state, warm-up covers what an executor needs, nothing
of a group outlives it, and a failed group (an out-of-memory error, a sticky CUDA error) fails only what it must."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

import fixtures.runner as runner_module
from fixtures.inputs import parse_input
from fixtures.matrix import CaseSpec, GroupKey
from fixtures.memory import not_measured
from fixtures.modes import Executor, effective_warmup, min_warmup
from fixtures.options import Settings
from fixtures.render.terminal import ProgressLines
from fixtures.runner import GroupResult, GroupRunner, Plan
from fixtures.session import ProfileSession
from fixtures.timers import FakeClock
from stubs import ResNetStub
from stubs import plan as make_plan
from stubs import settings as default_settings

TINY = parse_input("1x3x64x64")



class CountingBackend:
    """A torch.compile backend that counts compilations and calls of the compiled graph (and compiles nothing)."""

    def __init__(self) -> None:
        self.compiles = 0
        self.calls = 0

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: list, **kwargs: object):
        self.compiles += 1

        def compiled(*args: object) -> object:
            self.calls += 1
            return gm.forward(*args)

        return compiled


def no_probe(group, model, x, forward, scopes):
    return not_measured("not probed in this test", [m for names in scopes for m in names])


def tiny_runner(backend=None, forward_memory=no_probe, **plan) -> GroupRunner:
    plan = {"warmup": 0, "rounds": 1, **plan}
    if backend is not None:
        plan["compile_backend"] = backend
    return GroupRunner(make_plan(**plan), clock_factory=lambda device: FakeClock(),
                       model_factory=lambda name: ResNetStub(), forward_memory=forward_memory)


def test_every_compile_group_compiles_its_own_graph_past_the_recompile_limit():
    """12 configurations of one forward code object: without a clean state dynamo stops compiling after 8 and
    the rest run eager; a configuration seen before reuses the cache. Here each group compiles once, in its warm-up."""
    assert torch._dynamo.config.recompile_limit == 8  # what the test reproduces
    backend = CountingBackend()
    wide = parse_input("1x3x72x72")
    groups = [
        GroupKey("resnet18", size, "cpu", dtype, memory_format, "compile")
        for size in (TINY, wide)
        for dtype in ("fp32", "bf16", "fp16")
        for memory_format in ("contiguous", "channels_last")
    ]
    groups = groups[:9] + groups[:3]  # 9 configurations (one past the limit), then 3 seen before
    assert len(groups) == 12
    for number, group in enumerate(groups, 1):
        result = tiny_runner(backend).run(group, [""])
        assert backend.compiles == number, f"group {number} ({group.id}) was not compiled"
        # The compiled graph, not eager, ran the timed pass; compile_s timed this group's compilation.
        assert backend.calls == 3 * number  # 2 warm-up calls (the compiling one included) + 1 round
        assert result.compile_s is not None and result.compile_s > 0
        assert result.warmup == 2


def test_a_compile_that_produces_no_graph_fails_the_group_instead_of_timing_eager():
    # recompile_limit 0: dynamo refuses every frame and runs it eager, with a log line only.
    with torch._dynamo.config.patch(recompile_limit=0), pytest.raises(RuntimeError, match="dynamo compiled no graph"):
        tiny_runner(CountingBackend()).run(GroupKey("resnet18", TINY, "cpu", executor="compile"), [""])


def test_warm_up_covers_what_each_executor_needs():
    assert [min_warmup(e, m)[0] for e, m in [("eager", "default"), ("compile", "default"),
                                             ("compile", "reduce-overhead"), ("compile", "max-autotune"),
                                             ("cuda_graph", "default")]] == [0, 2, 3, 3, 3]
    assert effective_warmup(25, "compile", "reduce-overhead") == 25 and effective_warmup(0, "eager", "default") == 0
    # --bench-warmup 0 under reduce-overhead: compile, record and replay before the first timed call (on a CPU the
    # cudagraph trees are skipped, but the calls are made all the same).
    backend = CountingBackend()
    group = GroupKey("resnet18", TINY, "cpu", executor="compile", compile_mode="reduce-overhead")
    result = tiny_runner(backend, rounds=2).run(group, [""])
    assert (result.warmup, backend.calls) == (3, 3 + 2)
    settings = default_settings(models=("resnet18",), inputs=(TINY,), devices=("cpu",), scopes=("model",),
                                executors=("compile",), compile_mode="reduce-overhead", warmup=0, rounds=1)
    lines: list[str] = []
    session = ProfileSession(settings, runner_factory=lambda plan: tiny_runner(CountingBackend()),
                             progress=ProgressLines(lines.append, "reduce-overhead"))
    session.measure(CaseSpec(group, "model"))
    assert lines[1] == ("measuring resnet18-1x3x64x64-cpu-compile-reduce-overhead: 1 cases, warm-up 3 (not 0: compile "
                        "reduce-overhead needs 3 warm-up calls (compile and warm up, record the CUDA graph, replay))")
    wall = session.records[group].result.wall_s
    assert lines[::2] == ["memory of resnet18-1x3x64x64-cpu-compile-reduce-overhead: 1 forward pass",
                          f"measured resnet18-1x3x64x64-cpu-compile-reduce-overhead: 1 rounds in {wall:.1f} s"]


def test_the_compiled_executor_holds_no_reference_cycle():
    """`lambda: compiled(self.x)` was a cycle through the executor: the model stayed alive until a full collection."""
    model, x = ResNetStub(), torch.randn(1, 3, 64, 64)
    refs = weakref.ref(model), weakref.ref(x)
    executor = Executor(model, x, "compile", "default", CountingBackend())
    gc.disable()
    try:
        with torch.inference_mode():
            executor.warm_up(0)
        del model, x, executor
        torch._dynamo.reset()  # dynamo's caches hold the frame's guards until reset (runner.release does it)
        assert [ref() for ref in refs] == [None, None]
    finally:
        gc.enable()


@pytest.mark.parametrize("executor", ["eager", "compile"])  # the executors that run on a CPU (cuda_graph: below)
def test_nothing_of_a_group_remains_after_it(monkeypatch, executor):
    kept: list[weakref.ref] = []
    real_prepare = runner_module.prepare

    def prepare(*args, **kwargs):
        model, x = real_prepare(*args, **kwargs)
        kept.extend((weakref.ref(model), weakref.ref(x)))
        return model, x

    monkeypatch.setattr(runner_module, "prepare", prepare)
    group = GroupKey("resnet18", TINY, "cpu", executor=executor)
    # Under eager, the instrumented pass's hooks too (on a stage and a block).
    tiny_runner(CountingBackend()).run(group, ["", "conv1", "layer1.0"] if executor == "eager" else [""])
    assert len(kept) == 2 and [ref() for ref in kept] == [None, None]  # no gc.collect() here: the runner did it


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("executor", ["eager", "cuda_graph", "compile"])
def test_cuda_groups_leave_no_memory_behind(executor):
    """After a group, allocated and reserved memory are no higher than before it (cuBLAS workspaces of side streams,
    graph pools, cudagraph trees and cycles included): k graph groups used to leave 32 MiB each on Hopper."""
    torch.cuda.synchronize()
    allocated, reserved = torch.cuda.memory_allocated(), torch.cuda.memory_reserved()
    group = GroupKey("resnet18", TINY, "cuda", "bf16", "channels_last", executor)
    for _ in range(2):
        GroupRunner(make_plan("cuda", warmup=3, rounds=3)).run(group, [""])
        assert torch.cuda.memory_allocated() <= allocated
        assert torch.cuda.memory_reserved() <= reserved + 2**20  # the cache was emptied


# --- faults --------------------------------------------------------------------------------------------------------


def settings(devices=("cpu", "cuda")) -> Settings:
    return default_settings(models=("resnet18",), inputs=(TINY,), devices=devices, scopes=("model",), warmup=0,
                            rounds=1)


class FailingRunner:
    """Fails CUDA groups with `error`, holding a large activation in a deeper frame, as an out-of-memory error does."""

    runs: list[str] = []
    activations: list[weakref.ref] = []

    def __init__(self, plan: Plan, error: Exception) -> None:
        self.error = error

    def run(self, group: GroupKey, modules: list[str], memory_scopes=None):
        FailingRunner.runs.append(group.id)
        if group.device == "cpu":
            return tiny_runner().run(group, modules, memory_scopes)
        return self._forward(torch.zeros(256, 1024))

    def _forward(self, activation: torch.Tensor):
        FailingRunner.activations.append(weakref.ref(activation))
        raise self.error


def session_with(error: Exception, context_error=lambda device: None) -> ProfileSession:
    FailingRunner.runs, FailingRunner.activations = [], []
    return ProfileSession(
        settings(),
        runner_factory=lambda plan: FailingRunner(plan, error),
        context_error=context_error,
    )


def test_a_failed_group_releases_its_frames_and_fails_with_one_line():
    session = session_with(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB\nmore detail"))
    case = CaseSpec(GroupKey("resnet18", TINY, "cuda"), "model")
    with pytest.raises(pytest.fail.Exception) as failure:
        session.measure(case)
    assert str(failure.value) == (
        "resnet18-1x3x64x64-cuda could not be measured: OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 GiB"
    )
    assert failure.value.__context__ is None and not failure.value.pytrace  # nothing chained, no traceback shown
    # The activation the failing frame held is gone while pytest still holds the failure (no collection needed).
    assert FailingRunner.activations[0]() is None
    # The group's other cases fail with the same line, without running it again; the CUDA context is fine: the next
    # CUDA group runs.
    with pytest.raises(pytest.fail.Exception, match="OutOfMemoryError"):
        session.measure(CaseSpec(case.group, "stage", "conv1"))
    with pytest.raises(pytest.fail.Exception):
        session.measure(CaseSpec(GroupKey("resnet34", TINY, "cuda"), "model"))
    assert FailingRunner.runs == ["resnet18-1x3x64x64-cuda", "resnet34-1x3x64x64-cuda"]
    assert session.cuda_fault is None


def test_a_sticky_cuda_error_fails_the_later_cuda_groups_at_once_and_spares_the_cpu_groups():
    illegal = "AcceleratorError: CUDA error: an illegal memory access was encountered"
    probed: list[str] = []

    def context_error(device: str) -> str | None:
        probed.append(device)
        return illegal

    session = session_with(RuntimeError("CUDA error: an illegal memory access was encountered"), context_error)
    with pytest.raises(pytest.fail.Exception, match="RuntimeError: CUDA error: an illegal memory access"):
        session.measure(CaseSpec(GroupKey("resnet18", TINY, "cuda"), "model"))
    assert probed == ["cuda"] and session.cuda_fault == ("resnet18-1x3x64x64-cuda", illegal)
    # A later CUDA group (any cuda device) fails at once with one line naming the first error; it never runs.
    with pytest.raises(pytest.fail.Exception) as failure:
        session.measure(CaseSpec(GroupKey("resnet34", TINY, "cuda:1"), "model"))
    assert str(failure.value) == (
        "resnet34-1x3x64x64-cuda1 could not be measured: not run: CUDA is unusable in this process since "
        f"resnet18-1x3x64x64-cuda failed ({illegal})"
    )
    # A CPU group still runs and is measured; its memory report is still made.
    measurement = session.measure(CaseSpec(GroupKey("resnet18", TINY, "cpu"), "model"))
    assert len(measurement.device_s) == 1 and measurement.context.memory is not None
    assert FailingRunner.runs == ["resnet18-1x3x64x64-cuda", "resnet18-1x3x64x64-cpu"]
    # The memory probe of a CUDA group is not attempted either.
    report = session.memory(GroupKey("resnet50", TINY, "cuda"))
    assert report.forward.whole.note.startswith("not run: CUDA is unusable in this process since resnet18-1x3x64x64-cuda")


def test_a_failing_memory_probe_leaves_its_figures_not_measured_and_the_rounds_run():
    held: list[weakref.ref] = []

    def probe(group, model, x, forward, scopes):
        activation = torch.zeros(256, 1024)
        held.append(weakref.ref(activation))
        raise RuntimeError("CUDA error: an illegal memory access was encountered\nmore")

    result = tiny_runner(forward_memory=probe, rounds=2).run(GroupKey("resnet18", TINY, "cpu"), ["", "conv1"], [["conv1"]])
    assert result.memory.failed and result.memory.whole.note == (
        "RuntimeError: CUDA error: an illegal memory access was encountered")
    assert result.memory.modules["conv1"].peak is None
    assert held[0]() is None  # nothing of the failed probe outlives it (no collection needed)
    assert result.rounds == 2 and len(result.samples[""].device_s) == 2  # the timed passes ran all the same


class ProbeFailingRunner:
    """A CUDA group's run whose memory probe raised (as GroupRunner reports it), its rounds not asked for."""

    runs: list[str] = []

    def __init__(self, plan: Plan) -> None:
        pass

    def run(self, group: GroupKey, modules: list[str], memory_scopes=None):
        ProbeFailingRunner.runs.append(group.id)
        memory = not_measured("RuntimeError: CUDA error: an illegal memory access was encountered", [], failed=True)
        return GroupResult(group, "cuda_event", 0, 0, {}, {}, {}, 0.0, memory=memory)


def test_a_sticky_error_in_a_memory_probe_is_contained_like_a_group_failure():
    illegal = "AcceleratorError: CUDA error: an illegal memory access was encountered"
    session = ProfileSession(settings(), runner_factory=ProbeFailingRunner, context_error=lambda device: illegal)
    report = session.memory(GroupKey("resnet18", TINY, "cuda"))
    assert report.forward.whole.note == "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert session.cuda_fault == ("the memory probe of resnet18-1x3x64x64-cuda", illegal)
    ProbeFailingRunner.runs = []
    with pytest.raises(pytest.fail.Exception) as failure:
        session.measure(CaseSpec(GroupKey("resnet34", TINY, "cuda"), "model"))
    assert str(failure.value).endswith(
        f"not run: CUDA is unusable in this process since the memory probe of resnet18-1x3x64x64-cuda failed ({illegal})"
    )
    assert ProbeFailingRunner.runs == []
