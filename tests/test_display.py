"""pytest-benchmark's tables laid out for a 120-column terminal: exact layouts, orders, names and units."""

from __future__ import annotations

import argparse

import pytest

from fixtures.inputs import NAMED_INPUTS
from fixtures.matrix import GroupKey
from fixtures.options import command_line
from fixtures.render import layout as display
from fixtures.render.terminal import summary_table
from fixtures.runner import GroupResult, Samples
from fixtures.shapes import ModuleInfo
from stubs import group_record


@pytest.mark.parametrize(
    ("args", "layout"),
    [
        ([], display.Layout(columns=True, order=True, short_names=True)),
        (["benchmarks/", "--benchmark-columns=min,max"], display.Layout(columns=False, order=True, short_names=True)),
        (["--benchmark-sort", "name"], display.Layout(columns=True, order=False, short_names=True)),
        (["--benchmark-group-by=name"], display.Layout(columns=True, order=True, short_names=False)),
        (["--benchmark-name", "long"], display.Layout(columns=True, order=True, short_names=False)),
        # a value that merely contains a flag, or another option with the same start, is not a choice
        (["-k", "x", "--benchmark-columnsX", "--benchmark-save=--benchmark-sort"],
         display.Layout(columns=True, order=True, short_names=True)),
    ],
)
def test_layout_follows_what_the_user_chose(args, layout):
    assert display.layout_for(args) == layout


def test_defaults_are_set_only_where_the_user_chose_none():
    option = argparse.Namespace(benchmark_columns=None, benchmark_sort="min")
    display.apply(option, display.Layout())
    assert option.benchmark_columns == ["median", "iqr", "mean", "rounds"]
    assert option.benchmark_sort == display.ORDER_KEY
    mine = argparse.Namespace(benchmark_columns=["min", "max"], benchmark_sort="min")
    display.apply(mine, display.Layout(columns=False, order=False))
    assert (mine.benchmark_columns, mine.benchmark_sort) == (["min", "max"], "min")


def test_command_line_joins_ini_env_and_arguments(pytester, monkeypatch):
    pytester.makeini("[pytest]\naddopts = --benchmark-sort=mean\n")
    monkeypatch.setenv("PYTEST_ADDOPTS", "--benchmark-columns 'min,max'")
    config = pytester.parseconfig("--benchmark-name=short")
    args = command_line(config)
    # pytester adds its own --basetemp after the given arguments
    assert args[:4] == ["--benchmark-sort=mean", "--benchmark-columns", "min,max", "--benchmark-name=short"]
    assert display.layout_for(args) == display.Layout(columns=False, order=False, short_names=False)


def rows() -> list[dict]:
    group = "resnet18-pascal-cpu"
    ids = ["resnet18-pascal-cpu-block-layer1.0", "resnet18-pascal-cpu-model", "resnet18-pascal-cpu-stage-conv1"]
    return [{"group": group, "param": i, "name": f"test_latency[{i}]"} for i in ids] + [
        {"group": "other", "param": None, "name": "test_other"}
    ]


def test_rows_get_the_matrix_order_and_short_names():
    order = {"resnet18-pascal-cpu-model": 0, "resnet18-pascal-cpu-stage-conv1": 1, "resnet18-pascal-cpu-block-layer1.0": 2}
    benches = rows()
    display.arrange(benches, order, display.Layout())
    assert [(b["name"], b[display.ORDER_KEY]) for b in benches] == [
        ("block-layer1.0", 2), ("model", 0), ("stage-conv1", 1), ("test_other", 3)
    ]
    assert [b["name"] for b in sorted(benches, key=lambda b: b[display.ORDER_KEY])][:3] == [
        "model", "stage-conv1", "block-layer1.0"
    ]
    kept = rows()
    display.arrange(kept, order, display.Layout(short_names=False))
    assert kept[1]["name"] == "test_latency[resnet18-pascal-cpu-model]" and kept[1][display.ORDER_KEY] == 0


@pytest.mark.parametrize(
    ("seconds", "scale"),
    [(7.0, ("m", 1e3)), (0.0013, ("m", 1e3)), (1e-3, ("m", 1e3)), (9.9e-4, ("u", 1e6)), (5e-9, ("n", 1e9))],
)
def test_milliseconds_unless_the_whole_group_is_faster(seconds, scale):
    assert display.time_scale(seconds) == scale


def result(modes: tuple[str, str, str] = ("fp32", "contiguous", "eager"), compile_s: float | None = None):
    group = GroupKey("resnext101_64x4d", NAMED_INPUTS["cityscapes"], "cuda:1", *modes)
    info = {"": ModuleInfo((1, 3, 1024, 2048), (1, 1000), 0)}
    return group_record(GroupResult(group, "cuda_event", 25, 300, {"": Samples([0.012345678], [0.001])}, info,
                                    {"stage": [0.0125]}, 1234.5, compile_s))


def table_lines(text: str) -> list[str]:
    """The summary's table: its lines up to the clocks line."""
    lines = text.splitlines()
    return lines[: next(n for n, line in enumerate(lines) if line.startswith("timed with "))]


def test_the_summary_fits_120_columns_and_wraps_long_group_ids():
    text = summary_table([result()])
    short = table_lines(text)
    assert max(map(len, text.splitlines())) <= 120
    assert short[2].split() == ["resnext101_64x4d-cityscapes-cuda1", "300", "12.346", "-", "-", "1.013", "1234.5"]
    assert short[0].split()[:5] == ["group", "rounds", "median", "ms", "±%"]
    assert text.splitlines()[len(short)] == "timed with cuda_event after 25 warm-up calls (cuda)"
    text = summary_table([result(("bf16", "channels_last", "compile"), compile_s=17.3)])
    long = table_lines(text)
    assert max(map(len, text.splitlines())) <= 120
    assert long[0].rstrip().endswith("compile s") and long[1].split() == ["±%", "whole", "layers", "clean"]
    rule = next(n for n, line in enumerate(long) if line.startswith("---"))
    pieces = [line.split()[0] for line in long[rule + 1:]]
    assert len(pieces) > 1 and "".join(pieces) == "resnext101_64x4d-cityscapes-cuda1-bf16-channels_last-compile"
    assert long[rule + 1].split()[1:] == ["300", "12.346", "-", "-", "1.013", "1234.5", "17.3"]
