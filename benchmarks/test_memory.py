"""Memory reports per model × input × device (written to memory_reports/), and CPU forward passes kept under budget."""

import pytest
import torch

from fixtures.inputs import make_input
from fixtures.models import build_model
from fixtures.render.files import memory_file, memory_text, write_report


def test_memory(bench_memory, bench_report_dir):
    """Write the memory report; the resident figure is the sum of the named tensors, the peak at least that."""
    report = bench_memory
    write_report(bench_report_dir, memory_file(report), memory_text(report))
    static = report.static
    assert static.bytes == sum(row.bytes for row in static.rows)
    assert [row.name for row in static.rows].count("input") == 1
    if report.forward.whole.peak is not None:
        assert report.forward.whole.peak >= static.bytes


@pytest.fixture
def cpu_forward_budget(request, bench_memory_limit):
    """Apply limit_memory with the group's peak_mib budget (pytest-memray reads markers when the test is called).

    The limit is the peak_mib of the --bench-budgets entry that governs the group's whole-model case (see
    budgets/cpu.toml): everything the test body allocates on the heap — building the model with its weights, the input,
    the forward's activations. pytest-memray's "MB" is 2**20 bytes, a MiB.
    """
    request.applymarker(pytest.mark.limit_memory(f"{bench_memory_limit} MB"))
    return bench_memory_limit


def test_memory_budget(bench_group_key, cpu_forward_budget):
    """Build the model and run one forward on the CPU: pytest-memray fails this test above the budget."""
    g = bench_group_key
    model = build_model(g.model)
    x = make_input(g.input, 0)
    with torch.inference_mode():
        model(x)
