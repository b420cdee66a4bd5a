"""Stand-ins the suite's own tests share: a ResNet skeleton, and a conftest snippet that makes one group fail."""

from __future__ import annotations

import torch
from torch import nn


class ResNetStub(nn.Module):
    """A stand-in for a ResNet: one class, so one forward code object shared by every group, as ResNet.forward is;
    resnet18's conv1 and layer1 with its two blocks, by name and in forward order, at a fraction of the cost."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, stride=8)
        self.layer1 = nn.Sequential(nn.ReLU(), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer1(self.conv1(x)).flatten(1)


# Appended to a pytester project's conftest.py: resnet34's group raises an out-of-memory error; other groups run.
FAIL_RESNET34 = (
    "\n\nimport fixtures.runner as _runner\n"
    "_real_run = _runner.GroupRunner.run\n"
    "def _run(self, group, modules, *args):\n"
    "    if group.model == 'resnet34':\n"
    "        raise RuntimeError('CUDA out of memory. Tried to allocate 20.00 GiB')\n"
    "    return _real_run(self, group, modules, *args)\n"
    "_runner.GroupRunner.run = _run\n"
)


def settings(**changes):
    """The option table's defaults, with changes (fixtures.options.Settings.defaults)."""
    from fixtures.options import Settings

    return Settings.defaults(**changes)


def plan(device: str = "cpu", **changes):
    """The plan the default settings give a group on `device`, with changes (fixtures.runner.Plan.for_device)."""
    from dataclasses import replace

    from fixtures.runner import Plan

    return replace(Plan.for_device(settings(), device), **changes)


def context(device_name: str = "cpu", threads: int = 1, **changes):
    """A case's context with nothing measured beside its samples."""
    from fixtures.measurement import CaseContext
    from fixtures.regression import RegressionPolicy

    fields = dict(device_name=device_name, device_index=None, threads=threads, flops=0, peak_tflops=None,
                  peak_row=None, policy=RegressionPolicy(0.10, 0.01))
    return CaseContext(**{**fields, **changes})


def measurement(spec, device_s, host_s=None, timer="perf_counter", warmup=0, info=None, gpu_s=(), compile_s=None,
                **context_fields):
    """A measurement record built by hand (host seconds = device seconds unless given)."""
    from fixtures.measurement import Measurement
    from fixtures.module_shapes import ModuleInfo

    return Measurement(spec=spec, device_s=tuple(device_s), host_s=tuple(device_s if host_s is None else host_s),
                       gpu_s=tuple(gpu_s), timer=timer, warmup=warmup, info=info or ModuleInfo((1,), (1,), 0),
                       compile_s=compile_s, context=context(**context_fields))


def group_record(result, **context_fields):
    """A group's records built from its result with a stub context (no device queried: cuda groups work on a CPU)."""
    from fixtures.matrix import Matrix
    from fixtures.measurement import GroupRecord, Measurement

    group = result.group
    specs = Matrix([group], ("model",)).specs(group, list(result.samples))
    return GroupRecord(result, {s.module: Measurement.from_group(s, result, context(**context_fields)) for s in specs})
