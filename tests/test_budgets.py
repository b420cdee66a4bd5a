"""Budgets file: parsing, the most-specific rule, verdicts and their lines, and each bad-input message."""

from __future__ import annotations

import re

import pytest

from fixtures.budgets import BudgetError, CaseFacts, load_budgets, measured_facts, parse_budgets
from fixtures.inputs import NAMED_INPUTS
from fixtures.matrix import CaseSpec, GroupKey
from fixtures.memory import ForwardMemory, MemoryReport, Peak, StaticMemory
from fixtures.render.terminal import failure_line, stat_check
from stubs import measurement

VALUES = {"median_ms": 12.0, "mean_ms": 13.0, "p90_ms": 15.0, "p99_ms": 20.0, "peak_mib": None}


def case(scope: str = "model", module: str = "", model: str = "resnet50", device: str = "cpu",
         device_name: str = "AMD EPYC", values: dict | None = None, **mode) -> CaseFacts:
    return CaseFacts(
        **mode,
        case_id=f"{model}-pascal-{device}-{scope}" + (f"-{module}" if module else ""),
        device=device,
        device_name=device_name,
        model=model,
        inputs=("pascal", "1x3x500x334"),
        scope=scope,
        module=module,
        values=VALUES if values is None else values,
    )


def book(text: str):
    return parse_budgets(text, "b.toml")


def test_facts_read_the_record():
    spec = CaseSpec(GroupKey("resnet18", NAMED_INPUTS["pascal"], "cpu"), "block", "layer3.1")
    # Medians 1.5 ms; p90 and p99 interpolated between the rounds; the mean is 1.6 ms.
    m = measurement(spec, (0.0010, 0.0015, 0.0023), device_name="AMD EPYC")
    facts = measured_facts(m)
    assert facts == CaseFacts(
        case_id="resnet18-pascal-cpu-block-layer3.1", device="cpu", device_name="AMD EPYC", model="resnet18",
        inputs=("pascal", "1x3x500x334"), scope="block", module="layer3.1", values=facts.values,
    )
    assert facts.values == pytest.approx({"median_ms": 1.5, "mean_ms": 1.6, "p90_ms": 2.14, "p99_ms": 2.284,
                                          "peak_mib": None})
    # Only the whole-model case carries the memory figures.
    static = StaticMemory(())
    memory = MemoryReport(spec.group, static, ForwardMemory("fake", Peak(100 * 2**20, 200 * 2**20)))
    whole = measurement(CaseSpec(spec.group, "model"), (0.001,), memory=memory)
    assert measured_facts(whole).values["peak_mib"] == 300.0
    assert measured_facts(whole).inputs == ("pascal", "1x3x500x334") and measured_facts(whole).module == ""


def test_more_constrained_fields_win():
    b = book("""
[[budget]]
device = "cpu"
model = "resnet50"
scope = "model"
median_ms = 1

[[budget]]
device = "cpu"
median_ms = 2
""")
    assert b.governing(case()).index == 1  # three fields beat one, whatever the order
    assert b.governing(case(scope="stage", module="conv1")).index == 2


def test_exact_beats_glob_and_later_wins_a_tie():
    b = book("""
[[budget]]
device = "cpu"
module = "layer3.*"
median_ms = 1

[[budget]]
device = "cpu"
module = "layer3.1"
median_ms = 2

[[budget]]
device = "cpu"
module = "layer3.?"
median_ms = 3
""")
    assert b.governing(case("block", "layer3.1")).index == 2  # exact module beats both globs
    assert b.governing(case("block", "layer3.0")).index == 3  # two globs tie: the later entry wins
    assert b.governing(case("block", "layer4.0")) is None


def test_star_constrains_nothing_and_a_device_name_beats_a_device_kind():
    b = book("""
[[budget]]
device = "*H200*"
median_ms = 1

[[budget]]
device = "cuda"
model = "*"
median_ms = 2

[[budget]]
device = "NVIDIA H200"
median_ms = 3
""")
    h200 = case(device="cuda", device_name="NVIDIA H200")
    assert b.governing(h200).index == 3  # name without wildcards: exact
    assert b.governing(case(device="cuda", device_name="NVIDIA A100")).index == 2
    assert b.governing(case()) is None  # no entry for cpu: ungated
    assert book('[[budget]]\ndevice = "*h200*"\nmedian_ms = 1').governing(h200) is not None  # device: any case


def test_a_device_kind_counts_as_a_pattern_not_an_exact_field():
    b = book("""
[[budget]]
device = "AMD*"
model = "resnet50"
median_ms = 1

[[budget]]
device = "cpu"
model = "resnet5?"
median_ms = 2

[[budget]]
device = "CUDA"
model = "resnet5?"
median_ms = 3
""")
    # Entry 1: two fields, one exact (model); entry 2: two fields, none exact ("cpu" is a family). Entry 1 wins; were
    # "cpu" exact, the tie would go to the later entry 2.
    assert [x.specificity for x in b.budgets] == [(2, 1, 1), (2, 0, 2), (2, 0, 3)]
    assert b.governing(case()).index == 1
    gpu = case(device="cuda", device_name="NVIDIA H200")
    assert b.governing(gpu).index == 3  # "CUDA": device kinds ignore case


def test_more_fields_beat_more_exact_fields():
    b = book("""
[[budget]]
device = "cpu"
model = "resnet*"
scope = "b*"
median_ms = 1

[[budget]]
device = "AMD EPYC"
model = "resnet50"
median_ms = 2
""")
    # Rule 1 before rule 2: three fields (none exact) beat two exact ones.
    assert b.governing(case(scope="block", module="layer1.0")).index == 1
    assert b.governing(case()).index == 2  # scope "model" doesn't match b*


def test_device_name_glob_and_unmatched_fields():
    b = book('[[budget]]\ndevice = "*epyc*"\nmodel = "resnet50"\ninput = "pascal"\nscope = "block"\nmodule = "layer1.?"\n'
             'median_ms = 1')
    assert b.governing(case("block", "layer1.0")) is not None
    for other in (case("block", "layer2.0"), case("stage", "layer1"), case("block", "layer1.0", model="resnet18"),
                  case("block", "layer1.0", device_name="Intel Xeon")):
        assert b.governing(other) is None, other.case_id
    assert book('[[budget]]\ndevice = "cpu"\ninput = "cityscapes"\nmedian_ms = 1').governing(case()) is None


def test_input_matches_its_label_or_its_shape():
    b = book('[[budget]]\ndevice = "cpu"\ninput = "1x3x500x*"\nmedian_ms = 1')
    assert b.governing(case()) is not None


def test_under_budget_passes_and_over_budget_renders_one_line():
    b = book('[[budget]]\ndevice = "cpu"\nmedian_ms = 12.5\np90_ms = 12.0')
    result = b.check(case())
    assert result.failed
    assert failure_line(result) == (
        "over budget: p90_ms 15.000 ms > budget 12 ms (+25.0%) [b.toml entry 1 (device=cpu)]"
    )
    assert not book('[[budget]]\ndevice = "cpu"\nmedian_ms = 12.0\nmean_ms = 13').check(case()).failed  # at the limit


def test_each_line_names_the_entry_as_written():
    b = book('[[budget]]\ndevice = "cpu"\nmodel = "resnet50"\nscope = "model"\nmedian_ms = 12.5\np99_ms = 19')
    result = b.check(case())
    assert failure_line(result) == (
        "over budget: p99_ms 20.000 ms > budget 19 ms (+5.3%) [b.toml entry 1 (device=cpu, model=resnet50, scope=model)]"
    )
    assert [stat_check(c) for c in result.checks] == [
        "median_ms 12.000 ms <= budget 12.5 ms", "p99_ms 20.000 ms > budget 19 ms (+5.3%)"
    ]


def test_a_statistic_the_case_lacks_is_unmeasured_not_failed():
    result = book('[[budget]]\ndevice = "cpu"\npeak_mib = 1').check(case())
    assert not result.failed
    assert [c.statistic for c in result.unmeasured] == ["peak_mib"]
    assert stat_check(result.unmeasured[0]) == "peak_mib not measured (budget 1 MiB)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[budget]\n", "b.toml: invalid TOML: Expected ']]' at the end of an array declaration (at line 1, column 9)"),
        ('[[budget]]\ndevice = "cpu"\nmedain_ms = 1',
         "b.toml: budget entry 1: unknown statistic 'medain_ms': choose from median_ms, mean_ms, p90_ms, p99_ms, peak_mib"),
        ('[[budget]]\ndevice = "cpu"\nmedian_ms = 1\n[[budget]]\ndevice = "cpu"\ncolour = "red"\nmedian_ms = 1',
         "b.toml: budget entry 2: unknown key 'colour': use device, model, input, scope, module, dtype, memory_format, "
         "executor, compile_mode, fold_bn, cudnn_benchmark and median_ms, mean_ms, p90_ms, p99_ms, peak_mib"),
        ('[[budget]]\ndevice = "cpu"\nfold_bn = "yes"\nmedian_ms = 1',
         "b.toml: budget entry 1: fold_bn must be true or false, not 'yes'"),
        ('[[budget]]\ndevice = "cpu"\ndtype = "fp64"\nmedian_ms = 1',
         "b.toml: budget entry 1: dtype 'fp64' matches no known dtype: fp32, bf16, fp16"),
        ('[[budget]]\ndevice = "cpu"\nmedian_ms = -3', "b.toml: budget entry 1: median_ms must be a positive number, not -3"),
        ('[[budget]]\ndevice = "cpu"\np90_ms = "fast"', "b.toml: budget entry 1: p90_ms must be a number, not 'fast'"),
        ('[[budget]]\ndevice = "cpu"\nmodel = "resnet50"',
         "b.toml: budget entry 1: no statistic: give one or more of median_ms, mean_ms, p90_ms, p99_ms, peak_mib"),
        ('[[budget]]\nmedian_ms = 1',
         "b.toml: budget entry 1: device is missing: give \"cpu\", \"cuda\" or a glob on the GPU's name such as \"*H200*\""),
        ('[[budget]]\ndevice = "cpu"\nscope = "models"\nmedian_ms = 1',
         "b.toml: budget entry 1: scope 'models' matches no known scope (did you mean 'model'?): model, stage, block"),
        ('[[budget]]\ndevice = "cpu"\nmodel = "resnet19"\nmedian_ms = 1',
         "b.toml: budget entry 1: model 'resnet19' matches no known model (did you mean 'resnet18'?): resnet18 … wide_resnet101_2 (+os16, +os8, "
         "+backbone), deeplabv3_resnet50, deeplabv3_resnet101, fcn_resnet50, fcn_resnet101 (+aux), timm.NAME, or a "
         "builder's package.module.function"),
        ('[[budget]]\ndevice = "cpu"\nmodel = "  "\nmedian_ms = 1',
         "b.toml: budget entry 1: model must be a non-empty string (a glob), not '  '"),
        ('[[budget]]\ndevice = "cpu"\nmedian_ms = inf', "b.toml: budget entry 1: median_ms must be a positive number, not inf"),
        ('[[budget]]\ndevice = "cpu"\nmedian_ms = 0', "b.toml: budget entry 1: median_ms must be a positive number, not 0"),
        ('[[budget]]\ndevice = "cpu"\npeak_mib = true', "b.toml: budget entry 1: peak_mib must be a number, not True"),
        ('budget = [1]', "b.toml: budget entry 1: expected a table of keys, got int"),
        ('[[budget]]\ndevice = "cpu"\nrss_mib = 1',
         "b.toml: budget entry 1: unknown statistic 'rss_mib': choose from median_ms, mean_ms, p90_ms, p99_ms, peak_mib"),
        ('[budget]\ndevice = "cpu"\nmedian_ms = 1',
         "b.toml: [budget] is one table: write [[budget]] (double brackets, an array of tables) before each entry"),
        ('[[budget]]\ndevice = "cpu"\ninput = "pascall"\nmedian_ms = 1',
         "b.toml: budget entry 1: input 'pascall' matches no input (did you mean 'pascal'?): cityscapes, pascal or a "
         "BxCxHxW spelling such as 1x3x224x224 (globs allowed: 1x3x*)"),
        ('[[budget]]\ndevice = "cpu"\nmedian_ms = 1\n[[budget]]\ndevice = "cpus"\nmedian_ms = 1',
         "b.toml: budget entry 2: device 'cpus' is neither a device kind (\"cpu\", \"cuda\", \"cuda:N\") nor a device's "
         "name; did you mean 'cpu'? (a GPU by name: a glob such as \"*H200*\")"),
        ('[[budget]]\ndevice = "gpu"\nmedian_ms = 1',
         "b.toml: budget entry 1: device 'gpu' is neither a device kind (\"cpu\", \"cuda\", \"cuda:N\") nor a device's "
         "name; did you mean 'cuda'? (a GPU by name: a glob such as \"*H200*\")"),
        ('[[budget]]\ndevice = "cpu"\nmodel = "resnet18"\nmodule = "layer5.*"\nmedian_ms = 1',
         "b.toml: budget entry 1: module 'layer5.*' matches none of resnet18's stages or blocks (did you mean "
         "'layer4.*'?): conv1, bn1, relu, maxpool, layer1, layer2, layer3, layer4, avgpool, fc, layer1.0, layer1.1 …"),
        ('[[budget]]\ndevice = "cpu"\nmodel = "resnet18"\nscope = "block"\nmodule = "layer3.2"\nmedian_ms = 1',
         "b.toml: budget entry 1: module 'layer3.2' matches none of resnet18's blocks (did you mean 'layer3.1'?): "
         "layer1.0, layer1.1, layer2.0, layer2.1, layer3.0, layer3.1, layer4.0, layer4.1"),
        ('budgets = 1', "b.toml: unknown top-level key 'budgets': the file holds [[budget]] tables only"),
        ('', "b.toml: no [[budget]] entries"),
    ],
    ids=["bad-toml", "unknown-statistic", "unknown-key", "bad-switch", "unknown-dtype", "negative", "non-numeric", "no-statistic", "no-device",
         "unknown-scope", "unknown-model", "blank-model", "infinite", "zero", "boolean", "not-a-table",
         "unknown-mib-statistic", "single-table", "input-typo", "device-typo", "gpu-for-cuda", "module-typo",
         "module-of-another-model", "top-level", "empty"],
)
def test_bad_budgets_give_one_line_with_the_place(text, message):
    with pytest.raises(BudgetError) as error:
        book(text)
    assert str(error.value) == message


@pytest.mark.parametrize(
    "entry",
    [
        'device = "NVIDIA H200"',  # a device's name: another machine may have it
        'device = "AMD EPYC"',
        'device = "cuda:7"',
        'device = "cpu"\ninput = "1x3x*"',
        'device = "cpu"\ninput = "1x3x500x334"',
        'device = "cpu"\ninput = "[1-4]x3x224x224"',
        'device = "cpu"\nmodule = "layer3.3?"',  # resnet101's and resnet152's blocks
        'device = "cpu"\nmodel = "timm.resnet50d"\nmodule = "act1"',
        'device = "cpu"\nmodel = "deeplabv3_resnet50"\nmodule = "backbone.layer1.*"',
        'device = "cpu"\nmodel = "mypkg.nets.build"\nmodule = "stem"',  # a user's builder: taken as written
    ],
)
def test_fields_that_can_match_something_load(entry):
    assert book(f"[[budget]]\n{entry}\nmedian_ms = 1").budgets[0].index == 1


def test_missing_file(tmp_path):
    with pytest.raises(BudgetError, match=r"^.*nope\.toml: budgets file not found$"):
        load_budgets(tmp_path / "nope.toml")
    with pytest.raises(BudgetError, match=r"^.*: can't read budgets file: \[Errno 21\] Is a directory"):
        load_budgets(tmp_path)
    file = tmp_path / "b.toml"
    file.write_text('[[budget]]\ndevice = "cpu"\nmedian_ms = 1\n')
    assert load_budgets(file).source == str(file)


@pytest.mark.parametrize("name", ["cpu-smoke.toml", "h200.toml"])
def test_shipped_budgets_load(name):
    from pathlib import Path

    assert load_budgets(Path(__file__).parent.parent / "budgets" / name).budgets


def test_entries_tell_modes_and_settings_apart():
    """An fp32-eager limit no longer has to govern bf16 or compile cases: entries can name the mode and the settings."""
    b = book("""
[[budget]]
device = "cpu"
median_ms = 100

[[budget]]
device = "cpu"
dtype = "bf16"
median_ms = 10

[[budget]]
device = "cpu"
executor = "compile"
compile_mode = "max-*"
median_ms = 5

[[budget]]
device = "cpu"
fold_bn = true
median_ms = 7

[[budget]]
device = "cpu"
cudnn_benchmark = false
memory_format = "channels_last"
median_ms = 8
""")

    def governing(**mode) -> int:
        return b.governing(case(**mode)).index

    assert governing() == 1
    assert governing(dtype="bf16") == 2
    assert governing(executor="compile", compile_mode="max-autotune") == 3
    assert governing(executor="compile", compile_mode="default") == 1
    assert governing(fold_bn=True) == 4
    assert governing(memory_format="channels_last") == 5
    assert governing(memory_format="channels_last", cudnn_benchmark=True) == 1


@pytest.mark.parametrize(
    "pattern", ["deeplabv3_*", "*+os8", "resnet50+os8+backbone", "fcn_resnet101+aux", "timm.resnet50d", "timm.*+os16",
                "team.nets.build", "team.nets:build", "*"],
)
def test_model_patterns_of_every_kind_are_accepted(pattern):
    assert book(f'[[budget]]\ndevice = "cpu"\nmodel = "{pattern}"\nmedian_ms = 1').budgets[0].patterns["model"] == pattern


@pytest.mark.parametrize(("pattern", "known"), [("timm.resnet51", "timm"), ("deeplabv4_*", "torchvision"), ("resnet50+os4", "")])
def test_model_patterns_that_match_nothing_are_refused(pattern, known):
    with pytest.raises(BudgetError, match=rf"^b.toml: budget entry 1: model '{re.escape(pattern)}' matches no known model"):
        book(f'[[budget]]\ndevice = "cpu"\nmodel = "{pattern}"\nmedian_ms = 1')


def test_new_kinds_match_by_their_names_and_a_builder_by_either_spelling():
    from fixtures.budgets import case_facts

    entries = book('[[budget]]\ndevice = "cpu"\nmodel = "deeplabv3_*"\nmedian_ms = 1\n'
                   '[[budget]]\ndevice = "cpu"\nmodel = "*+os8"\nmedian_ms = 2\n'
                   '[[budget]]\ndevice = "cpu"\nmodel = "team_nets:net"\nmedian_ms = 3\n')

    def governing(model: str) -> int | None:
        facts = case_facts(CaseSpec(GroupKey(model, NAMED_INPUTS["pascal"], "cpu"), "model"), "AMD EPYC", None, {})
        entry = entries.governing(facts)
        return entry.index if entry else None

    assert [governing(m) for m in ("deeplabv3_resnet50+aux", "resnet50+os8", "timm.resnet50d+os8", "resnet50",
                                   "team_nets.net")] == [1, 2, 2, None, 3]
