"""The allocator held steady (fixtures/allocator.py): what it asks of glibc, that a forward's blocks then stop
page-faulting (counted by the kernel, not timed), and that a baseline under the other policy is another configuration."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.allocator import INT_MAX, M_MMAP_MAX, M_TRIM_THRESHOLD, apply
from fixtures.json_contract import differences

ROOT = Path(__file__).resolve().parent.parent


def test_steady_asks_glibc_for_no_mmap_and_no_trim():
    calls = []
    assert apply("steady", lambda param, value: calls.append((param, value)) or 1) == "steady"
    assert calls == [(M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, INT_MAX)]
    assert apply("steady", lambda param, value: 0) == "system (mallopt refused)"
    calls.clear()
    assert apply("system", lambda param, value: calls.append(param) or 1) == "system" and calls == []


# resnet18's forward at pascal on one thread, 5 times to warm up, then the minor page faults of the next 5 as the
# kernel counts them (no clock involved).
FAULTS = """
import resource, sys
from fixtures.allocator import apply
print(apply(sys.argv[1]))
import torch, torchvision
torch.set_num_threads(1)
model, x = torchvision.models.resnet18().eval(), torch.randn(1, 3, 500, 334)
with torch.inference_mode():
    for _ in range(5):
        model(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        model(x)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_held_steady_a_warm_forward_page_faults_no_more():
    def faults(policy: str) -> tuple[str, int]:
        done = subprocess.run([sys.executable, "-c", FAULTS, policy], cwd=ROOT, capture_output=True, text=True,
                              check=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
        applied, count = done.stdout.split()
        return applied, int(count)

    steady, system = faults("steady"), faults("system")
    assert steady[0] == "steady" and system[0] == "system"
    assert steady[1] < 100  # freed blocks reused: no forward faults after the warm-up
    assert system[1] > 5000  # glibc's default: activations mapped fresh and faulted again (29,000-32,000 here)


def test_a_baseline_under_the_other_policy_is_another_configuration():
    steady, system = {"malloc": "steady"}, {"malloc": "system"}
    assert differences(system, steady) == ["malloc: baseline 'system', now 'steady'"]
    assert differences({}, steady) == ["malloc: baseline 'system', now 'steady'"]  # saved before it was recorded
    assert differences(steady, dict(steady)) == []
