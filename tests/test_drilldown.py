"""The drill-down: operator tables and the two clocks from synthetic traces (exact numbers), a real profiled run of a
tiny resnet18, the runner's one call after its timed loop, the terminal and report tables, and bad --bench-trace input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from fixtures.drilldown import (
    ClockCheck,
    DrillDown,
    DrillDownError,
    GroupProfile,
    ModuleProfile,
    OpTime,
    analyse_trace,
    clock_check,
    load_trace,
    prepare_trace_dir,
    whole_range,
)
from fixtures.inputs import parse_input
from fixtures.matrix import GroupKey, modules_for
from fixtures.render.drilldown import drilldown_lines, group_clock_check
from fixtures.report.tables import where_the_time_goes_rows
from fixtures.runner import GroupResult, GroupRunner, Samples
from fixtures.shapes import ModuleInfo
from fixtures.stages_and_blocks import STAGES, block_names
from fixtures.timers import FakeClock
from stubs import FAIL_RESNET34, group_record, plan

TICK = 2.0**-10
GROUP = GroupKey("resnet18", parse_input("1x3x64x64"), "cpu")
ALL = [*modules_for("resnet18", "model"), *modules_for("resnet18", "stage"), *modules_for("resnet18", "block")]


def _x(cat: str, name: str, ts: float, dur: float, tid: int = 1, **args: object) -> dict:
    return {"ph": "X", "cat": cat, "name": name, "pid": 1, "tid": tid, "ts": ts, "dur": dur, "args": args}


def _cpu_pass(t: float, extra: float, second_add: bool) -> list[dict]:
    """One pass of a synthetic CPU trace, starting at t µs; `extra` lengthens conv1's convolution."""
    events = [
        _x("user_annotation", "ProfilerStep#1", t, 1000),  # not a module range: ignored
        _x("user_annotation", "g forward", t + 10, 900),
        _x("user_annotation", "conv1", t + 20, 100 + extra),
        _x("cpu_op", "aten::conv2d", t + 22, 90 + extra),
        _x("cpu_op", "aten::convolution", t + 24, 80 + extra),
        _x("cpu_op", "aten::mkldnn_convolution", t + 30, 70 + extra),
        _x("cpu_op", "aten::empty", t + 31, 2),
        _x("cpu_op", "aten::other_thread", t + 50, 10, tid=2),  # another thread has no ranges: counted nowhere
        _x("user_annotation", "maxpool", t + 200, 50),
        _x("cpu_op", "aten::max_pool2d", t + 205, 40),
        _x("cpu_op", "aten::max_pool2d_with_indices", t + 206, 38),
        _x("user_annotation", "layer1", t + 300, 400),
        _x("user_annotation", "layer1.0", t + 310, 200),
        _x("cpu_op", "aten::add_", t + 320, 100),
        _x("cpu_op", "aten::relu_", t + 600, 60),  # in layer1, not in layer1.0
        _x("cpu_op", "aten::flatten", t + 800, 10),  # in the forward only
    ]
    if second_add:
        events.append(_x("cpu_op", "aten::add_", t + 450, 40))
    return events


CPU_TRACE = {
    "traceEvents": [
        {"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "python"}},  # metadata: not an X event
        *_cpu_pass(0, 10, True),
        *_cpu_pass(1000, -10, False),
        *_cpu_pass(2000, 0, True),
    ]
}
RANGES = {"g forward": "", "conv1": "conv1", "maxpool": "maxpool", "layer1": "layer1", "layer1.0": "layer1.0"}


def test_cpu_operator_table_from_a_synthetic_trace():
    profiles, clock = analyse_trace(CPU_TRACE, RANGES, "cpu")
    assert clock == "cpu range"
    assert set(profiles) == {"", "conv1", "maxpool", "layer1", "layer1.0"}
    conv1 = profiles["conv1"]
    assert conv1.range_ms == (0.11, 0.09, 0.1) and conv1.median_ms == 0.1
    # The operators of the median pass (the third here); self time = duration less the children's: mkldnn 70-2,
    # conv2d 90-80, convolution 80-70.
    assert conv1.ops == (
        OpTime("aten::mkldnn_convolution", 1, 0.068, 0.68),
        OpTime("aten::conv2d", 1, 0.01, 0.1),
        OpTime("aten::convolution", 1, 0.01, 0.1),
        OpTime("aten::empty", 1, 0.002, 0.02),
    )
    assert profiles["maxpool"].ops == (
        OpTime("aten::max_pool2d_with_indices", 1, 0.038, 0.76),
        OpTime("aten::max_pool2d", 1, 0.002, 0.04),
    )
    # Equal times in every pass (2, 1, 2 calls): the middle pass is the median one.
    assert profiles["layer1.0"].ops == (OpTime("aten::add_", 1, 0.1, 0.5),)
    # A range holds its nested ranges' operators too.
    assert profiles["layer1"].ops == (OpTime("aten::add_", 1, 0.1, 0.25), OpTime("aten::relu_", 1, 0.06, 0.15))
    whole = profiles[""]
    assert [op.name for op in whole.ops] == [
        "aten::add_", "aten::relu_", "aten::mkldnn_convolution", "aten::max_pool2d_with_indices", "aten::conv2d",
        "aten::convolution", "aten::flatten", "aten::empty", "aten::max_pool2d",
    ]
    assert whole.range_ms == (0.9, 0.9, 0.9)
    assert conv1.top(2) == [
        {"name": "aten::mkldnn_convolution", "calls": 1, "ms": 0.068, "share": 0.68},
        {"name": "aten::conv2d", "calls": 1, "ms": 0.01, "share": 0.1},
    ]


def _cuda_trace(device_ranges: bool) -> dict:
    events = [
        _x("user_annotation", "g forward", 0, 500),
        _x("user_annotation", "conv1", 10, 100),
        _x("cuda_runtime", "cudaLaunchKernel", 20, 5, correlation=1),
        _x("cuda_runtime", "cudaLaunchKernel", 60, 5, correlation=2),
        _x("cuda_driver", "cuLaunchKernel", 70, 5, correlation=4),
        _x("cuda_runtime", "cudaMemcpyAsync", 200, 5, correlation=3),  # after conv1: the forward's only
        _x("kernel", "sm90_xmma_fprop", 1000, 30, tid=7, correlation=1),
        _x("kernel", "bn_fw_inf", 1030, 10, tid=7, correlation=2),
        _x("kernel", "cudnn_generic", 1040, 5, tid=7, correlation=4),
        _x("gpu_memcpy", "Memcpy DtoD", 1100, 5, tid=7, correlation=3),
        _x("kernel", "unlaunched", 1200, 99, tid=7),  # no correlation: joined to nothing
    ]
    if device_ranges:
        events += [_x("gpu_user_annotation", "conv1", 1000, 50, tid=7),
                   _x("gpu_user_annotation", "g forward", 1000, 200, tid=7)]
    return {"traceEvents": events}


def test_cuda_kernel_table_joins_kernels_to_their_launches():
    for device_ranges in (True, False):  # Kineto's own device ranges are not read: the kernels' span is
        profiles, clock = analyse_trace(_cuda_trace(device_ranges), {"g forward": "", "conv1": "conv1"}, "cuda")
        assert clock == "gpu span"
        # conv1's kernels run 1000 → 1045 µs on the device.
        assert profiles["conv1"].range_ms == (0.045,)
        assert profiles["conv1"].ops == (
            OpTime("sm90_xmma_fprop", 1, 0.03, 30 / 45),
            OpTime("bn_fw_inf", 1, 0.01, 10 / 45),
            OpTime("cudnn_generic", 1, 0.005, 5 / 45),
        )
        # The forward's: conv1's and the copy, 1000 → 1105 µs (the gap before the copy included: it is GPU time the
        # held passes measure too).
        assert profiles[""].range_ms == (0.105,)
        assert [op.name for op in profiles[""].ops] == ["sm90_xmma_fprop", "bn_fw_inf", "Memcpy DtoD", "cudnn_generic"]
        assert profiles[""].ops[2] == OpTime("Memcpy DtoD", 1, 0.005, 5 / 105)


def test_an_outer_range_gets_the_kernels_of_the_ranges_inside_it():
    """In an all-scopes run layer1 holds layer1.0's range: its span covers layer1.0's kernels and its own (Kineto's
    device ranges give each kernel to the innermost range, which left layer1 and the forward without one)."""
    trace = {"traceEvents": [
        _x("user_annotation", "g forward", 0, 500),
        _x("user_annotation", "layer1", 10, 300),
        _x("user_annotation", "layer1.0", 20, 100),
        _x("cuda_runtime", "cudaLaunchKernel", 30, 5, correlation=1),  # in layer1.0 (and layer1, the forward)
        _x("cuda_runtime", "cudaLaunchKernel", 200, 5, correlation=2),  # in layer1, after layer1.0
        _x("kernel", "conv_a", 1000, 40, tid=7, correlation=1),
        _x("kernel", "relu_b", 1060, 10, tid=7, correlation=2),
        _x("gpu_user_annotation", "layer1.0", 1000, 40, tid=7),  # Kineto: the innermost range only
    ]}
    profiles, _ = analyse_trace(trace, {"g forward": "", "layer1": "layer1", "layer1.0": "layer1.0"}, "cuda")
    assert profiles["layer1.0"].range_ms == (0.04,)
    assert profiles["layer1"].range_ms == (0.07,) and profiles[""].range_ms == (0.07,)
    assert [op.name for op in profiles["layer1"].ops] == ["conv_a", "relu_b"]


def test_cuda_passes_are_told_apart_by_their_launches():
    """Each occurrence of a range is one pass; its kernels are those its launches started."""
    trace = {"traceEvents": [
        _x("user_annotation", "conv1", 10, 100), _x("cuda_runtime", "cudaLaunchKernel", 20, 5, correlation=1),
        _x("user_annotation", "conv1", 510, 100), _x("cuda_runtime", "cudaLaunchKernel", 520, 5, correlation=2),
        _x("kernel", "k_b", 2000, 20, tid=7, correlation=2), _x("kernel", "k_a", 1000, 40, tid=7, correlation=1),
    ]}
    profile = analyse_trace(trace, {"conv1": "conv1"}, "cuda")[0]["conv1"]
    assert profile.range_ms == (0.04, 0.02)
    assert profile.ops == (OpTime("k_b", 1, 0.02, 1.0),)  # the lower of two passes is the second one


def test_the_two_clocks_compare_gpu_time_with_gpu_time():
    """On a GPU the profiler's kernel span is set against the suite's GPU time (gpu_ms), never the latency."""
    ms = 2.0**-10
    samples = {"": Samples([8 * ms] * 3, [ms] * 3, [4 * ms] * 3), "conv1": Samples([2 * ms] * 3, [ms] * 3, [ms] * 3)}
    info = dict.fromkeys(samples, ModuleInfo((1,), (1,), 0))
    profile = GroupProfile(passes=3, clock="gpu span",
                           modules={"conv1": ModuleProfile("conv1", (ms * 1e3,), ())})
    record = group_record(GroupResult(GroupKey("resnet18", parse_input("1x3x64x64"), "cuda"), "cuda_event", 25, 3,
                                      samples, info, {"stage": [8 * ms] * 3}, 1.0, profile=profile))
    assert group_clock_check(record) == ClockCheck({"conv1": 1.0}, 1.0)  # 1 ms of kernels over 1 ms of GPU time
    rows = where_the_time_goes_rows([{"module": "conv1", "scope": "stage", "p50_ms": 2 * ms * 1e3,
                                      "gpu_ms": ms * 1e3, "profiler_ms": ms * 1e3, "top_ops": [
                                          {"name": "k", "calls": 1, "ms": ms * 1e3, "share": 1.0}]}])
    assert rows[0][2:5] == (f"{ms * 1e3:.3f}", f"{ms * 1e3:.3f}", "1.000")


def test_two_clocks_ratio_per_stage_and_summed():
    profiles = {
        "conv1": ModuleProfile("conv1", (1.0, 1.25, 0.75), ()),
        "maxpool": ModuleProfile("maxpool", (0.5,), ()),
        "layer1": ModuleProfile("layer1", (3.0,), ()),
        "layer1.0": ModuleProfile("layer1.0", (9.0,), ()),  # a block: not a stage, left out
    }
    medians = {"conv1": 1.0, "maxpool": 0.625, "layer1": 4.0, "fc": 1.0, "layer1.0": 1.0}  # fc: not profiled
    assert clock_check(profiles, medians, STAGES) == ClockCheck({"conv1": 1.0, "maxpool": 0.8, "layer1": 0.75}, 0.8)
    assert clock_check({}, medians, STAGES) == ClockCheck({}, None)


def test_self_times_agree_with_torch_key_averages(tmp_path):
    """Our self times come from the trace's nesting; torch computes its own from its event tree: they must agree."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 15 * 15, 4))
    x = torch.randn(1, 3, 32, 32)
    with torch.inference_mode(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        with torch.profiler.record_function("all"):
            model(x)
    path = tmp_path / "t.pt.trace.json"
    prof.export_chrome_trace(str(path))
    ours = {op.name: op for op in analyse_trace(load_trace(path), {"all": "all"})[0]["all"].ops}
    theirs = {e.key: e for e in prof.key_averages() if e.key != "all"}
    assert set(ours) == set(theirs) and "aten::max_pool2d_with_indices" in ours
    for name, event in theirs.items():
        assert ours[name].calls == event.count, name
        assert ours[name].ms == pytest.approx(event.self_cpu_time_total / 1e3, abs=2e-3), name


def test_real_drill_down_of_a_tiny_resnet18(tmp_path):
    """A profiled run after the timed passes: the trace file, a range per module, conv and max-pool operators, and
    samples identical to a run without it."""
    drill_plan = plan(warmup=0, rounds=1, drilldown=DrillDown(tmp_path, passes=1, nvtx=False))
    traced = GroupRunner(drill_plan, clock_factory=lambda device: FakeClock((TICK,))).run(GROUP, ALL)
    plain = GroupRunner(plan(warmup=0, rounds=1), clock_factory=lambda device: FakeClock((TICK,))).run(GROUP, ALL)
    assert traced.rounds == plain.rounds == 1
    assert {k: v.device_s for k, v in traced.samples.items()} == {k: v.device_s for k, v in plain.samples.items()}
    assert plain.profile is None

    profile = traced.profile
    assert profile.error is None and profile.clock == "cpu range" and profile.passes == 1
    path = tmp_path / "resnet18-1x3x64x64-cpu.pt.trace.json"
    assert profile.trace_path == path and profile.trace_bytes == path.stat().st_size > 0
    trace = json.loads(path.read_text())
    ranges = [e["name"] for e in trace["traceEvents"] if e.get("cat") == "user_annotation"]
    for name in [whole_range(GROUP.id), *STAGES, *block_names("resnet18")]:
        assert ranges.count(name) == 1, name  # one profiled pass (the profiled warm-up pass is discarded)
    assert set(profile.modules) == set(ALL)
    assert "conv" in profile.modules["conv1"].ops[0].name
    assert "max_pool" in profile.modules["maxpool"].ops[0].name
    assert all(0 < op.share <= 1 for op in profile.modules["layer1"].ops)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_drill_down_tables_kernels_with_nvtx_ranges(tmp_path):
    group = GroupKey("resnet18", parse_input("1x3x64x64"), "cuda")
    drill_plan = plan(warmup=3, rounds=3, drilldown=DrillDown(tmp_path, passes=2, nvtx=True))
    result = GroupRunner(drill_plan).run(group, ALL)
    profile = result.profile
    assert profile.error is None and profile.nvtx and profile.clock in ("gpu range", "kernel sum")
    assert set(profile.modules) == set(ALL) and all(len(m.range_ms) == 2 for m in profile.modules.values())
    assert profile.modules["conv1"].ops and all(op.calls >= 1 and op.ms > 0 for op in profile.modules["conv1"].ops)
    assert profile.modules["layer1"].median_ms > 0 and result.samples["layer1"].device_s[0] > 0


def test_a_failing_drill_down_keeps_the_timed_results(tmp_path):
    def broken(*args):
        raise RuntimeError("profiler exploded\nsecond line")

    from fixtures.drilldown import drill_down

    stale = tmp_path / "g.pt.trace.json"
    stale.write_text(json.dumps(CPU_TRACE))  # an earlier run's trace: never to be read back as this one's
    profile = drill_down(DrillDown(tmp_path, 3, False), "g", "cpu", nn.Identity(), lambda: broken(), [])
    assert profile.error == "RuntimeError: profiler exploded" and profile.modules == {} and profile.wall_s > 0
    assert profile.trace_path is None and not stale.exists()


def test_the_drill_down_runs_once_after_the_timed_loop():
    clock = FakeClock((TICK,))
    seen = []

    def fake(drill, group_id, device, model, forward, parts):
        seen.append((clock._count, drill, group_id, device, parts))
        forward()  # the warm, timed model is handed over
        return GroupProfile(passes=drill.passes, clock="fake")

    drill_plan = plan(warmup=0, rounds=2, drilldown=DrillDown(None, passes=2, nvtx=True))
    result = GroupRunner(drill_plan, clock_factory=lambda device: clock, drill_down=fake).run(GROUP, ALL)
    # Once, after all 2 rounds x (2 clean + 22 stage + 18 block) marks of the timed passes.
    assert seen == [(2 * (2 + 22 + 18), drill_plan.drilldown, GROUP.id, "cpu", ALL[1:])]
    assert result.profile.clock == "fake"
    assert GroupRunner(plan(warmup=0, rounds=1), clock_factory=lambda d: FakeClock(), drill_down=fake).run(
        GROUP, [""]).profile is None and len(seen) == 1


def _result(profile: GroupProfile | None):
    ms = 2.0**-10  # seconds that are exact in binary: 0.9765625 ms
    samples = {"": Samples([8 * ms] * 3, [8 * ms] * 3), "conv1": Samples([ms] * 3, [ms] * 3),
               "maxpool": Samples([2 * ms] * 3, [2 * ms] * 3)}
    info = dict.fromkeys(samples, ModuleInfo((1,), (1,), 0))
    return group_record(GroupResult(GROUP, "perf_counter", 2, 3, samples, info, [8 * ms] * 3, 12.0, profile=profile))


def test_terminal_lines_show_the_two_clocks_and_the_slowest_modules():
    unit = 0.9765625
    profile = GroupProfile(
        passes=3, clock="cpu range", wall_s=4.25, trace_path=Path("traces/resnet18-1x3x64x64-cpu.pt.trace.json"),
        trace_bytes=3 * 2**20,
        modules={
            "": ModuleProfile("", (8 * unit,), (OpTime("aten::mkldnn_convolution", 20, 5.0, 0.64),)),
            "conv1": ModuleProfile("conv1", (unit,), (OpTime("aten::mkldnn_convolution", 1, 0.9, 0.92),
                                                      OpTime("aten::empty", 2, 0.004, 0.004))),
            # The profiler (on a bad pass, say) puts maxpool below conv1; the suite's median orders the modules.
            "maxpool": ModuleProfile("maxpool", (0.5 * unit,), (OpTime("aten::max_pool2d_with_indices", 1, 0.4, 0.8),)),
        },
    )
    lines = drilldown_lines([_result(profile)])
    assert lines[0] == ("drill-down: 3 passes per group after the timed ones; traces in traces/; it added 4.2 s in "
                        "all (the timed statistics above don't include it)")
    two_clocks = lines[lines.index("") + 4].split()  # after the blank line: title, header, rule, the group's row
    assert two_clocks == ["resnet18-1x3x64x64-cpu", "cpu", "range", "/", "perf_counter", "1.000", "0.250!", "0.500!",
                          "4.2", "resnet18-1x3x64x64-cpu.pt.trace.json", "(3.0", "MiB)"]
    slowest = [line for line in lines if line.startswith("resnet18-1x3x64x64-cpu  ")][1:]
    assert [line.split()[1] for line in slowest] == ["maxpool", "conv1"]  # by the suite's median, whole model apart
    assert slowest[1].endswith("aten::mkldnn_convolution ×1 0.900 ms (92.0%); aten::empty ×2 0.004 ms (0.4%)")
    failed = GroupProfile(passes=3, clock="-", error="RuntimeError: disk full")
    assert "  resnet18-1x3x64x64-cpu: drill-down failed, no operator table: RuntimeError: disk full" in drilldown_lines(
        [_result(failed)])
    assert drilldown_lines([_result(None)]) == []


def test_where_the_time_goes_rows_from_extra_info():
    conv = {"name": "aten::mkldnn_convolution", "calls": 1, "ms": 120.25, "share": 0.955}
    extras = [
        {"module": "", "scope": "model", "p50_ms": 1000.0, "profiler_ms": 1010.0, "top_ops": [conv]},
        {"module": "conv1", "scope": "stage", "p50_ms": 125.0, "profiler_ms": 100.0,
         "top_ops": [conv, {"name": "aten::empty", "calls": 2, "ms": 0.0125, "share": 0.0001}]},
        {"module": "bn1", "scope": "stage", "p50_ms": 50.0},  # not traced: no row
    ]
    assert where_the_time_goes_rows(extras) == [
        ("(whole model)", "model", "1000.000", "1010.000", "1.010", "aten::mkldnn_convolution ×1 120.2 ms (95.5%)"),
        ("conv1", "stage", "125.000", "100.000", "0.800!",
         "aten::mkldnn_convolution ×1 120.2 ms (95.5%); aten::empty ×2 0.013 ms (0.0%)"),
    ]
    assert where_the_time_goes_rows(extras[2:]) == []


def test_a_large_trace_is_gzipped_and_still_read(tmp_path, monkeypatch):
    from fixtures import drilldown

    path = tmp_path / "g.pt.trace.json"
    path.write_text(json.dumps(CPU_TRACE))
    assert drilldown._maybe_compress(path) == (path, path.stat().st_size)  # small: kept as it is
    monkeypatch.setattr(drilldown, "GZIP_ABOVE_BYTES", 10)
    packed, size = drilldown._maybe_compress(path)
    assert packed == tmp_path / "g.pt.trace.json.gz" and size == packed.stat().st_size and not path.exists()
    assert load_trace(packed) == CPU_TRACE


def test_trace_dir_checks(tmp_path):
    from fixtures.options import parse_trace_dir

    afile = tmp_path / "afile"
    afile.write_text("x")
    assert parse_trace_dir("") is None and parse_trace_dir(str(tmp_path / "new")) == tmp_path / "new"
    with pytest.raises(Exception, match="exists and is not a folder"):
        parse_trace_dir(str(afile))
    prepare_trace_dir(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir() and list((tmp_path / "a" / "b").iterdir()) == []
    with pytest.raises(DrillDownError, match=r"^--bench-trace '.*afile/sub' can't be used: Not a directory$"):
        prepare_trace_dir(afile / "sub")


# --- the plugin, end to end --------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
TINY = ("--bench-devices", "cpu", "--bench-inputs", "1x3x64x64", "--bench-rounds", "2")


@pytest.fixture
def suite(pytester, monkeypatch):
    """The suite's entry points in a temporary directory; `run` runs pytest in a subprocess, `inline` in this process
    (cheap: for usage errors, which stop before any CUDA state or measurement)."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    for name in ("pytest.ini", "conftest.py"):
        (pytester.path / name).write_text((ROOT / name).read_text())
    (pytester.path / "benchmarks").mkdir()
    (pytester.path / "benchmarks" / "test_latency.py").write_text((ROOT / "benchmarks" / "test_latency.py").read_text())

    class Suite:
        path = pytester.path

        @staticmethod
        def run(*args):
            return pytester.runpytest_subprocess("benchmarks/test_latency.py", "-p", "no:cacheprovider", *args)

        @staticmethod
        def inline(*args):
            return pytester.runpytest_inprocess("benchmarks/test_latency.py", "-p", "no:cacheprovider", *args)

    return Suite


def test_traced_run_writes_the_trace_and_top_ops_and_a_failing_group_fails_alone(suite):
    """One run: resnet34's group fails (injected), resnet18's is traced; its rounds are --bench-rounds, untouched.
    (Stages and blocks only: the whole-model case would add its memory probe, which this test doesn't need.)"""
    (suite.path / "conftest.py").write_text(
        (suite.path / "conftest.py").read_text()
        + FAIL_RESNET34
    )
    result = suite.run(*TINY, "--bench-models", "resnet34,resnet18", "--bench-trace", "out/traces", "--bench-warmup", "0",
                       "--bench-threads", "1", "--bench-trace-passes", "2", "--bench-scopes", "stage,block",
                       "--benchmark-json=out.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "*resnet34-1x3x64x64-cpu could not be measured: RuntimeError: CUDA out of memory*",
        "*drill-down: 2 passes per group after the timed ones; traces in out/traces/; it added * s in all*",
        "two clocks: the profiler's time of each stage range*",
        "group * clocks * conv1 * bn1 * fc * stage sum * trace s * trace",
        "resnet18-1x3x64x64-cpu * cpu range / perf_counter * resnet18-1x3x64x64-cpu.pt.trace.json (* MiB)",
        "where the time goes: the 5 slowest timed modules of each group (-v: all)*",
        "*26 failed, 18 passed*",
    ])
    traces = sorted(p.name for p in (suite.path / "out" / "traces").iterdir())
    assert traces == ["resnet18-1x3x64x64-cpu.pt.trace.json"]
    trace = json.loads((suite.path / "out" / "traces" / traces[0]).read_text())
    ranges = [e["name"] for e in trace["traceEvents"] if e.get("cat") == "user_annotation"]
    assert all(ranges.count(name) == 2 for name in [*STAGES, *block_names("resnet18")])

    benches = {b["extra_info"]["module"]: b for b in json.loads((suite.path / "out.json").read_text())["benchmarks"]}
    assert len(benches) == 18 and {b["group"] for b in benches.values()} == {"resnet18-1x3x64x64-cpu"}
    for bench in benches.values():
        assert bench["stats"]["rounds"] == 2  # the timed rounds, as without tracing
        info = bench["extra_info"]
        assert 1 <= len(info["top_ops"]) <= 5 and set(info["top_ops"][0]) == {"name", "calls", "ms", "share"}
        assert info["profiler_ms"] > 0 and info["trace"] == "out/traces/resnet18-1x3x64x64-cpu.pt.trace.json"
    assert "conv" in benches["conv1"]["extra_info"]["top_ops"][0]["name"]
    assert "max_pool" in benches["maxpool"]["extra_info"]["top_ops"][0]["name"]


def test_bad_trace_values_are_one_line_usage_errors(suite):
    (suite.path / "afile").write_text("not a folder")
    for args, line in [
        (("--bench-trace", "afile"), "*argument --bench-trace: trace dir 'afile' exists and is not a folder"),
        (("--bench-trace", "afile/traces"), "ERROR: --bench-trace 'afile/traces' can't be used: Not a directory"),
        (("--bench-trace-passes", "0"), "*trace passes must be an integer >= 1, not '0'"),
    ]:
        result = suite.inline(*TINY, *args, "--collect-only")  # the checks come first, before collection
        assert result.ret == pytest.ExitCode.USAGE_ERROR, args
        result.stderr.fnmatch_lines([line])
    ini = suite.path / "pytest.ini"
    ini.write_text(ini.read_text() + "bench_trace = afile\n")
    result = suite.inline(*TINY, "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: ini option bench_trace: trace dir 'afile' exists and is not a folder"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_nvtx_without_cuda_is_a_usage_error(suite):
    result = suite.inline(*TINY, "--bench-nvtx", "on", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --bench-nvtx on needs CUDA: torch.cuda.is_available() is False on this machine"])
