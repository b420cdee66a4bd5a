"""Memory reports per model × input × device (written to memory_reports/), and CPU forward passes kept under budget."""

import pytest
import torch

from fixtures.render import memory_text, write_report
from fixtures.zoo import build_model, make_input

# Budgets for one CPU forward, guarded by pytest-memray's limit_memory: everything the test body allocates on the heap
# (building the model with its weights, the input, the forward's activations), keyed "model-input". pytest-memray's
# "MB" is 2**20 bytes. Each is the peak measured with `pytest benchmarks/ -k memory_budget --memray` (torch 2.14.1,
# 2-core CPU, 2026-11) plus about 25 % headroom: a change that grows activation memory by more fails
# test_memory_budget. Groups without a budget are skipped, not guarded.
CPU_FORWARD_BUDGETS: dict[str, str] = {
    "resnet18-cityscapes": "410 MB",  # measured 326.6 MiB
    "resnet18-pascal": "90 MB",  # measured 67.5 MiB
    "resnet34-cityscapes": "460 MB",  # measured 363.3 MiB
    "resnet34-pascal": "140 MB",  # measured 105.6 MiB
    "resnet50-cityscapes": "720 MB",  # measured 575.3 MiB
    "resnet50-pascal": "180 MB",  # measured 137.1 MiB
    "resnet101-cityscapes": "810 MB",  # measured 643.1 MiB
    "resnet101-pascal": "270 MB",  # measured 208.4 MiB
}


def test_memory(bench_memory, bench_report_dir):
    """Write the memory report; the resident figure is the sum of the named tensors, the peak at least that."""
    report = bench_memory
    g = report.group
    write_report(bench_report_dir, f"memory_reports/{g.model}_{g.input.label}_{g.device}.txt", memory_text(report))
    static = report.static
    assert static.bytes == sum(row.bytes for row in static.rows)
    assert [row.name for row in static.rows].count("input") == 1
    if report.forward.whole.peak is not None:
        assert report.forward.whole.peak >= static.bytes


@pytest.fixture
def cpu_forward_budget(request, bench_group_key):
    """Apply limit_memory with the group's budget (pytest-memray reads markers when the test is called)."""
    g = bench_group_key
    if g.device != "cpu":
        pytest.skip(f"{g.device}: memray sees host memory only; the cuda peak is in test_memory's report")
    if g.modes:
        pytest.skip(f"{'-'.join(g.modes)}: the budgets are for fp32 contiguous eager forwards")
    budget = CPU_FORWARD_BUDGETS.get(f"{g.model}-{g.input.label}")
    if not budget:
        pytest.skip(f"no budget for {g.model}-{g.input.label} in CPU_FORWARD_BUDGETS (benchmarks/test_memory.py)")
    request.applymarker(pytest.mark.limit_memory(budget))
    return budget


def test_memory_budget(bench_group_key, cpu_forward_budget):
    """Build the model and run one forward on the CPU: pytest-memray fails this test above the budget."""
    g = bench_group_key
    model = build_model(g.model)
    x = make_input(g.input, 0)
    with torch.inference_mode():
        model(x)
