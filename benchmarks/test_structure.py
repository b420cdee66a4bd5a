"""Model structures: every module of each model, in forward order, for each input (written to model_structures/)."""

from fixtures.render.files import structure_file, structure_text, write_report


def test_structure(bench_model_structure, bench_report_dir):
    """Write the structure report; the top-level rows add up to the whole model's parameters and FLOPs."""
    s = bench_model_structure
    write_report(bench_report_dir, structure_file(s), structure_text(s))
    names = [row.name for row in s.rows]
    assert len(names) == len(set(names)), "a module appears twice"
    stages = [row for row in s.rows if row.depth == 1]
    assert sum(row.params for row in stages) == s.total_params
    assert sum(row.flops for row in stages) == s.total_flops
