"""The measurement record: percentiles against an independent computation, and the hand-over to pytest-benchmark."""

from __future__ import annotations

import json
import math

from fixtures.matrix import CaseSpec, GroupKey
from fixtures.measurement import Measurement
from fixtures.runner import ModuleInfo
from fixtures.zoo import parse_input

SAMPLES = (0.004, 0.001, 0.003, 0.002, 0.010, 0.005, 0.006, 0.007, 0.008, 0.009)


def make(samples=SAMPLES, size="2x3x64x64"):
    spec = CaseSpec(GroupKey("resnet18", parse_input(size), "cpu"), "block", "layer3.1")
    return Measurement(
        spec=spec,
        device_s=samples,
        host_s=samples,
        timer="perf_counter",
        warmup=2,
        info=ModuleInfo((2, 128, 8, 8), (2, 256, 4, 4), 1234),
        device_name="Some CPU",
        threads=2,
    )


def percentile(values, q):
    """Linear interpolation between closest ranks, written out independently of numpy."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def test_percentiles_and_fps_match_an_independent_computation():
    info = make().extra_info()
    assert math.isclose(info["p50_ms"], 5.5)
    assert math.isclose(info["p90_ms"], percentile(SAMPLES, 90) * 1e3)
    assert math.isclose(info["p99_ms"], percentile(SAMPLES, 99) * 1e3)
    assert math.isclose(info["p90_ms"], 9.1)
    # fps: batch of 2 over the mean of 5.5 ms
    assert math.isclose(info["fps"], 2 / 0.0055)


def test_extra_info_carries_the_contract():
    info = make().extra_info()
    assert {k: info[k] for k in ("model", "input", "input_shape", "device", "device_name", "scope", "module")} == {
        "model": "resnet18",
        "input": "2x3x64x64",
        "input_shape": [2, 3, 64, 64],
        "device": "cpu",
        "device_name": "Some CPU",
        "scope": "block",
        "module": "layer3.1",
    }
    assert info["module_input_shape"] == [2, 128, 8, 8]
    assert info["module_output_shape"] == [2, 256, 4, 4]
    assert (info["params"], info["timer"], info["warmup"], info["dtype"], info["threads"]) == (
        1234, "perf_counter", 2, "fp32", 2,
    )
    json.dumps(info)  # JSON-ready as it is


def test_record_hands_every_sample_to_pytest_benchmark(pytester, monkeypatch):
    """Pins the private pytest-benchmark API record() relies on: one stats round per sample, exact values."""
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    monkeypatch.setenv("PYTHONPATH", root)
    pytester.makepyfile(
        """
        from fixtures.measurement import Measurement, record
        from fixtures.matrix import CaseSpec, GroupKey
        from fixtures.runner import ModuleInfo
        from fixtures.zoo import parse_input

        def test_x(benchmark):
            spec = CaseSpec(GroupKey("resnet18", parse_input("1x3x64x64"), "cpu"), "model")
            samples = (0.5, 0.25, 0.75)
            m = Measurement(spec, samples, samples, "fake", 0, ModuleInfo((1,), (1,), 0), "cpu", 1)
            record(benchmark, m)
        """
    )
    result = pytester.runpytest_subprocess("--benchmark-json=out.json", "-p", "no:cacheprovider")
    assert result.ret == 0
    bench = json.loads((pytester.path / "out.json").read_text())["benchmarks"][0]
    assert bench["group"] == "resnet18-1x3x64x64-cpu"
    assert bench["stats"]["data"] == [0.5, 0.25, 0.75]
    assert (bench["stats"]["min"], bench["stats"]["median"], bench["stats"]["max"]) == (0.25, 0.5, 0.75)
    assert bench["stats"]["rounds"] == 3 and bench["stats"]["iterations"] == 1
    assert bench["options"]["timer"] == "fake"
    assert bench["extra_info"]["scope"] == "model"
