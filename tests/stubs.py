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
    "def _run(self, group, modules):\n"
    "    if group.model == 'resnet34':\n"
    "        raise RuntimeError('CUDA out of memory. Tried to allocate 20.00 GiB')\n"
    "    return _real_run(self, group, modules)\n"
    "_runner.GroupRunner.run = _run\n"
)
