"""Latency of every case of the matrix: whole model, each stage, each residual block."""

from fixtures.json_contract import claim, record


def test_latency(bench_spec, bench_measure, benchmark, bench_gate):
    """Hand the case's samples (timed in situ by its group's passes) to pytest-benchmark, then check the CI gates.

    The gates run after `record`, so a case over its budget or regressed still has its stats in the saved JSON.
    """
    claim(benchmark)  # a case whose group failed says its one line, without a "fixture was not used" warning
    measurement = bench_measure(bench_spec)
    record(benchmark, measurement)
    bench_gate(measurement)
