"""The GPU check's Python side: `preflight` (can this machine run the check at all?) and `tables` (what it measured).

`tables` reads the pytest-benchmark JSON files scripts/gpu_check.sh wrote, one per run, and prints our whole-model
medians beside torch.utils.benchmark.Timer(...).blocked_autorange(min_run_time=1) on a fresh model built the same way,
then the resnet50 speed ladder: every configuration once, with the speedup each factor brings on its own (the row
against the same row without that factor). Every failure is one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import sysconfig
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# torch.compile modes that run the compiled graph under CUDA graphs (fixtures/modes.py says the same).
GRAPHED_COMPILE_MODES = ("reduce-overhead", "max-autotune")


class CheckError(Exception):
    """What stops the check; the message is the one line the user sees."""


# --- preflight --------------------------------------------------------------------------------------------------------


def compiler_problem(device: str, which=shutil.which, include: str | None = None) -> str | None:
    """Why torch.compile can't build here, or None: Triton builds its launcher with a C compiler against Python.h at
    run time (inductor's CPU code needs a C++ compiler)."""
    names = ("c++", "g++", "clang++") if device == "cpu" else ("cc", "gcc", "clang")
    chosen = os.environ.get("CXX" if device == "cpu" else "CC")
    if not any(which(name) for name in ((chosen,) if chosen else names)):
        kind = "C++" if device == "cpu" else "C"
        return (
            f"torch.compile needs a {kind} compiler at run time and none of {', '.join((chosen,) if chosen else names)}"
            f" is on PATH (install build-essential, or run with COMPILE=0)"
        )
    header = Path(include or sysconfig.get_paths()["include"]) / "Python.h"
    if not header.exists():
        return (
            f"torch.compile needs Python's headers at run time and {header} is missing (install python3-dev, or "
            "COMPILE=0)"
        )
    return None


def preflight(device: str, compile_part: bool) -> None:
    """Raise CheckError when the check can't run: no torch, no usable CUDA, no compiler for the compile part."""
    try:
        import torch
    except ImportError as error:
        raise CheckError(
            f"torch can't be imported by {sys.executable} ({error}); run make setup or set PYTHON"
        ) from None
    if device == "cuda" and not torch.cuda.is_available():
        built = (
            f"torch {torch.__version__} built for CUDA {torch.version.cuda}"
            if torch.version.cuda
            else (f"torch {torch.__version__} has no CUDA")
        )
        raise CheckError(
            f"CUDA is not usable here: torch.cuda.is_available() is False ({built}; "
            f"is the driver too old for it, or no GPU visible?)"
        )
    if compile_part:
        problem = compiler_problem(device)
        if problem:
            raise CheckError(problem)


# --- the JSON of the runs ---------------------------------------------------------------------------------------------


def config(bench: dict, machine: dict) -> tuple:
    """What a figure is of: the case and every setting that changes its speed (session-wide ones included)."""
    info = bench["extra_info"]
    cudnn = info.get("cudnn_benchmark")
    if cudnn is None:  # runs from before the flag was in extra_info: the session's setting
        cudnn = machine.get("cudnn_benchmark")
    mode = info.get("compile_mode") if info.get("executor") == "compile" else None
    return (bench["group"], info["scope"], info["module"], bool(cudnn), bool(info.get("fold_bn")), mode)


def load(paths: list[Path]) -> tuple[list[dict], dict]:
    """Every benchmark of the runs, each tagged with its run and session settings; a figure measured in two runs is
    refused (tables would mix them)."""
    from fixtures.json_contract import ContractError, load_run

    benches, machine, seen = [], {}, {}
    for path in paths:
        if not path.exists():
            continue  # a run that recorded nothing (every case skipped) may write no file
        try:
            run = load_run(path)
        except ContractError as error:
            raise CheckError(str(error)) from None
        machine = dict(run.machine_info) or machine
        for case in run.cases:
            if not case.ours:
                continue
            bench = {"name": case.name, "group": case.group, "stats": dict(case.stats), "extra_info": dict(case.extra)}
            key = config(bench, dict(run.machine_info))
            if key in seen:
                raise CheckError(
                    f"{bench['name']} (cuDNN benchmark {'on' if key[3] else 'off'}, BN folded "
                    f"{'yes' if key[4] else 'no'}) was measured by both {seen[key]} and {path.name}: "
                    f"each figure must come from one run"
                )
            seen[key] = path.name
            benches.append({**bench, "run": path.stem, "cudnn_benchmark": key[3]})
    return benches, machine


def require_timer(benches: list[dict], device: str, logs: str) -> None:
    """The check passes only on figures from the device it was asked to check."""
    timer = "cuda_event" if device == "cuda" else "perf_counter"
    if not any(b["extra_info"].get("timer") == timer for b in benches):
        raise CheckError(f"no {timer} case was recorded: every {device} case was skipped or failed (see {logs})")


# --- tables -----------------------------------------------------------------------------------------------------------


def utils_benchmark_ms(model_name: str, input_label: str, device: str) -> float:
    """torch.utils.benchmark's median for one forward, as a user of that tool would take it."""
    import torch
    import torch.utils.benchmark as tbench

    from fixtures.inputs import make_input, parse_input
    from fixtures.models import build_model

    model = build_model(model_name).to(device)
    x = make_input(parse_input(input_label), seed=0).to(device)
    with torch.inference_mode():
        for _ in range(25 if device == "cuda" else 2):
            model(x)
        timer = tbench.Timer("model(x)", globals={"model": model, "x": x}, num_threads=torch.get_num_threads())
        measurement = timer.blocked_autorange(min_run_time=1)
    del model, x
    if device == "cuda":
        torch.cuda.empty_cache()
    return measurement.median * 1e3


def _fmt(value: object, spec: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return format(value, spec)


def accuracy_table(benches: list[dict], device: str, reference=utils_benchmark_ms) -> str:
    """fp32 eager whole model (from the fp32 run only) beside torch.utils.benchmark; stage sum / whole; CV."""
    from tabulate import tabulate

    from fixtures.stages_and_blocks import parts_of

    plain = [b for b in benches if b["run"] == "fp32"]
    rows = []
    for whole in (b for b in plain if b["extra_info"]["scope"] == "model"):
        info = whole["extra_info"]
        stages = {
            b["extra_info"]["module"]: b["stats"]["median"]
            for b in plain
            if b["group"] == whole["group"] and b["extra_info"]["scope"] == "stage"
        }
        ours = whole["stats"]["median"] * 1e3
        ref = reference(info["model"], info["input"], device)
        ratio = sum(stages.values()) * 1e3 / ours if set(stages) == set(parts_of(info["model"]).stages) else None
        cv = 100 * whole["stats"]["stddev"] / whole["stats"]["mean"]
        rows.append(
            [
                info["model"],
                info["input"],
                f"{ours:.3f}",
                _fmt(info.get("gpu_ms"), ".3f"),
                f"{ref:.3f}",
                f"{100 * (ours / ref - 1):+.1f}%",
                _fmt(ratio, ".3f"),
                f"{cv:.1f}%",
                whole["stats"]["rounds"],
                _fmt(info.get("launch_bound")),
            ]
        )
    headers = [
        "model",
        "input",
        "ours median ms",
        "GPU ms",
        "utils.benchmark ms",
        "diff",
        "stage sum / whole",
        "CV",
        "rounds",
        "launch-bound",
    ]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _settings(b: dict) -> dict:
    info = b["extra_info"]
    return {
        "input": info["input"],
        "dtype": info["dtype"],
        "format": info["memory_format"],
        "executor": info["executor"],
        "mode": info.get("compile_mode") if info["executor"] == "compile" else None,
        "cudnn": b["cudnn_benchmark"],
        "fold": bool(info.get("fold_bn")),
    }


def _without(s: dict, factor: str) -> dict | None:
    """The same configuration without one factor, or None when the factor is off."""
    graphed = s["executor"] == "cuda_graph" or s["mode"] in GRAPHED_COMPILE_MODES
    if factor == "dtype" and s["dtype"] != "fp32":
        return {**s, "dtype": "fp32"}
    if factor == "channels_last" and s["format"] == "channels_last":
        return {**s, "format": "contiguous"}
    if factor == "cudnn" and s["cudnn"]:
        return {**s, "cudnn": False}
    if factor == "fold" and s["fold"]:
        return {**s, "fold": False}
    if factor == "compile" and s["executor"] == "compile":
        return {**s, "executor": "cuda_graph" if graphed else "eager", "mode": None}
    if factor == "graphs" and graphed:
        return {**s, "executor": "eager", "mode": None} if s["executor"] == "cuda_graph" else {**s, "mode": "default"}
    return None


FACTORS: tuple[tuple[str, str], ...] = (
    ("dtype", "× dtype"),
    ("channels_last", "× channels_last"),
    ("cudnn", "× cuDNN bench"),
    ("fold", "× BN fold"),
    ("compile", "× compile"),
    ("graphs", "× CUDA graphs"),
)


def ladder_table(benches: list[dict], model: str = "resnet50") -> str:
    """Every whole-model configuration of `model` once, its speedup over fp32 contiguous eager (cuDNN benchmark off, BN
    not folded) and, per factor, the speedup that factor alone brings: this row against the same row without it."""
    from tabulate import tabulate

    whole = [b for b in benches if b["extra_info"]["scope"] == "model" and b["extra_info"]["model"] == model]
    key = lambda s: tuple(sorted(s.items()))  # noqa: E731
    median = {key(_settings(b)): b["stats"]["median"] for b in whole}
    rows = []
    for b in sorted(whole, key=lambda b: (b["extra_info"]["input"], -b["stats"]["median"])):
        s, info = _settings(b), b["extra_info"]
        base = median.get(
            key(
                {
                    **s,
                    "dtype": "fp32",
                    "format": "contiguous",
                    "executor": "eager",
                    "mode": None,
                    "cudnn": False,
                    "fold": False,
                }
            )
        )
        steps = []
        for factor, _ in FACTORS:
            other = _without(s, factor)
            before = median.get(key(other)) if other else None
            steps.append(_fmt(before / b["stats"]["median"] if before else None, ".2f"))
        executor = s["executor"] + (f" ({s['mode']})" if s["mode"] else "")
        rows.append(
            [
                s["input"],
                s["dtype"],
                s["format"],
                executor,
                _fmt(s["cudnn"]),
                _fmt(s["fold"]),
                f"{b['stats']['median'] * 1e3:.3f}",
                _fmt(info.get("gpu_ms"), ".3f"),
                _fmt(base / b["stats"]["median"] if base else None, ".2f"),
                *steps,
                _fmt(info.get("tflops_per_s"), ".1f"),
                _fmt(info.get("peak_pct"), ".1f"),
                _fmt(info.get("launch_bound")),
                _fmt(info.get("compile_s"), ".1f"),
                b["run"],
            ]
        )
    headers = [
        "input",
        "dtype",
        "format",
        "executor",
        "cuDNN bench",
        "BN folded",
        "median ms",
        "GPU ms",
        "vs fp32 eager",
        *(label for _, label in FACTORS),
        "TFLOP/s",
        "% peak",
        "launch-bound",
        "compile s",
        "run",
    ]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def tables(paths: list[Path], device: str, logs: str) -> str:
    benches, machine = load(paths)
    require_timer(benches, device, logs)
    gpu = machine.get("gpu") or machine.get("cpu_brand")
    validity = ", ".join(
        f"{k} {machine[k]}"
        for k in ("gpu_sm_clock_mhz", "gpu_max_sm_clock_mhz", "gpu_power_limit_w")
        if machine.get(k) is not None
    )
    return "\n".join(
        [
            f"\n{gpu}, torch {machine.get('torch')}, CUDA {machine.get('cuda')}, cuDNN {machine.get('cudnn')}, "
            f"driver {machine.get('gpu_driver')}" + (f" ({validity})" if validity else ""),
            "\nWhole model (fp32 eager, the fp32 run) beside torch.utils.benchmark, stage sum / whole, CV:\n",
            accuracy_table(benches, device),
            "\nresnet50 speed ladder (whole model; each '×' column: this row against the same row without that "
            "factor):\n",
            ladder_table(benches),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    pre = sub.add_parser("preflight", help="one line and exit 1 when the check can't run here")
    pre.add_argument("--device", default="cuda")
    pre.add_argument("--compile", action="store_true", help="the compile part will run")
    tab = sub.add_parser("tables", help="the tables from the runs' JSON files")
    tab.add_argument("--device", default="cuda")
    tab.add_argument("--logs", default="the logs beside the JSON files")
    tab.add_argument("json", nargs="+", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "preflight":
            preflight(args.device, args.compile)
        else:
            print(tables(args.json, args.device, args.logs))
    except CheckError as error:
        print(f"gpu_check: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
