"""The CPU forward memory guard takes its limit from the budgets file: which entry, which figure, and when it skips."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.budgets import load_budgets, parse_budgets, whole_model_facts
from fixtures.inputs import NAMED_INPUTS, parse_input
from fixtures.matrix import GroupKey
from stubs import copy_checkout

ROOT = Path(__file__).resolve().parent.parent
BOOK = parse_budgets(
    """
[[budget]]
device = "cpu"
peak_mib = 500

[[budget]]
device = "cpu"
model = "resnet50"
input = "pascal"
scope = "model"
peak_mib = 180
median_ms = 400

[[budget]]
device = "cpu"
model = "resnet50"
input = "1x3x64x64"
scope = "model"
median_ms = 100

[[budget]]
device = "*EPYC*"
model = "resnet50"
input = "1x3x500x334"
scope = "model"
peak_mib = 200
""",
    "b.toml",
)


def limit(model: str, size: str, name: str = "Intel Xeon") -> tuple[float | None, str]:
    size = NAMED_INPUTS.get(size) or parse_input(size)
    return BOOK.memory_limit(whole_model_facts(GroupKey(model, size, "cpu"), name))


def test_the_governing_entry_gives_the_limit():
    assert limit("resnet50", "pascal") == (180.0, "b.toml entry 2 (device=cpu, model=resnet50, input=pascal, scope=model)")
    assert limit("resnet18", "pascal")[0] == 500.0  # only the catch-all matches
    # on that CPU the brand entry ties with entry 2 (four fields, three exact) and, later in the file, wins; it matches
    # pascal through its BxCxHxW spelling
    assert limit("resnet50", "pascal", name="AMD EPYC 7B13")[0] == 200.0


def test_an_entry_without_peak_mib_governs_and_gives_no_limit():
    # the latency-only entry is the most specific for resnet50 at 1x3x64x64: the catch-all's peak_mib does not leak in
    assert limit("resnet50", "1x3x64x64") == (None, "b.toml entry 3 governs resnet50-1x3x64x64-cpu-model and has no peak_mib")
    facts = whole_model_facts(GroupKey("resnet50", parse_input("1x3x64x64"), "cpu"), "x")
    assert (facts.scope, facts.module, facts.inputs) == ("model", "", ("1x3x64x64",))


def test_shipped_budgets_load_and_cover_the_default_cpu_groups():
    for path in sorted((ROOT / "budgets").glob("*.toml")):
        assert load_budgets(path).budgets, path
    book = load_budgets(ROOT / "budgets" / "cpu.toml")
    for model in ("resnet18", "resnet34", "resnet50", "resnet101"):
        for size in ("cityscapes", "pascal"):
            figure, _ = book.memory_limit(whole_model_facts(GroupKey(model, NAMED_INPUTS[size], "cpu"), "any CPU"))
            assert figure is not None and 50 <= figure <= 1024, (model, size, figure)


def test_without_pytest_memray_the_guard_skips_saying_so(pytester: pytest.Pytester):
    """In-process (it only collects and skips): importlib mode keeps benchmarks/test_memory.py apart from ours."""
    copy_checkout(pytester.path, "budgets")
    result = pytester.runpytest_inprocess(
        "benchmarks/test_memory.py", "-k", "memory_budget", "--bench-devices", "cpu", "--bench-models", "resnet18",
        "--bench-inputs", "pascal", "--bench-budgets", "budgets/cpu.toml", "-p", "no:memray", "-p", "no:cacheprovider",
        "--import-mode=importlib", "-rs",
    )
    result.stdout.fnmatch_lines(["SKIPPED * pytest-memray is not installed: the guard needs its limit_memory marker"])
    # A gate that checked nothing is no green: the run of guards alone, every one skipped, fails with one line.
    result.stdout.fnmatch_lines(["resnet-profile: the run fails: the gate (budgets budgets/cpu.toml) measured no case*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED
