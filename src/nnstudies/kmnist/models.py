"""The three KMNIST classifiers; each returns log-probabilities (the loss is nll_loss).

Each class also states its parameter count by hand (``formula``), so the report can show
the count read from the model beside the count worked out on paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nnstudies.kmnist.sizes import CLASSES, PIXELS, SIDE, formula, pooled_side


class NetLin(nn.Module):
    """784 pixels -> 10 scores, then log-softmax."""

    def __init__(self):
        super().__init__()
        self.out = nn.Linear(PIXELS, CLASSES)

    def forward(self, x):
        return F.log_softmax(self.out(x.flatten(1)), dim=1)

    def formula(self) -> tuple[str, int]:
        return formula("lin", {})


class NetFull(nn.Module):
    """784 -> ``hidden`` tanh units -> 10, then log-softmax."""

    def __init__(self, hidden: int = 200):
        super().__init__()
        self.hidden = hidden
        self.hid = nn.Linear(PIXELS, hidden)
        self.out = nn.Linear(hidden, CLASSES)

    def forward(self, x):
        return F.log_softmax(self.out(torch.tanh(self.hid(x.flatten(1)))), dim=1)

    def formula(self) -> tuple[str, int]:
        return formula("full", {"hidden": self.hidden})


class NetConv(nn.Module):
    """Two conv layers (ReLU, 2x2 max-pool each), one ReLU fc layer, then 10 log-probabilities."""

    def __init__(self, channels1: int = 32, channels2: int = 64, kernel: int = 3, fc: int = 128):
        super().__init__()
        self.sizes = dict(channels1=channels1, channels2=channels2, kernel=kernel, fc=fc)
        self.conv1 = nn.Conv2d(1, channels1, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv2d(channels1, channels2, kernel, padding=kernel // 2)
        self.side = pooled_side(pooled_side(SIDE, kernel), kernel)
        self.fc = nn.Linear(channels2 * self.side ** 2, fc)
        self.out = nn.Linear(fc, CLASSES)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc(x.flatten(1)))
        return F.log_softmax(self.out(x), dim=1)

    def formula(self) -> tuple[str, int]:
        return formula("conv", self.sizes)


NETS = {"lin": NetLin, "full": NetFull, "conv": NetConv, "wide": NetFull}  # wide: the size control


def build(net: str, sizes: dict | None = None) -> nn.Module:
    """The named net with the given layer sizes (the keys of its constructor)."""
    return NETS[net](**(sizes or {}))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
