"""Tables of the GPU check: our medians beside torch.utils.benchmark's, stage sum / whole, CV, and the mode table.

Reads the pytest-benchmark JSON files that scripts/gpu_check.sh wrote; times the reference with
torch.utils.benchmark.Timer(...).blocked_autorange(min_run_time=1) on a fresh model built the same way.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.utils.benchmark as tbench
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fixtures.zoo import STAGES, build_model, make_input, parse_input  # noqa: E402


def utils_benchmark_ms(model_name: str, input_label: str, device: str) -> float:
    """torch.utils.benchmark's median for one forward, as a user of that tool would take it."""
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


def load(paths: list[Path]) -> tuple[list[dict], dict]:
    benches, machine = [], {}
    for path in paths:
        data = json.loads(path.read_text())
        benches += data["benchmarks"]
        machine = data["machine_info"]
    return benches, machine


def accuracy_table(benches: list[dict], device: str) -> str:
    plain = [b for b in benches if b["extra_info"]["dtype"] == "fp32" and b["extra_info"]["executor"] == "eager"
             and b["extra_info"]["memory_format"] == "contiguous" and not b["extra_info"].get("fold_bn")]
    rows = []
    for whole in (b for b in plain if b["extra_info"]["scope"] == "model"):
        info = whole["extra_info"]
        stages = {b["extra_info"]["module"]: b["stats"]["median"] for b in plain
                  if b["group"] == whole["group"] and b["extra_info"]["scope"] == "stage"}
        ours = whole["stats"]["median"] * 1e3
        ref = utils_benchmark_ms(info["model"], info["input"], device)
        ratio = sum(stages.values()) * 1e3 / ours if set(stages) == set(STAGES) else None
        rows.append([info["model"], info["input"], f"{ours:.3f}", f"{ref:.3f}", f"{100 * (ours / ref - 1):+.1f}%",
                     "-" if ratio is None else f"{ratio:.3f}", f"{100 * whole['stats']['stddev'] / whole['stats']['mean']:.1f}%",
                     whole["stats"]["rounds"]])
    headers = ["model", "input", "ours median ms", "utils.benchmark ms", "diff", "stage sum / whole", "CV", "rounds"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def mode_table(benches: list[dict]) -> str:
    whole = [b for b in benches if b["extra_info"]["scope"] == "model" and b["extra_info"]["model"] == "resnet50"]
    base = {b["extra_info"]["input"]: b["stats"]["median"] for b in whole
            if (b["extra_info"]["dtype"], b["extra_info"]["memory_format"], b["extra_info"]["executor"]) ==
            ("fp32", "contiguous", "eager") and not b["extra_info"].get("fold_bn")}
    rows = []
    for b in sorted(whole, key=lambda b: (b["extra_info"]["input"], b["stats"]["median"])):
        i = b["extra_info"]
        median = b["stats"]["median"]
        fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
        rows.append([i["input"], i["dtype"], i["memory_format"],
                     i["executor"] + (f" ({i['compile_mode']})" if i.get("compile_mode") else ""),
                     "yes" if i.get("fold_bn") else "no", f"{median * 1e3:.3f}",
                     fmt(base.get(i["input"], 0) / median if i["input"] in base else None, ".2f"),
                     fmt(i.get("tflops_per_s"), ".1f"), fmt(i.get("peak_pct"), ".1f"),
                     fmt(i.get("host_ms"), ".3f"), fmt(i.get("launch_bound"), ""), fmt(i.get("compile_s"), ".1f")])
    headers = ["input", "dtype", "format", "executor", "BN folded", "median ms", "speedup vs fp32 eager", "TFLOP/s",
               "% peak", "host ms", "launch-bound", "compile s"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("json", nargs="+", type=Path)
    args = parser.parse_args()
    benches, machine = load(args.json)
    print(f"\n{machine.get('gpu') or machine.get('cpu_brand')}, torch {machine.get('torch')}, "
          f"CUDA {machine.get('cuda')}, cuDNN {machine.get('cudnn')}, driver {machine.get('gpu_driver')}")
    print("\nWhole model (fp32 eager) beside torch.utils.benchmark, stage sum / whole, CV:\n")
    print(accuracy_table(benches, args.device))
    print("\nresnet50 modes (whole model):\n")
    print(mode_table(benches))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
