"""The run's gates in process: what `check` reads, Benjamini-Hochberg across cases, the machine check, the summary."""

from __future__ import annotations

import json

import pytest

from fixtures.budgets import parse_budgets
from fixtures.inputs import parse_input
from fixtures.matrix import CaseSpec, GroupKey
from fixtures.measurement import Measurement
from fixtures.options import Settings
from fixtures.regression import RegressionPolicy, compare
from fixtures.render.terminal import failure_line
from fixtures.render.terminal import verdict_header as gate_header
from fixtures.render.terminal import verdict_summary as gate_summary
from fixtures.shapes import ModuleInfo
from fixtures.verdicts import Baseline, BaselineError
from fixtures.verdicts import Verdicts as Gates
from fixtures.verdicts import build_verdicts as build_gates
from stubs import latency_name as name
from stubs import measurement
from stubs import settings as default_settings

GROUP = GroupKey("resnet18", parse_input("1x3x64x64"), "cpu")
MODEL = CaseSpec(GROUP, "model")
CONV1 = CaseSpec(GROUP, "stage", "conv1")
FC = CaseSpec(GROUP, "stage", "fc")
BASE = (0.010, 0.0101, 0.0102, 0.0103, 0.0104)  # seconds; 5 rounds
MACHINE = {"cpu_brand": "AMD EPYC", "gpu": None, "torch": "2.14.1", "cpu_threads": 2}
TEN = tuple(0.010 + i * 1e-5 for i in range(10))  # 10 rounds; against these, 10 vs 10 one-sided exact p-values:
P012 = tuple(2 * s for s in TEN[:8]) + (0.0099, 0.00995)  # 0.012: 2x slower, but two rounds fast
P026 = tuple(2 * s for s in TEN[:7]) + (0.0099, 0.00989, 0.010055)  # 0.026
P038 = tuple(2 * s for s in TEN[:7]) + (0.0099, 0.00989, 0.010035)  # 0.038
STAGES = [CaseSpec(GROUP, "stage", module) for module in ("conv1", "bn1", "relu", "maxpool", "layer1")]


def measured(spec: CaseSpec, device_s, host_s=None) -> Measurement:
    """A case's measurement; host seconds differ from device seconds unless given (on a GPU they do)."""
    host = tuple(host_s) if host_s is not None else tuple(3 * s for s in device_s)
    return measurement(spec, device_s, host, timer="fake", warmup=1, info=ModuleInfo((1, 3, 64, 64), (1, 1000), 1),
                       device_name="AMD EPYC", threads=2)


def lines(verdict) -> list[str]:
    """The failure line of each verdict a case failed."""
    return [failure_line(f) for f in verdict.failures]


def slower(factor: float, rounds=BASE) -> tuple[float, ...]:
    return tuple(s * factor for s in rounds)


POLICY = RegressionPolicy(0.10, 0.01)


def gates_for(samples: dict[str, tuple[float, ...]], policy=POLICY, **fields) -> Gates:
    return Gates(baseline=Baseline("base.json", MACHINE, samples), policy=policy, **fields)


def test_the_gate_compares_device_seconds_never_host_seconds():
    gates = gates_for({name(MODEL): BASE, name(CONV1): BASE})
    # Device time unchanged, host time 3x: not a regression.
    assert gates.check(name(MODEL), measured(MODEL, BASE)).failures == []
    (result,) = gates.regression_results
    assert result.current_median_s == 0.0102 and result.p_value == pytest.approx(148 / 252)
    # Device time 2x, host time as the baseline's: a regression.
    (line,) = lines(gates.check(name(CONV1), measured(CONV1, slower(2), host_s=BASE)))
    assert line == (
        "regressed: median 10.200 ms (baseline) -> 20.400 ms (+100.0% > 10%), one-sided Mann-Whitney U p=0.004 (exact) "
        "< 0.005 (Benjamini-Hochberg: alpha 0.01 x 1/2 cases) (5 vs 5 rounds) [baseline base.json]"
    )


def test_budgets_read_device_seconds_never_host_seconds():
    book = parse_budgets('[[budget]]\ndevice = "cpu"\nmedian_ms = 15\nmean_ms = 15\np90_ms = 15\np99_ms = 15', "b.toml")
    gates = Gates(budgets=book)
    assert gates.check(name(MODEL), measured(MODEL, BASE)).failures == []  # host 30.6 ms, device 10.2 ms: within 15 ms
    (line,) = lines(gates.check(name(CONV1), measured(CONV1, slower(2), host_s=BASE)))
    assert line == (
        "over budget: median_ms 20.400 ms > budget 15 ms (+36.0%); mean_ms 20.400 ms > budget 15 ms (+36.0%); "
        "p90_ms 20.720 ms > budget 15 ms (+38.1%); p99_ms 20.792 ms > budget 15 ms (+38.6%) [b.toml entry 1 (device=cpu)]"
    )


def test_cases_missing_from_the_baseline_pass_and_are_counted():
    gates = gates_for({name(MODEL): BASE})
    assert gates.check(name(CONV1), measured(CONV1, slower(100))).failures == []
    assert gates.not_in_baseline == [CONV1.id] and gates.regression_results == []
    gates.expect([name(MODEL), name(CONV1)])
    assert gates.expected == {name(MODEL)} and gates.cases == 1


POLICY5 = RegressionPolicy(0.10, 0.05)


def test_p_values_of_the_fixture_rounds():
    assert [compare("t", TEN, p, POLICY5).p_value for p in (slower(2, TEN), P012, P026, P038)] == pytest.approx(
        [1 / 184_756, 2146 / 184_756, 4843 / 184_756, 6952 / 184_756], rel=1e-12)  # of C(20, 10) splits


def test_benjamini_hochberg_shares_alpha_across_the_expected_cases():
    gates = gates_for({name(s): TEN for s in STAGES}, policy=POLICY5)
    gates.expect([name(s) for s in STAGES] + [f"test_latency[other-{i}]" for i in range(10_000)])  # not in the base
    assert gates.cases == 5
    # conv1 alone: 5.4e-06 < 0.05/5.
    (line,) = lines(gates.check(name(STAGES[0]), measured(STAGES[0], slower(2, TEN))))
    assert "p=5.4e-06 (exact) < 0.01 (Benjamini-Hochberg: alpha 0.05 x 1/5 cases) (10 vs 10 rounds)" in line
    # bn1: p = 0.012 is over 0.05/5 alone, but under 0.05*2/5 beside conv1.
    (line,) = lines(gates.check(name(STAGES[1]), measured(STAGES[1], P012)))
    assert "p=0.012 (exact) < 0.02 (Benjamini-Hochberg: alpha 0.05 x 2/5 cases)" in line
    assert [(r.level, r.cases) for r in gates.regression_results] == [(pytest.approx(0.01), 5), (pytest.approx(0.02), 5)]


def test_peers_join_the_evidence_before_their_own_verdict():
    names = [name(s) for s in STAGES]
    current = dict(zip(names, (P026, P026, P026, TEN, TEN)))

    def run(with_peers: bool) -> list[bool]:
        gates = gates_for(dict.fromkeys(names, TEN), policy=POLICY5)
        gates.expect(names)
        for spec in STAGES:
            gates.check(name(spec), measured(spec, current[name(spec)]), current if with_peers else None)
        return [r.regressed for r in gates.regression_results]

    # Three p = 0.026 among five: each under 0.05*3/5 once all three are known, but not under 0.05/5 or 0.05*2/5.
    assert run(with_peers=True) == [True, True, True, False, False]
    assert run(with_peers=False) == [False, False, True, False, False]


def test_missed_cases_are_those_the_whole_runs_evidence_would_flag():
    gates = gates_for({name(s): TEN for s in STAGES[:3]}, policy=POLICY5)
    gates.expect([name(s) for s in STAGES[:3]])
    for spec in STAGES[:3]:  # p = 0.038: over 0.05/3 and 0.05*2/3, under 0.05*3/3 once the third is in
        gates.check(name(spec), measured(spec, P038))
    assert [r.regressed for r in gates.regression_results] == [False, False, True]
    assert [r.name for r in gates.missed] == [name(STAGES[0]), name(STAGES[1])]


def settings(**fields) -> Settings:
    return default_settings(models=("resnet18",), inputs=(parse_input("1x3x64x64"),), devices=("cpu",),
                            scopes=("model",), **fields)


def saved_run(tmp_path, machine=MACHINE) -> str:
    path = tmp_path / "base.json"
    path.write_text(json.dumps({"machine_info": machine, "benchmarks": [
        {"name": name(MODEL), "stats": {"data": list(BASE)}}]}))
    return str(path)


def test_build_gates_takes_threshold_and_alpha_from_the_settings(tmp_path):
    gates = build_gates(settings(regression=saved_run(tmp_path), regression_threshold=0.25, regression_alpha=0.05),
                        MACHINE)
    assert gates.policy == RegressionPolicy(threshold=0.25, alpha=0.05)
    assert gates.baseline.samples == {name(MODEL): BASE} and gates.forced == ()
    assert gate_header(gates) == [
        f"resnet-profile: regression gate vs {tmp_path / 'base.json'}: median +25% and one-sided Mann-Whitney U, "
        "false-discovery rate 0.05 across cases (Benjamini-Hochberg)",
        "resnet-profile: the baseline carries no reference workload figure (saved before it existed, or of another "
        "workload): a change of the machine can't be told from a change of the code; save the baseline again",
    ]


def test_build_gates_loads_the_budgets_and_finds_a_baseline_in_the_storage(tmp_path):
    budgets = tmp_path / "b.toml"
    budgets.write_text('[[budget]]\ndevice = "cpu"\nmedian_ms = 1\n')
    path = saved_run(tmp_path)
    gates = build_gates(settings(budgets=str(budgets), regression="0001"), MACHINE, lambda value: [path])
    assert gates.budgets.source == str(budgets) and gates.baseline.source == path
    assert build_gates(settings(), MACHINE) == Gates()


def test_every_machine_difference_is_named(tmp_path):
    path = saved_run(tmp_path, {**MACHINE, "cpu_threads": 1, "torch": "2.11.0"})
    with pytest.raises(BaselineError, match=r"\(torch: baseline '2\.11\.0', now '2\.14\.1'; cpu_threads: baseline 1, now 2\)"):
        build_gates(settings(regression=path), MACHINE)


def test_another_thread_count_is_refused_unless_forced(tmp_path):
    path = saved_run(tmp_path, {**MACHINE, "cpu_threads": 1})
    with pytest.raises(BaselineError) as error:
        build_gates(settings(regression=path), MACHINE)
    assert str(error.value) == (
        f"{path}: baseline is from another machine, torch or thread count (cpu_threads: baseline 1, now 2): its "
        "timings don't compare; pass --bench-regression-force to compare anyway"
    )
    gates = build_gates(settings(regression=path, regression_force=True), MACHINE)
    assert gates.forced == ("cpu_threads: baseline 1, now 2",)
    assert gate_header(gates)[-1] == (
        "resnet-profile: WARNING: baseline from another machine, compared anyway: cpu_threads: baseline 1, now 2"
    )


def test_the_summary_counts_every_verdict_and_names_its_method():
    tied = (0.0010,) * 4
    wide = tuple(0.010 + i * 1e-5 for i in range(41))
    bn1, relu = STAGES[1], STAGES[2]
    gates = gates_for(
        {name(MODEL): TEN, name(CONV1): BASE, name(FC): tied, name(bn1): wide},
        forced=("cpu_threads: baseline 1, now 2",),
    )
    gates.expect([name(s) for s in (MODEL, CONV1, FC, bn1, relu)])
    gates.check(name(CONV1), measured(CONV1, slower(1.5)))  # p = 1/252 = 0.004: over 0.01/4, alone
    gates.check(name(MODEL), measured(MODEL, slower(2, TEN)))  # p = 5.4e-06 < 0.01/4
    gates.check(name(FC), measured(FC, (0.0015,) * 4))  # p = 1/70: too few rounds ever
    gates.check(name(bn1), measured(bn1, wide[:40]))  # 41 x 40 pairs: the normal approximation
    gates.check(name(relu), measured(relu, BASE))  # not in the baseline
    assert gate_summary(gates) == [
        "regression vs base.json (median +10% and one-sided Mann-Whitney U, Benjamini-Hochberg at 0.01 over 4 cases; "
        "p-values: 3 exact, 1 normal): 1 regressed, 2 slower but not significant, 0 faster, 1 unchanged, 1 not in baseline",
        f"  regressed (1): {name(MODEL)} (+100.0%, p=5.4e-06 (exact))",
        f"  slower but not significant (2): {name(CONV1)} (+50.0%, p=0.004 (exact)), {name(FC)} (+50.0%, p=0.014 (exact))",
        "  significant with the whole run's evidence only, so the run fails, not the cases (1): "
        f"{name(CONV1)} (+50.0%, p=0.004 (exact))",
        f"  too few rounds to reach p < 0.01 (1; n vs m rounds can't give p below 1/C(n+m, n)): {name(FC)}",
        "  too few rounds to be flagged alone (1; p can't go below 1/C(n+m, n), not under 0.01/4 cases: only a "
        f"slowdown many cases share flags them; take more rounds): {name(CONV1)}",
        f"  not in baseline: {relu.id}",
        "  WARNING: compared across machines (--bench-regression-force): cpu_threads: baseline 1, now 2",
    ]
    assert [r.method for r in gates.regression_results] == ["exact", "exact", "exact", "normal"]


def test_budget_summary_lines():
    book = parse_budgets('[[budget]]\ndevice = "cpu"\nscope = "model"\nmedian_ms = 15\npeak_mib = 100', "b.toml")
    gates = Gates(budgets=book)
    gates.check(name(MODEL), measured(MODEL, slower(2)))
    gates.check(name(CONV1), measured(CONV1, BASE))
    assert gate_summary(gates) == [
        "budgets b.toml: 0 within budget, 1 over budget, 1 ungated",
        f"  over budget (1): {MODEL.id} (median_ms +36.0%)",
        f"  ungated (1, no entry matches): {CONV1.id}",
        f"  not measured, so not checked (1): {MODEL.id} (peak_mib)",
    ]



def test_a_baseline_measured_with_other_settings_is_refused_like_another_machine(tmp_path):
    path = saved_run(tmp_path, {**MACHINE, "fold_bn": True})
    with pytest.raises(BaselineError, match=r"\(fold_bn: baseline True, now False\)"):
        build_gates(settings(regression=path), {**MACHINE, "fold_bn": False})
    # A baseline saved before the settings were recorded ran with their defaults: it compares with a default run.
    assert build_gates(settings(regression=saved_run(tmp_path)), {**MACHINE, "fold_bn": False,
                                                                   "compile_mode": "default"}).baseline is not None
    with pytest.raises(BaselineError, match=r"compile_mode: baseline 'default', now 'max-autotune'"):
        build_gates(settings(regression=saved_run(tmp_path)), {**MACHINE, "compile_mode": "max-autotune"})


def test_a_verdict_depends_on_its_own_group_only_so_order_and_workers_dont_matter():
    """Two groups of three cases, p = 0.026 each: a group's three p-values don't reach 0.05 x 3/6 = 0.025, so none is
    flagged (each tested at 0.05/6), whichever group ran first (or on which pytest-xdist worker); the whole run's six
    reach 0.05 x 6/6, so all six are listed as missed."""
    other = GroupKey("resnet34", parse_input("1x3x64x64"), "cpu")
    groups = [[CaseSpec(g, "stage", m) for m in ("conv1", "bn1", "relu")] for g in (GROUP, other)]

    def run(order):
        gates = gates_for({name(s): TEN for g in groups for s in g}, policy=POLICY5)
        gates.expect([name(s) for g in groups for s in g])
        for specs in order:
            peers = {name(s): P026 for s in specs}
            for spec in specs:
                gates.check(name(spec), measured(spec, P026), peers)
        return {r.name: (r.regressed, r.tested_at) for r in gates.regression_results}, gates

    forward, gates = run(groups)
    backward, _ = run(groups[::-1])
    assert forward == backward
    assert {flag for flag, _ in forward.values()} == {False}
    assert [level for _, level in forward.values()] == [pytest.approx(0.05 / 6)] * 6
    assert len(gates.missed) == 6
