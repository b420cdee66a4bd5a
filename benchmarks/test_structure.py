"""Model structures: every module of each model, in forward order, for each input (written to model_structures/)."""

from fixtures.models import model_spec
from fixtures.render.files import structure_file, structure_text, write_report


def test_structure(bench_model_structure, bench_report_dir):
    """Write the structure report; the stage rows add up to the whole model's parameters and FLOPs (a user's model may
    hold more than its stages: a child its forward never calls, arithmetic outside any child)."""
    s = bench_model_structure
    write_report(bench_report_dir, structure_file(s), structure_text(s))
    names = [row.name for row in s.rows]
    assert len(names) == len(set(names)), "a module appears twice"
    stages = [row for row in s.rows if row.name in s.stages]
    assert [row.name for row in stages] == list(s.stages)
    params, flops = sum(row.params for row in stages), sum(row.flops for row in stages)
    if model_spec(s.model).kind == "user":
        assert params <= s.total_params and flops <= s.total_flops
    else:
        assert (params, flops) == (s.total_params, s.total_flops)
