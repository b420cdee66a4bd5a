"""No green without what was asked, no silent gaps: a gate that checked nothing fails the run; entries that match no
case, ungated cases and cases missing from the baseline are named, and fail the run under the strict setting
(fixtures/verdicts.py `run_failures`, fixtures/options.py `--bench-strict-gate`)."""

from __future__ import annotations

import argparse

import pytest

from fixtures.budgets import parse_budgets
from fixtures.inputs import parse_input
from fixtures.matrix import CaseSpec, GroupKey
from fixtures.options import parse_strict, running_on_ci
from fixtures.regression import RegressionPolicy
from fixtures.render.terminal import verdict_summary
from fixtures.verdicts import Baseline, Verdicts
from stubs import latency_name as name
from stubs import measurement, runtime_facts

GROUP = GroupKey("resnet18", parse_input("1x3x64x64"), "cpu")
MODEL, CONV1, FC = CaseSpec(GROUP, "model"), CaseSpec(GROUP, "stage", "conv1"), CaseSpec(GROUP, "stage", "fc")
POLICY = RegressionPolicy(0.10, 0.01)
ROUNDS = (0.010, 0.0101, 0.0102, 0.0103, 0.0104, 0.0105)
BUDGETS = """
[[budget]]
device = "cpu"
scope = "model"
median_ms = 1e9

[[budget]]
device = "cpu"
model = "resnet50"
median_ms = 1e9
"""


def checked(gates: Verdicts, *cases: CaseSpec) -> Verdicts:
    for case in cases:
        gates.check(name(case), measurement(case, ROUNDS, policy=POLICY))
    return gates


def budgets(strict: bool = False) -> Verdicts:
    return Verdicts(budgets=parse_budgets(BUDGETS, "b.toml"), strict=strict)


def baseline(strict: bool = False, *cases: CaseSpec, runtimes: dict[str, str] | None = None,
             force: bool = False) -> Verdicts:
    """A baseline holding `cases` (and the runtime versions their names ran under)."""
    before = Baseline("base.json", {}, {name(c): ROUNDS for c in cases}, runtimes=runtimes or {})
    gates = Verdicts(baseline=before, policy=POLICY, strict=strict, force=force)
    gates.expect([name(c) for c in cases])
    return gates


def summary(gates: Verdicts) -> str:
    return "\n".join(verdict_summary(gates))


def test_a_gate_that_measured_no_case_fails_the_run():
    for gates in (budgets(), baseline(False, MODEL)):
        assert gates.run_failures() == ["nothing measured"]
        assert "resnet-profile: the run fails: the gate (" in summary(gates)
        assert "measured no case: every selected case was skipped or deselected" in summary(gates)
    assert Verdicts().run_failures() == []  # no gate asked for: nothing to fail
    assert Verdicts(budgets=budgets().budgets, collect_only=True).run_failures() == []


def test_a_memory_guard_alone_has_gated_something():
    gates = budgets()
    gates.guard([1])
    assert gates.run_failures() == [] and gates.unused_entries == [2]


def test_budgets_that_govern_no_case_fail_the_run():
    gates = checked(budgets(), CONV1)  # entry 1 is scope=model, entry 2 resnet50: conv1 is ungated
    assert gates.ungated == [CONV1.id] and gates.run_failures() == ["no budget"]
    assert "no budgets entry of b.toml governs any case of this run" in summary(gates)


def test_a_baseline_holding_none_of_the_cases_fails_the_run():
    gates = checked(baseline(False, FC), MODEL, CONV1)
    assert gates.not_in_baseline == [MODEL.id, CONV1.id] and gates.run_failures() == ["none in baseline"]
    assert "none of the 2 cases measured is in the baseline base.json: nothing was compared" in summary(gates)


def test_unused_entries_and_ungated_cases_are_named_and_fail_only_when_strict():
    for strict in (False, True):
        gates = checked(budgets(strict), MODEL, CONV1)
        assert gates.unused_entries == [2] and gates.ungated == [CONV1.id]
        text = summary(gates)
        assert "  ungated (1, no entry matches): resnet18-1x3x64x64-cpu-stage-conv1" in text
        assert "  entries that match no case of this run (1): entry 2 (device=cpu, model=resnet50)" in text
        assert gates.run_failures() == (["gaps"] if strict else [])
    assert "the run fails (strict gate): 1 budgets entries match no case, 1 cases ungated, 0 not in the baseline" in text


def test_a_case_missing_from_the_baseline_fails_a_strict_run():
    assert checked(baseline(False, MODEL), MODEL, CONV1).run_failures() == []
    gates = checked(baseline(True, MODEL), MODEL, CONV1)
    assert gates.not_in_baseline == [CONV1.id] and gates.run_failures() == ["gaps"]


def test_a_strict_run_without_gaps_passes():
    assert checked(baseline(True, MODEL, CONV1), MODEL, CONV1).run_failures() == []


def test_strict_auto_is_on_under_ci(monkeypatch):
    assert running_on_ci({"CI": "true"}) and running_on_ci({"BUILD_NUMBER": "17"}) and not running_on_ci({})
    monkeypatch.setenv("CI", "1")
    assert parse_strict("auto") is True
    monkeypatch.delenv("CI")
    assert parse_strict("auto") is False
    assert parse_strict("on") is True and parse_strict("off") is False
    with pytest.raises(argparse.ArgumentTypeError, match="expected on or off"):
        parse_strict("sometimes")


def runtime_case(version: str):
    """resnet18's whole model under ONNX Runtime `version`."""
    return measurement(MODEL, ROUNDS, policy=POLICY, runtime=runtime_facts(version))


def runtime_baseline(strict: bool = False, force: bool = False) -> Verdicts:
    """A baseline of resnet18's whole model under ONNX Runtime 1.19.0."""
    return baseline(strict, MODEL, runtimes={name(MODEL): "onnxruntime 1.19.0"}, force=force)


def test_a_runtime_case_is_compared_only_with_the_runtime_version_it_ran():
    same = runtime_baseline()
    same.check(name(MODEL), runtime_case("1.19.0"))
    assert len(same.regression_results) == 1 and same.other_runtime == [] and same.run_failures() == []
    newer = runtime_baseline()
    newer.check(name(MODEL), runtime_case("1.20.1"))
    assert newer.regression_results == [] and newer.other_runtime == [(MODEL.id, "onnxruntime 1.19.0, now 1.20.1")]
    assert newer.run_failures() == ["none in baseline"]  # nothing was compared
    text = summary(newer)
    assert "0 not in baseline, 1 under another runtime version" in text
    assert (
        "  not compared, the baseline ran another runtime version (1; --bench-regression-force compares them anyway): "
        f"{MODEL.id} (onnxruntime 1.19.0, now 1.20.1)"
    ) in text
    assert "is in the baseline base.json under the runtime version it ran (1 ran another): nothing was compared" in text


def test_a_runtime_version_change_is_a_gap_and_force_compares_it():
    strict = runtime_baseline(strict=True)
    for case in (MODEL, CONV1):  # conv1 (eager, not a runtime case of the baseline) is judged as before
        strict.baseline.samples[name(case)] = ROUNDS
    strict.check(name(CONV1), measurement(CONV1, ROUNDS, policy=POLICY))
    strict.check(name(MODEL), runtime_case("1.20.1"))
    assert strict.gaps == 1 and strict.run_failures() == ["gaps"]
    assert ", 1 under another runtime version (listed above)" in summary(strict)
    forced = runtime_baseline(strict=True, force=True)
    forced.check(name(MODEL), runtime_case("1.20.1"))
    assert len(forced.regression_results) == 1 and forced.other_runtime == [] and forced.run_failures() == []
    assert forced.forced_runtime == [(MODEL.id, "onnxruntime 1.19.0, now 1.20.1")]
    assert "WARNING: compared across runtime versions (--bench-regression-force): " in summary(forced)


def test_a_baseline_reads_each_runtime_cases_version_from_its_extra_info():
    from fixtures.json_contract import SavedCase, SavedRun
    from fixtures.verdicts import runtime_label

    info = {"model": "resnet18", "input": "x", "device": "cpu", "scope": "model"}
    runtime = {**info, "runtime": "openvino", "runtime_version": "2025.4.0"}
    cases = (SavedCase("a", "g", {}, info, ROUNDS), SavedCase("b", "g", {}, runtime, ROUNDS))
    run = SavedRun("base.json", {}, "2026-12-06T10:00:00", {}, cases)
    assert Baseline.of(run).runtimes == {"b": "openvino 2025.4.0"} == {"b": runtime_label("openvino", "2025.4.0")}
