"""The machine check before a run (fixtures/machine_check.py): each reading from fake /proc, /sys and cgroup files and a
fake NVML, what the check makes of them, and the header lines that say what to do."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from fixtures.machine_check import BUSY_CORES, MachineCheck, Sources, check, cpu_quota, cpu_times, nvml_gpu_reading
from fixtures.render.terminal import machine_lines

STAT = "cpu  {user} 0 {system} {idle} 0 0 0 {steal} 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 1 2 3\n"


def fake_machine(tmp_path: Path, before: dict, after: dict, files: dict[str, str] | None = None,
                 cpus: int = 2, affinity: int = 2, own_s: float = 0.0, gpu=None) -> Sources:
    """/proc/stat reads `before`, then (after the window's sleep) `after`; other files as given."""
    proc, sys, cgroup = tmp_path / "proc", tmp_path / "sys", tmp_path / "cgroup"
    for folder in (proc, sys, cgroup):
        folder.mkdir(exist_ok=True)
    (proc / "stat").write_text(STAT.format(**before))
    for name, text in (files or {}).items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    own = iter([0.0, own_s])

    def sleep(seconds: float) -> None:
        (proc / "stat").write_text(STAT.format(**after))

    return Sources(proc=proc, sys=sys, cgroup=cgroup, sleep=sleep, own_cpu_s=lambda: next(own),
                   affinity=lambda: affinity, cpu_count=lambda: cpus, gpu=gpu)


QUIET = ({"user": 1000, "system": 100, "idle": 5000, "steal": 0}, {"user": 1001, "system": 100, "idle": 5049, "steal": 0})
# 50 jiffies of 2 CPUs in the window: one whole CPU busy (25 of 50 jiffies), of which this process's own 0.1 s
# of 0.25 s is 0.4 of a core: others 0.6.
BUSY = ({"user": 1000, "system": 100, "idle": 5000, "steal": 0}, {"user": 1020, "system": 105, "idle": 5025, "steal": 0})


def test_a_quiet_machine_reads_quiet(tmp_path):
    c = check(1, 1, sources=fake_machine(tmp_path, *QUIET), window_s=0.25)
    assert c.others_cores == pytest.approx(0.04) and c.steal_cores == 0 and not c.busy and c.fine
    assert (c.cpus, c.affinity, c.quota_cores, c.usable_cores, c.load1, c.governor) == (2, 2, None, 2.0, None, None)
    (line,) = machine_lines(c)
    assert line == (
        "resnet-profile: machine check: 2 usable cores (2 of 2 CPUs, no CPU quota), 1 torch thread; other processes "
        "used 0.04 cores over 0.25 s, load unknown; governor not readable: quiet"
    )


def test_other_processes_cpu_use_is_the_windows_less_this_processs_own(tmp_path):
    c = check(2, 1, sources=fake_machine(tmp_path, *BUSY, own_s=0.1), window_s=0.25)
    assert c.others_cores == pytest.approx(1.0 - 0.4) and c.busy
    lines = machine_lines(c)
    assert lines[1].startswith("resnet-profile: WARNING: the machine is busy: other processes used 0.60 of its 2 cores")
    assert "Use --bench-threads 1" in lines[1] and "--bench-regression" in lines[1]


def test_one_thread_on_a_busy_machine_is_not_told_to_use_one_thread(tmp_path):
    lines = machine_lines(check(1, 1, sources=fake_machine(tmp_path, *BUSY), window_s=0.25))
    assert "busy" in lines[1] and "--bench-threads" not in lines[1]


def test_the_threshold_of_busy_is_a_quarter_of_a_core():
    kwargs = dict(window_s=0.25, cpus=2, affinity=2, quota_cores=None, steal_cores=0.0, load1=None, governor=None,
                  threads=1, processes=1)
    assert MachineCheck(others_cores=BUSY_CORES, **kwargs).busy
    assert not MachineCheck(others_cores=BUSY_CORES - 0.01, **kwargs).busy
    assert not MachineCheck(others_cores=None, **kwargs).busy  # unreadable: not guessed


def test_stolen_time_counts_as_others(tmp_path):
    steal = ({"user": 0, "system": 0, "idle": 0, "steal": 0}, {"user": 0, "system": 0, "idle": 40, "steal": 10})
    c = check(1, 1, sources=fake_machine(tmp_path, *steal), window_s=0.25)
    assert c.steal_cores == pytest.approx(0.4) and c.others_cores == pytest.approx(0.4) and c.busy
    assert "(stolen 0.40)" in machine_lines(c)[0]


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({"cgroup/cpu.max": "150000 100000\n"}, 1.5),
        ({"cgroup/cpu.max": "max 100000\n"}, None),
        ({"cgroup/cpu/cpu.cfs_quota_us": "50000\n", "cgroup/cpu/cpu.cfs_period_us": "100000\n"}, 0.5),
        ({"cgroup/cpu/cpu.cfs_quota_us": "-1\n", "cgroup/cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
    ids=["v2", "v2-unlimited", "v1", "v1-unlimited", "none"],
)
def test_the_containers_cpu_quota(tmp_path, files, quota):
    fake_machine(tmp_path, *QUIET, files=files)
    assert cpu_quota(tmp_path / "cgroup") == quota


def test_threads_times_workers_beyond_the_usable_cores_is_oversubscribed(tmp_path):
    files = {"cgroup/cpu.max": "150000 100000\n", "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor": "powersave\n",
             "proc/loadavg": "1.50 0.80 0.40 2/300 1234\n"}
    c = check(2, 2, sources=fake_machine(tmp_path, *QUIET, files=files, cpus=4, affinity=4), window_s=0.25)
    assert (c.usable_cores, c.oversubscribed, c.governor, c.load1) == (1.5, True, "powersave", 1.5)
    lines = machine_lines(c)
    assert lines[0].startswith("resnet-profile: machine check: 1.5 usable cores (4 of 4 CPUs, CPU quota 1.5), 2 torch "
                               "threads x 2 workers;")
    assert lines[1] == (
        "resnet-profile: WARNING: oversubscribed: 2 torch threads x 2 measuring processes need 4 cores, the run may "
        "use 1.5 (4 CPUs, CPU quota 1.5): use --bench-threads 1 or fewer -n workers"
    )
    assert "governor is 'powersave'" in lines[2]
    assert not check(1, 1, sources=fake_machine(tmp_path, *QUIET, files=files), window_s=0.25).oversubscribed


def test_cpu_times_read_the_cpu_line():
    assert cpu_times("cpu  10 2 3 100 5 1 1 4 0 0\n") == (10 + 2 + 3 + 1 + 1 + 4, 126, 4)
    assert cpu_times(None) is None and cpu_times("intr 1 2\n") is None


class FakeNvml:
    NVML_CLOCK_SM = 0

    def nvmlInit(self):
        pass

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return [SimpleNamespace(pid=4242, usedGpuMemory=512 * 2**20), SimpleNamespace(pid=self.own, usedGpuMemory=0)]

    def nvmlDeviceGetClockInfo(self, handle, kind):
        return 1980

    def nvmlDeviceGetMaxClockInfo(self, handle, kind):
        return 1980

    def nvmlDeviceGetDefaultApplicationsClock(self, handle, kind):
        return 1755

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle):
        return 0


def test_other_processes_on_the_gpu_are_named(tmp_path, monkeypatch):
    import os

    nvml = FakeNvml()
    nvml.own = os.getpid()
    monkeypatch.setattr("fixtures.device.device_index", lambda device: 0)
    reading = nvml_gpu_reading("cuda:0", nvml)
    assert reading["other_processes"] == [{"pid": 4242, "used_mib": 512.0}]
    assert reading["clocks"]["sm_mhz"] == 1980 and reading["clocks"]["reasons"] == []
    c = check(1, 1, ["cuda:0"], fake_machine(tmp_path, *QUIET, gpu=lambda device: reading), window_s=0.25)
    assert c.gpu_shared == ["cuda:0"] and not c.fine
    assert machine_lines(c)[1] == (
        "resnet-profile: WARNING: cuda:0 is shared: other processes run on it (pid 4242): its figures include their "
        "work; measure on an idle GPU"
    )
    assert c.info()["gpus"]["cuda:0"]["other_processes"][0]["pid"] == 4242


def test_the_readings_go_into_machine_info(tmp_path):
    info = check(2, 1, sources=fake_machine(tmp_path, *BUSY), window_s=0.25).info()
    assert {"others_cores", "steal_cores", "load1", "quota_cores", "usable_cores", "threads", "processes", "busy",
            "oversubscribed", "governor", "gpus", "window_s"} <= info.keys()
    assert info["busy"] is True
