"""Every command the README and docs/ show in a block marked runnable works on this version.

The convention: a fenced block whose info string is `sh runnable` holds commands, one a line (`\\` continues a line,
`#` starts a comment), that a reader can paste. This test runs each such block's commands, in order, in one copy of
the project per page — so a page can save a run and compare with it later — on tiny inputs: every model and input name
in a command becomes resnet18 and 1x3x64x64 (a -k expression too), and pytest runs get the CPU, one thread, 3 rounds
and 1 warm-up call. `make X` runs the recipe `make -n` prints; `pytest` and `python -m MODULE` run in-process (no CUDA is touched,
and no second torch import is paid). A command that can't run here is listed in EXEMPT with the reason. Transcripts of a session (`$ command`
and its output) go in `console` blocks and output in `text` blocks: those are not run.
"""

from __future__ import annotations

import glob
import os
import re
import runpy
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from stubs import copy_checkout

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([^`\n]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
MODELS = re.compile(r"\b(?:resnet\d+|resnext\d+_\w+|wide_resnet\d+_\d+)\b")
INPUTS = re.compile(r"\b(?:cityscapes|pascal)\b")
# One thread: tiny convolutions gain nothing from two, and on a busy machine OpenMP threads waiting on each other make a
# run many times slower (the fixture restores the thread count afterwards).
TINY = ("--bench-devices", "cpu", "--bench-models", "resnet18", "--bench-inputs", "1x3x64x64",
        "--bench-rounds", "3", "--bench-warmup", "1", "--bench-threads", "1")
EXEMPT: dict[str, str] = {
    "make test": "runs this very suite, which would run itself again",
    "make bench": "the whole default matrix (minutes); its recipe runs here as `make bench NAME=base BENCH_ARGS=...`",
    ". .venv/bin/activate": "changes the reader's shell; these tests already run in the venv",
}


def blocks(page: Path) -> list[tuple[str, str]]:
    """(info string, body) of each fenced block of a page."""
    return [(m.group(1).strip(), m.group(2)) for m in FENCE.finditer(page.read_text(encoding="utf-8"))]


def commands(body: str) -> list[list[str]]:
    """The commands of a block, as argument lists (continuations joined, comments dropped)."""
    joined = re.sub(r"\\\n", " ", body)
    return [tokens for line in joined.splitlines() if (tokens := shlex.split(line, comments=True))]


def runnable(page: Path) -> list[list[str]]:
    return [cmd for info, body in blocks(page) if info.split()[1:2] == ["runnable"] for cmd in commands(body)]


def tiny(token: str) -> str:
    return INPUTS.sub("1x3x64x64", MODELS.sub("resnet18", token))


def test_the_convention_parses_blocks_and_commands():
    body = 'make bench NAME=base BENCH_ARGS="--bench-models resnet50"   # save\n\n# a comment\npytest a \\\n  -k "x and y"\n'
    assert commands(body) == [["make", "bench", "NAME=base", "BENCH_ARGS=--bench-models resnet50"],
                              ["pytest", "a", "-k", "x and y"]]
    assert tiny('resnet50 and cityscapes and wide_resnet50_2 and pascal') == "resnet18 and 1x3x64x64 and resnet18 and 1x3x64x64"


def test_every_readme_block_says_what_it_is():
    """A README block is runnable commands, a transcript, output or a file: an unmarked one is neither run nor exempt."""
    infos = [info for info, _ in blocks(ROOT / "README.md")]
    assert infos and all(info for info in infos), infos
    assert any(info == "sh runnable" for info in infos)


def test_every_exemption_is_still_shown():
    shown = {shlex.join(cmd) for page in PAGES for cmd in runnable(page)}
    assert set(EXEMPT) <= shown, set(EXEMPT) - shown


@pytest.mark.parametrize("page", [p for p in PAGES if runnable(p)], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_runnable_commands_run(page: Path, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    copy_checkout(pytester.path, "budgets")
    # The budgets files name the matrix's models and inputs: they are read on the tiny one, as the commands are (else
    # no entry would govern a case, which fails a gated run by design).
    for budgets in (pytester.path / "budgets").glob("*.toml"):
        budgets.write_text(tiny(budgets.read_text()))

    def run_pytest(args: list[str], shown: str) -> None:
        # (a --bench-threads in a command sets torch's threads for its run only: the plugin restores them)
        result = pytester.runpytest_inprocess(*args, *TINY, "-p", "no:cacheprovider", "--import-mode=importlib")
        assert result.ret == pytest.ExitCode.OK, f"{page.name}: `{shown}` exited {result.ret}:\n" + "\n".join(
            result.outlines[-25:] + result.errlines[-10:]
        )

    def run_process(args: list[str], shown: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
        done = subprocess.run(args, cwd=pytester.path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{page.name}: `{shown}` exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"

    def run_module(module: str, args: list[str], shown: str) -> None:
        """`python -m module args` in this process, in the project (the shell would expand the globs first)."""
        code: object = 0
        with monkeypatch.context() as patch, warnings.catch_warnings():
            # runpy notes that the module is imported already (the tests import it): harmless here.
            warnings.filterwarnings("ignore", message=".*found in sys.modules", category=RuntimeWarning)
            patch.setattr(sys, "argv", [module, *args])
            patch.setenv("MPLBACKEND", "Agg")
            try:
                runpy.run_module(module, run_name="__main__", alter_sys=True)
            except SystemExit as exit_:
                code = exit_.code or 0
        assert code == 0, f"{page.name}: `{shown}` exited {code}"

    ran = 0
    for command in runnable(page):
        shown = shlex.join(command)
        if shown in EXEMPT:
            continue
        args = [tiny(token) for token in command]
        if args[0] == "pytest":
            run_pytest(args[1:], shown)
        elif args[0] == "make":
            # The recipe as make would run it; -o: the venv is this one, never rebuilt.
            recipe = subprocess.run(
                ["make", "-s", "-n", "-o", ".venv/.installed", "-f", str(ROOT / "Makefile"), *args[1:]],
                cwd=pytester.path, capture_output=True, text=True, check=True,
            ).stdout.splitlines()
            for line in recipe:
                step = shlex.split(line)
                if step[:3] == [".venv/bin/python", "-m", "pytest"]:
                    run_pytest(step[3:], f"{shown}: {line}")
                else:
                    run_process(step, f"{shown}: {line}")
        elif args[:2] == ["python", "-m"] and len(args) > 2:
            expanded = [p for a in args[3:] for p in (sorted(glob.glob(a, root_dir=pytester.path)) or [a])]
            run_module(args[2], expanded, shown)
        else:
            pytest.fail(f"{page.name}: no way to run `{shown}` here: make it run, or add it to EXEMPT with the reason")
        ran += 1
    assert ran, f"{page.name}: every runnable command is exempt"
