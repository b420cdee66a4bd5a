"""The measurement record: percentiles against an independent computation, and the hand-over to pytest-benchmark."""

from __future__ import annotations

import json
import math

from fixtures.inputs import parse_input
from fixtures.json_contract import extra_info
from fixtures.matrix import CaseSpec, GroupKey
from fixtures.shapes import ModuleInfo
from fixtures.stats import median, percentiles
from stubs import measurement

SAMPLES = (0.004, 0.001, 0.003, 0.002, 0.010, 0.005, 0.006, 0.007, 0.008, 0.009)


def make(samples=SAMPLES, size="2x3x64x64"):
    spec = CaseSpec(GroupKey("resnet18", parse_input(size), "cpu"), "block", "layer3.1")
    return measurement(spec, samples, timer="perf_counter", warmup=2, info=ModuleInfo((2, 128, 8, 8), (2, 256, 4, 4), 1234),
                       device_name="Some CPU", threads=2)


def percentile(values, q):
    """Linear interpolation between closest ranks, written out independently of numpy."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def test_percentiles_and_fps_match_an_independent_computation():
    info = extra_info(make())
    assert math.isclose(info["p50_ms"], 5.5)
    assert math.isclose(info["p90_ms"], percentile(SAMPLES, 90) * 1e3)
    assert math.isclose(info["p99_ms"], percentile(SAMPLES, 99) * 1e3)
    assert math.isclose(info["p90_ms"], 9.1)
    # fps: batch of 2 over the mean of 5.5 ms
    assert math.isclose(info["fps"], 2 / 0.0055)


def test_the_one_percentile_function_matches_an_independent_computation():
    for values in (SAMPLES, SAMPLES[:7], (0.3,), (0.2, 0.1)):
        for q in (0, 10, 50, 90, 99, 100):
            assert math.isclose(percentiles(values, (q,))[0], percentile(values, q)), (values, q)
    assert median((0.004, 0.001, 0.003, 0.002)) == 0.0025


def test_extra_info_carries_the_contract():
    info = extra_info(make())
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
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join((root, os.path.join(root, "tests"))))
    pytester.makepyfile(
        """
        from fixtures.json_contract import record
        from fixtures.matrix import CaseSpec, GroupKey
        from fixtures.inputs import parse_input
        from stubs import measurement

        def test_x(benchmark):
            spec = CaseSpec(GroupKey("resnet18", parse_input("1x3x64x64"), "cpu"), "model")
            record(benchmark, measurement(spec, (0.5, 0.25, 0.75), timer="fake"))
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
