"""Latency of every case of the matrix: whole model, each stage, each residual block."""

from fixtures.measurement import record


def test_latency(bench_spec, bench_measure, benchmark):
    """Hand the case's samples (timed in situ by its group's passes) to pytest-benchmark."""
    record(benchmark, bench_measure(bench_spec))
