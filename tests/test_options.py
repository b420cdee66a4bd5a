"""Option parsers: exact values and the one-line errors users see."""

from __future__ import annotations

import argparse

import pytest

from fixtures.inputs import InputSize
from fixtures.options import parse_devices, parse_inputs, parse_models, parse_rounds, parse_scopes, parse_warmup


def test_models_keep_order_and_drop_repeats():
    assert parse_models("resnet50, resnet18,resnet50") == ("resnet50", "resnet18")


def test_every_resnet_family_builder_is_accepted():
    names = "resnet152,resnext50_32x4d,resnext101_32x8d,resnext101_64x4d,wide_resnet50_2,wide_resnet101_2"
    assert parse_models(names) == tuple(names.split(","))


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (parse_models, "resnet19", "unknown model 'resnet19': choose from resnet18, resnet34"),
        (parse_models, "resnet18,,resnet34", "empty entry in model list"),
        (parse_inputs, "imagenet", "unknown input 'imagenet': use one of cityscapes, pascal or BxCxHxW"),
        (parse_inputs, "1x3x224", "unknown input '1x3x224'"),
        (parse_inputs, "1x3x0x224", "has a zero dimension"),
        (parse_inputs, "1x3x-4x224", "unknown input '1x3x-4x224'"),
        (parse_inputs, "1x1x64x64", "has C=1: torchvision's ResNets take 3 input channels"),
        (parse_devices, "tpu", "unknown device 'tpu': choose from cpu, cuda"),
        (parse_scopes, "layer", "unknown scope 'layer': choose from model, stage, block"),
        (parse_warmup, "-1", "warm-up calls must be an integer >= 0 or 'auto', not '-1'"),
        (parse_rounds, "0", "rounds must be an integer >= 1 or 'auto', not '0'"),
        (parse_rounds, "many", "rounds must be an integer >= 1"),
    ],
)
def test_bad_values_raise_one_line(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError) as error:
        parse(text)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_inputs_named_and_explicit():
    assert parse_inputs("pascal,4X3x224x224") == (
        InputSize("pascal", (1, 3, 500, 334)),
        InputSize("4x3x224x224", (4, 3, 224, 224)),
    )


def test_auto_values():
    assert parse_devices("auto") is None
    assert parse_warmup("auto") is None
    assert parse_warmup("0") == 0
    assert parse_rounds("7") == 7


@pytest.fixture
def configured(pytester: pytest.Pytester):
    """The Settings a command line resolves to (the plugin configured in this process, nothing measured)."""
    import os
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    pytester.syspathinsert(root)
    os.environ.pop("PYTEST_ADDOPTS", None)

    def settings(*args: str):
        from fixtures.plugin import SESSION

        config = pytester.parseconfigure("-p", "fixtures.plugin", "--bench-devices", "cpu", *args)
        return config.stash[SESSION].settings

    return settings


def test_the_stopping_rule_reads_each_of_its_options(configured):
    """Each option the stopping rule reads reaches it (a test per option that fails when the option is ignored)."""
    default = configured()
    assert (default.precision_for("cpu"), default.precision_for("cuda")) == (0.05, 0.005)
    assert (default.time_budget_for("cpu"), default.time_budget_for("cuda")) == (10.0, 5.0)
    assert (default.rounds, default.min_rounds, default.disable_gc) == (None, 5, False)
    assert configured("--bench-precision", "0.5%").precision_for("cpu") == pytest.approx(0.005)
    assert configured("--bench-precision", "off").precision_for("cuda") is None
    assert configured("--bench-time-budget", "42").time_budget_for("cuda") == 42.0
    # pytest-benchmark's --benchmark-max-time, when given, is the group's time budget; --bench-time-budget wins.
    assert configured("--benchmark-max-time", "3").time_budget_for("cpu") == 3.0
    assert configured("--benchmark-max-time=3", "--bench-time-budget=7").time_budget_for("cpu") == 7.0
    assert configured("--benchmark-min-rounds", "9").min_rounds == 9
    assert configured("--benchmark-disable-gc").disable_gc is True
    assert configured("--bench-rounds", "4").rounds == 4
    assert default.scope_passes == "auto" and configured("--bench-scope-passes", "separate").scope_passes == "separate"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--bench-precision", "0"), "precision must be a percentage above 0 such as 1%, 'auto' or 'off', not '0'"),
        (("--bench-precision", "fine"), "precision must be a percentage above 0"),
        (("--bench-time-budget", "-1"), "time budget must be seconds above 0 such as 30, or 'auto', not '-1'"),
        (("--bench-scope-passes", "shared"), "scope passes must be auto or separate, not 'shared'"),
    ],
)
def test_bad_stopping_options_are_one_line(configured, args, message):
    with pytest.raises(pytest.UsageError, match="argument") as error:
        configured(*args)
    assert message in str(error.value)
