"""The matrix spread over pytest-xdist workers (-n N): the same JSON, verdicts and summary as a serial run; a worker
that dies fails its group's cases with one line and loses nothing else; a run stopped early keeps what it measured;
each worker owns its device. End to end in subprocesses on a fake clock; the binding and the checks with faked
devices."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import torch

from fixtures import distributed
from fixtures.matrix import Matrix, build_groups
from fixtures.options import parse_inputs
from stubs import project_copy, run_suite, stages_twice_as_fast

ROOT = Path(__file__).resolve().parent.parent

# The run's groups time with a fake clock (each group its own, so its figures don't depend on the worker); a group
# of the model named in RESNET_PROFILE_TEST_CRASH kills its worker outright, as a segfault would.
CONFTEST = '''
pytest_plugins = ["fixtures.plugin"]

import os

import pytest


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    from fixtures.plugin import SESSION
    from fixtures.runner import GroupRunner
    from fixtures.timers import FakeClock

    class Runner(GroupRunner):
        def run(self, group, modules, *args):
            if group.model == os.environ.get("RESNET_PROFILE_TEST_CRASH"):
                os._exit(3)
            return super().run(group, modules, *args)

    session = config.stash[SESSION]
    session._runner_factory = lambda plan: Runner(plan, clock_factory=lambda device: FakeClock((0.004, 0.005, 0.0045, 0.0061, 0.0038), (0.001,)))
    # The reference workload on a fake clock too (every sample 10 ms): the machine never moves between these runs.
    from fixtures.reference import Reference

    ticks = iter(range(10**9))
    session.reference = Reference(lambda: 1, timer=lambda: next(ticks) * 0.01, work=lambda threads: lambda: None,
                                  every_s=float("inf"))


# RESNET_PROFILE_TEST_CORES=N fakes a host of N cores: a worker writes the cores it binds itself to in
# bound-<worker>.txt; an empty set is refused as the kernel refuses it.
if os.environ.get("RESNET_PROFILE_TEST_CORES"):
    def _bind(pid, cores):
        if not cores:
            raise OSError(22, "Invalid argument")
        with open(f"bound-{os.environ['PYTEST_XDIST_WORKER']}.txt", "w") as out:
            out.write(",".join(map(str, sorted(cores))))

    os.sched_getaffinity = lambda pid: set(range(int(os.environ["RESNET_PROFILE_TEST_CORES"])))
    os.sched_setaffinity = _bind
'''

# Stages budgeted tight (they fail), the rest loose.
BUDGETS = """
[[budget]]
device = "cpu"
median_ms = 1e9

[[budget]]
device = "cpu"
module = "layer*"
scope = "stage"
median_ms = 1.0
"""

ARGS = ("--bench-devices", "cpu", "--bench-models", "resnet18,resnet34", "--bench-inputs", "1x3x64x64",
        "--bench-scopes", "model,stage", "--bench-rounds", "6", "--bench-threads", "1", "--bench-warmup", "1",
        "-p", "no:cacheprovider", "-k", "not memory_budget", "-rf")


def _pytest(folder: Path, *args: str, crash: str | None = None, cores: int | None = None) -> subprocess.CompletedProcess:
    env = {"RESNET_PROFILE_TEST_CRASH": crash} if crash else {}
    if cores:
        env["RESNET_PROFILE_TEST_CORES"] = str(cores)
    return run_suite(folder, *ARGS, *args, env=env, clear=("RESNET_PROFILE_TEST_CRASH", "RESNET_PROFILE_TEST_CORES"))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return project_copy(tmp_path_factory.mktemp("spread"), CONFTEST, {"budgets.toml": BUDGETS})


def _benchmarks(path: Path) -> dict[str, dict]:
    """Each benchmark by name: what a run of it says, the worker that measured it aside. Each case is in the file once
    (the controller records what the workers hand it: a case handed twice must not be saved twice)."""
    out = {}
    saved = json.loads(path.read_text())["benchmarks"]
    names = [bench["name"] for bench in saved]
    assert len(names) == len(set(names)), f"recorded more than once: {sorted({n for n in names if names.count(n) > 1})}"
    for bench in saved:
        info = {k: v for k, v in bench["extra_info"].items() if k != "worker"}
        out[bench["name"]] = {"group": bench["group"], "params": bench["params"], "options": bench["options"],
                              "stats": bench["stats"], "extra_info": info, "fullname": bench["fullname"]}
    return out


def _failures(stdout: str) -> list[str]:
    """The short test summary's FAILED lines, sorted (workers finish in any order)."""
    return sorted(line for line in stdout.splitlines() if line.startswith("FAILED "))


def _summary(stdout: str) -> list[str]:
    """The resnet-profile section's lines, wall times masked."""
    lines = stdout.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("=") and "resnet-profile" in line)
    end = next(n for n in range(start + 1, len(lines)) if lines[n].startswith("="))
    masked = [re.sub(r"\d+\.\d+ s\b", "<s>", re.sub(r"\s\d+\.\d+$", " <wall>", line)) for line in lines[start:end]]
    masked = [line.replace(" (summed over 2 workers)", "") for line in masked]  # the one line -n adds
    return masked


@pytest.fixture(scope="module")
def runs(project: Path) -> dict[str, subprocess.CompletedProcess]:
    """A baseline (stages twice as fast as now), then the gated run serial and on two workers."""
    first = _pytest(project, "--benchmark-json=first.json")
    assert first.returncode == 0, first.stdout + first.stderr
    stages_twice_as_fast(project / "first.json", project / "baseline.json")
    gated = ("--bench-budgets=budgets.toml", "--bench-regression=baseline.json")
    return {
        "serial": _pytest(project, *gated, "--benchmark-json=serial.json"),
        "spread": _pytest(project, *gated, "--benchmark-json=spread.json", "-n", "2"),
    }


def test_two_workers_write_the_serial_runs_json(project, runs):
    serial, spread = _benchmarks(project / "serial.json"), _benchmarks(project / "spread.json")
    assert len(serial) == 22
    assert spread == serial
    workers = {b["extra_info"]["worker"] for b in json.loads((project / "spread.json").read_text())["benchmarks"]}
    assert workers == {"gw0", "gw1"}  # both groups measured, one on each worker
    machines = [json.loads((project / f).read_text())["machine_info"]["cpu_threads"] for f in ("serial.json", "spread.json")]
    assert machines == [1, 1]


def test_two_workers_give_the_serial_runs_verdicts_and_summary(runs):
    serial, spread = runs["serial"], runs["spread"]
    assert serial.returncode == spread.returncode == 1
    failed = _failures(serial.stdout)
    assert any("over budget: median_ms" in line for line in failed)
    assert any("slower than" in line or "regress" in line for line in failed), failed
    assert _failures(spread.stdout) == failed
    assert _summary(spread.stdout) == _summary(serial.stdout)
    assert "2 pytest-xdist workers, one group at a time each: 1 of the 2 CPU cores each (1 torch thread)" in " ".join(
        spread.stdout.split()) or os.cpu_count() != 2


def test_a_worker_that_dies_fails_its_group_in_one_line_and_the_rest_is_saved(project, runs):
    result = _pytest(project, "--benchmark-json=crash.json", "-n", "2", crash="resnet34")
    assert result.returncode == 1, result.stdout + result.stderr
    failed = _failures(result.stdout)
    resnet34 = [line for line in failed if "resnet34-" in line]
    assert len(resnet34) == 12, failed  # every case of the group (the one running, those left) and its memory test
    # Each failure says it in one line, under the test's own name.
    said = re.findall(r"^_+ (test_\w+\[resnet34-[^\]]+\]) _+\n\[gw\d\] linux.*\n(.*)\n", result.stdout, flags=re.M)
    assert len(said) == 12, result.stdout
    for _, line in said:
        assert re.fullmatch(r"resnet34-1x3x64x64-cpu could not be measured: worker gw\d died while measuring it "
                            r"\(a segfault, the OOM killer, os\._exit\); not run again", line), line
    assert not [line for line in failed if "resnet18-" in line]
    saved = _benchmarks(project / "crash.json")
    assert sorted(saved) == sorted(n for n in _benchmarks(project / "first.json") if "resnet18-" in n)
    assert "Traceback" not in result.stdout


def _bound(project: Path) -> dict[str, str]:
    """The cores each worker of the last run bound itself to (RESNET_PROFILE_TEST_CORES), by worker id."""
    return {f.stem[len("bound-"):]: f.read_text() for f in project.glob("bound-*.txt")}


def _unbind(project: Path) -> None:
    for old in project.glob("bound-*.txt"):
        old.unlink()


def test_under_n_1_a_dead_workers_successor_measures_the_groups_after_the_crash(project, runs):
    """xdist names the successor of -n 1's gw0 gw1, past the last share of the cores: on a faked 4-core host it takes
    gw0's place (all the cores, not an empty set past the last share), measures resnet34's group after resnet18's
    crash, and the run saves it (exit 1 for resnet18's cases, not an internal error with nothing saved)."""
    _unbind(project)
    result = _pytest(project, "--benchmark-json=crash1.json", "-n", "1", crash="resnet18", cores=4)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "INTERNALERROR" not in result.stdout + result.stderr
    assert "replacing crashed worker gw0" in result.stdout
    failed = _failures(result.stdout)
    assert len(failed) == 12 and all("resnet18-" in line for line in failed), failed
    saved = json.loads((project / "crash1.json").read_text())["benchmarks"]
    assert sorted(b["name"] for b in saved) == sorted(n for n in _benchmarks(project / "first.json") if "resnet34-" in n)
    assert {b["extra_info"]["worker"] for b in saved} == {"gw1"}
    assert _bound(project) == {"gw0": "0,1,2,3", "gw1": "0,1,2,3"}


def test_under_n_2_a_dead_workers_successor_takes_its_cores(project, runs):
    """On a faked 4-core host gw2, the successor under -n 2, binds itself to the dead worker's cores: not an empty set
    past the last share, nor the share the other worker holds; the groups left are measured. Which worker dies is the
    scheduler's choice (the one handed resnet34's group): xdist names it. (-n 1: the test above.)"""
    shares = {"gw0": "0,1", "gw1": "2,3"}
    _unbind(project)
    result = _pytest(project, "--benchmark-json=cores.json", "-n", "2", "--bench-models",
                     "resnet18,resnet34,resnet50", crash="resnet34", cores=4)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "INTERNALERROR" not in result.stdout + result.stderr
    dead = re.findall(r"replacing crashed worker (gw\d+)", result.stdout)
    assert len(dead) == 1 and dead[0] in shares, result.stdout
    assert _bound(project) == {**shares, "gw2": shares[dead[0]]}
    measured = {b["group"] for b in json.loads((project / "cores.json").read_text())["benchmarks"]}
    assert measured == {f"{m}-1x3x64x64-cpu" for m in ("resnet18", "resnet50")}


def test_a_run_stopped_early_still_saves_what_its_groups_measured(project, runs):
    """-x stops at the first failing case (a stage over budget); the cases measured with it are saved all the same,
    marked as not run."""
    result = _pytest(project, "--benchmark-json=stopped.json", "--bench-budgets=budgets.toml", "-x",
                     "--bench-models", "resnet18")
    assert result.returncode == 1, result.stdout + result.stderr
    saved = json.loads((project / "stopped.json").read_text())["benchmarks"]
    ran = [b["name"] for b in saved if not b["extra_info"].get("test_not_run")]
    not_run = [b["name"] for b in saved if b["extra_info"].get("test_not_run")]
    assert len(saved) == 11
    assert ran == ["test_latency[resnet18-1x3x64x64-cpu-model]", "test_latency[resnet18-1x3x64x64-cpu-stage-conv1]",
                   "test_latency[resnet18-1x3x64x64-cpu-stage-bn1]", "test_latency[resnet18-1x3x64x64-cpu-stage-relu]",
                   "test_latency[resnet18-1x3x64x64-cpu-stage-maxpool]",
                   "test_latency[resnet18-1x3x64x64-cpu-stage-layer1]"]
    assert len(not_run) == 5
    first = _benchmarks(project / "first.json")
    for bench in saved:  # the figures are the measured ones
        assert bench["stats"]["data"] == first[bench["name"]]["stats"]["data"]


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "spread"])
def test_a_regression_only_the_whole_runs_evidence_shows_fails_the_run(project, runs, workers):
    """The 20 stages are twice as slow as the baseline, each at p = 1/924 (6 vs 6 rounds, apart). At alpha 0.002 over
    22 cases a group's 10 p-values reach 0.002 x 10/22 = 0.00091 (not under it: no case fails), the run's 20 reach
    0.002 x 20/22 = 0.0018: the run fails (exit 1) and says why, with no failed case."""
    result = _pytest(project, "--bench-regression=baseline.json", "--bench-regression-alpha=0.002", *workers)
    assert result.returncode == 1, result.stdout + result.stderr
    assert _failures(result.stdout) == []
    text = " ".join(result.stdout.split())
    assert "significant with the whole run's evidence only, so the run fails, not the cases (20)" in text


def test_benchmark_only_works_on_workers(project):
    """pytest-benchmark refuses --benchmark-only under xdist (it has switched itself off there); the suite applies it."""
    result = _pytest(project, "--benchmark-json=only.json", "-n", "2", "--benchmark-only", "--bench-models", "resnet18",
                     "--bench-scopes", "model")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b1 passed, 2 skipped\b", result.stdout), result.stdout[-600:]  # memory and structure skipped
    assert list(_benchmarks(project / "only.json")) == ["test_latency[resnet18-1x3x64x64-cpu-model]"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_each_worker_measures_on_its_own_gpu(tmp_path):
    """The real clock and devices: `-n 1 --bench-devices cuda` times on GPU 0 by CUDA events from worker gw0; with two
    GPUs or more, `-n 2 --bench-devices cuda:0,cuda:1` puts cuda:1's group on gw1, on GPU 1 (its UUID where NVML
    has it)."""
    folder = project_copy(tmp_path, (ROOT / "conftest.py").read_text())
    small = ("--bench-models", "resnet18", "--bench-inputs", "1x3x64x64", "--bench-scopes", "model", "--bench-rounds",
             "6", "-p", "no:cacheprovider", "-k", "latency")
    one = run_suite(folder, *small, "--bench-devices", "cuda", "-n", "1", "--benchmark-json=one.json")
    assert one.returncode == 0, one.stdout + one.stderr
    [case] = json.loads((folder / "one.json").read_text())["benchmarks"]
    info = case["extra_info"]
    assert (info["worker"], info["device_index"], info["timer"]) == ("gw0", 0, "cuda_event")
    assert info["device_name"] == torch.cuda.get_device_name(0)
    if torch.cuda.device_count() < 2:
        return
    two = run_suite(folder, *small, "--bench-devices", "cuda:0,cuda:1", "-n", "2", "--benchmark-json=two.json")
    assert two.returncode == 0, two.stdout + two.stderr
    placed = {b["extra_info"]["device"]: (b["extra_info"]["worker"], b["extra_info"]["device_index"])
              for b in json.loads((folder / "two.json").read_text())["benchmarks"]}
    assert placed == {"cuda:0": ("gw0", 0), "cuda:1": ("gw1", 1)}
    uuids = {b["extra_info"]["device_uuid"] for b in json.loads((folder / "two.json").read_text())["benchmarks"]}
    assert None in uuids or len(uuids) == 2  # two GPUs, two UUIDs (where NVML answers)


# --- the pieces, with faked devices ---------------------------------------------------------------------------------


def test_each_worker_gets_an_equal_disjoint_share_of_the_cores():
    assert [distributed.cpu_share(range(8), k, 2) for k in range(2)] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert [distributed.cpu_share(range(7), k, 3) for k in range(3)] == [[0, 1], [2, 3], [4, 5]]  # core 6 idle
    assert [distributed.cpu_share([4, 5], k, 3) for k in range(3)] == [[4], [5], [4]]  # more workers than cores
    assert distributed.cpu_share([3, 1, 2, 0], 1, 2) == [2, 3]


def test_a_worker_owns_its_gpu_and_its_cores(monkeypatch):
    import torch

    monkeypatch.setattr(torch, "set_num_threads", lambda n: set_to.update(threads=n))  # this process's stay as they are
    set_to: dict = {}
    binding = distributed.bind_worker(
        "gw1", 2, None, set_affinity=lambda pid, cores: set_to.update(cores=cores),
        get_affinity=lambda pid: set(range(4)), set_gpu=lambda index: set_to.update(gpu=index), device_count=lambda: 2)
    assert binding == distributed.Binding("gw1", 1, (2, 3), place=1)
    assert set_to == {"cores": {2, 3}, "gpu": 1, "threads": 2}
    # Without a GPU for it, a worker owns cores only; --bench-threads sets the threads.
    set_to.clear()
    binding = distributed.bind_worker(
        "gw2", 3, 1, set_affinity=lambda pid, cores: set_to.update(cores=cores),
        get_affinity=lambda pid: set(range(6)), set_gpu=lambda index: set_to.update(gpu=index), device_count=lambda: 2)
    assert binding.gpu is None and set_to == {"cores": {4, 5}, "threads": 1}


@pytest.mark.parametrize(("devices", "workers", "count", "message"), [
    (("cuda",), 3, 2, "-n 3 with --bench-devices cuda: each worker owns one GPU and torch.cuda.device_count() is 2; "
                      "run -n 2 or fewer"),
    (("cuda:0", "cuda:3"), 2, 4, "--bench-devices cuda:0,cuda:3 with -n 2: worker k owns cuda:k, so cuda:3 needs -n 4 "
                                 "or more"),
    (("cpu", "cuda"), 2, 2, None),
    (("cuda:0", "cuda:1"), 2, 2, None),
    (("cpu",), 8, 0, None),
])
def test_the_devices_must_fit_the_workers(devices, workers, count, message):
    if message is None:
        distributed.check_devices(devices, workers, device_count=lambda: count)
        return
    with pytest.raises(pytest.UsageError) as raised:
        distributed.check_devices(devices, workers, device_count=lambda: count)
    assert str(raised.value) == message


def test_a_test_belongs_to_its_group():
    groups = build_groups(("resnet18",), parse_inputs("1x3x64x64"), ("cpu", "cuda:1"))
    matrix = Matrix(groups, ("model", "stage"))
    assert distributed.group_of("benchmarks/test_latency.py::test_latency[resnet18-1x3x64x64-cuda1-stage-layer2]",
                                matrix).id == "resnet18-1x3x64x64-cuda1"
    assert distributed.group_of("benchmarks/test_memory.py::test_memory[resnet18-1x3x64x64-cpu]",
                                matrix).id == "resnet18-1x3x64x64-cpu"
    assert distributed.group_of("benchmarks/test_structure.py::test_structure[resnet18-1x3x64x64]", matrix) is None
    assert distributed.group_of("tests/test_x.py::test_y", matrix) is None


def test_the_worker_count_comes_from_xdist():
    class Option:
        numprocesses = 3
        dist = "load"

    class Config:
        option = Option()

    assert distributed.worker_count(Config()) == 3  # type: ignore[arg-type]
    Option.dist = "no"
    assert distributed.worker_count(Config()) == 0  # type: ignore[arg-type]


class FakeNode:
    """What the scheduler sees of a worker: its id, the tests it was sent, whether it was told to shut down."""

    def __init__(self, worker: str) -> None:
        self.gateway = type("Gateway", (), {"id": worker})()
        self.workerinput: dict = {}  # what the controller's pytest_configure_node adds to the worker's input
        self.sent: list[int] = []
        self.shutting_down = False

    def send_runtest_some(self, indices: list[int]) -> None:
        self.sent.extend(indices)

    def shutdown(self) -> None:
        self.shutting_down = True


def _scheduler(devices: tuple[str, ...], workers: int, crashes: list, models=("resnet18", "resnet34")):
    class Option:
        loadscopereorder = False
        numprocesses = workers

    class Config:
        option = Option()

        @staticmethod
        def getvalue(name: str) -> list[str]:
            return [f"{workers}*popen"] if name == "tx" else []

    groups = build_groups(models, parse_inputs("1x3x64x64"), devices)
    matrix = Matrix(groups, ("model", "stage"))
    tests = [f"benchmarks/test_latency.py::test_latency[{c.id}]" for c in matrix.cases()]
    tests += [f"benchmarks/test_structure.py::test_structure[{key}]" for key in matrix.structure_keys()]
    scheduler = distributed.make_scheduler(Config(), None, matrix, crashes.append)
    nodes = [FakeNode(f"gw{k}") for k in range(workers)]
    for node in nodes:
        scheduler.add_node(node)
        scheduler.add_node_collection(node, tests)
    scheduler.schedule()
    return scheduler, nodes, tests


def _run_all(scheduler, nodes: list[FakeNode]) -> None:
    """Complete what each node was sent, round after round, as workers would."""
    done: dict[FakeNode, int] = {node: 0 for node in nodes}
    while any(done[n] < len(n.sent) for n in nodes if n in scheduler.assigned_work):
        for node in [n for n in nodes if n in scheduler.assigned_work]:
            while done[node] < len(node.sent):
                scheduler.mark_test_complete(node, node.sent[done[node]])
                done[node] += 1


def test_a_group_runs_whole_on_one_worker_and_a_cuda_n_group_on_worker_n():
    scheduler, nodes, tests = _scheduler(("cuda:0", "cuda:1"), 2, [])
    _run_all(scheduler, nodes)
    assert scheduler.tests_finished
    latency = {n.gateway.id: {tests[i] for i in n.sent if "test_latency" in tests[i]} for n in nodes}
    for worker, sent in latency.items():
        assert sent and all(f"-cuda{worker[2:]}-" in t for t in sent), (worker, sent)
    # Every test sent once, every group's cases to one worker.
    assert sorted(i for n in nodes for i in n.sent) == list(range(len(tests)))


def test_a_lone_cuda_1_group_keeps_worker_1_alive():
    """Fewer units than workers: xdist's LoadScopeScheduling shuts the last workers down; worker 1 owns cuda:1."""
    class Option:
        loadscopereorder = False
        numprocesses = 2

    class Config:
        option = Option()

        @staticmethod
        def getvalue(name: str) -> list[str]:
            return ["2*popen"] if name == "tx" else []

    matrix = Matrix(build_groups(("resnet18",), parse_inputs("1x3x64x64"), ("cuda:1",)), ("model",))
    tests = [f"benchmarks/test_latency.py::test_latency[{c.id}]" for c in matrix.cases()]
    scheduler = distributed.make_scheduler(Config(), None, matrix, lambda crash: None)
    nodes = [FakeNode("gw0"), FakeNode("gw1")]
    for node in nodes:
        scheduler.add_node(node)
        scheduler.add_node_collection(node, tests)
    scheduler.schedule()
    assert nodes[1].sent == [0] and not nodes[1].shutting_down
    assert nodes[0].sent == [] and nodes[0].shutting_down


def test_a_dead_workers_group_is_not_run_again_and_its_other_units_are():
    crashes: list = []
    scheduler, nodes, tests = _scheduler(("cpu",), 2, crashes, models=("resnet18", "resnet34", "resnet50"))
    gw0, gw1 = nodes
    scheduler._assign_work_unit(gw0)  # gw0 holds a second unit (resnet50's group) when it dies
    first = [tests[i] for i in gw0.sent]
    assert "resnet18-" in first[0] and "resnet50-" in first[-1]
    scheduler.mark_test_complete(gw0, gw0.sent[0])  # one case done, then the worker dies
    crashed = scheduler.remove_node(gw0)
    assert crashed == first[1]
    assert [(c.worker, c.group) for c in crashes] == [("gw0", "resnet18-1x3x64x64-cpu")]
    assert crashes[0].pending == [t for t in first[2:] if "resnet18-" in t] and len(crashes[0].pending) == 9
    assert "resnet18-1x3x64x64-cpu" not in scheduler.workqueue  # not run again
    assert "resnet50-1x3x64x64-cpu" in scheduler.workqueue or any("resnet50-" in tests[i] for i in gw1.sent)
    _run_all(scheduler, [gw1])
    assert scheduler.tests_finished
    ran = {tests[i] for i in gw1.sent}
    assert all(t in ran for t in tests if "resnet34-" in t or "resnet50-" in t)
    assert not any("resnet18-" in t for t in ran if "test_latency" in t)


def test_a_dead_workers_successor_takes_its_place_its_gpu_and_its_cuda_n_groups(monkeypatch):
    """A faked two-GPU, 8-core host, -n 2: gw0 dies in a cuda:0 group; its successor, which xdist names gw2, is given
    place 0 (GPU 0 and the first half of the cores) and runs the cuda:0 groups left; gw1 keeps place 1."""
    from fixtures.distributed_hooks import ControllerHooks

    crashes: list = []
    hooks = ControllerHooks(None, None, lambda: None, 2)  # type: ignore[arg-type]  (places only)
    scheduler, nodes, tests = _scheduler(("cuda:0", "cuda:1"), 2, crashes, models=("resnet18", "resnet34", "resnet50"))
    gw0, gw1 = nodes
    for node in nodes:  # as xdist starts them
        hooks.pytest_configure_node(node)
    assert [n.workerinput[distributed.PLACE] for n in nodes] == [0, 1]
    assert all("-cuda0-" in tests[i] for i in gw0.sent)
    hooks.pytest_testnodedown(gw0, "Not properly terminated")  # xdist's order: this hook, the scheduler, the successor
    scheduler.remove_node(gw0)
    gw2 = FakeNode("gw2")
    hooks.pytest_configure_node(gw2)
    assert gw2.workerinput[distributed.PLACE] == 0
    scheduler.add_node(gw2)
    scheduler.add_node_collection(gw2, tests)
    scheduler.schedule()
    _run_all(scheduler, [gw1, gw2])
    assert scheduler.tests_finished
    crashed = crashes[0].group
    assert crashed.endswith("-cuda0")
    left = {t for t in tests if "-cuda0-" in t and crashed not in t}
    assert left and {tests[i] for i in gw2.sent if "test_latency" in tests[i]} == left
    assert all("-cuda1-" in tests[i] for i in gw1.sent if "test_latency" in tests[i])
    # The successor binds itself to place 0's GPU and cores.
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    bound: dict = {}
    binding = distributed.bind_worker(
        "gw2", 2, None, set_affinity=lambda pid, cores: bound.update(cores=cores),
        get_affinity=lambda pid: set(range(8)), set_gpu=lambda index: bound.update(gpu=index), device_count=lambda: 2,
        place=gw2.workerinput[distributed.PLACE])
    assert binding == distributed.Binding("gw2", 0, (0, 1, 2, 3), place=0)
    assert bound == {"cores": {0, 1, 2, 3}, "gpu": 0}


def test_places_go_to_workers_in_order_and_a_successor_takes_the_one_left():
    places = distributed.Places(3)
    assert [places.take(w) for w in ("gw0", "gw1", "gw2")] == [0, 1, 2]
    places.leave("gw1")
    assert places.take("gw3") == 1
    places.leave("gw0")
    places.leave("gw2")
    assert [places.take("gw4"), places.take("gw2")] == [0, 2]  # gw2's own number is free again
