"""R independent 2 -> hid -> 1 perceptrons with stacked weights (course check.py's MLP, R times).

Restart r only ever touches slice r of each weight tensor, and every product is an explicit
broadcast multiply summed over the same axis as for a single net, so a batch of R nets
computes, differentiates and (with Adam, which is elementwise) updates each net exactly as
if it were trained alone: bit for bit on CPU (tests/test_checker.py checks it), given the
sigmoid below that rounds the same wherever an element sits.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

# PyTorch's CPU kernels compute the last (size mod 2 x SIMD width) elements of a tensor with
# scalar code whose exp() can differ from the vectorised one in the last bit; so where an
# element falls decides its rounding.  Padding every activation to a multiple of LANES puts
# all elements on the vectorised path, whatever R is (with one thread per process).
LANES = 64


def lanewise(f, z: torch.Tensor) -> torch.Tensor:
    """Elementwise f(z), computed identically for an element wherever it sits in the tensor."""
    flat = z.reshape(-1)
    padded = F.pad(flat, (0, -flat.numel() % LANES))
    return f(padded)[:flat.numel()].view_as(z)


def sigmoid(z: torch.Tensor) -> torch.Tensor:
    return lanewise(torch.sigmoid, z)


def step(z: torch.Tensor) -> torch.Tensor:
    """Heaviside step as in the course: 1 where z >= 0, so step(0) = 1."""
    return (z >= 0).to(z.dtype)


ACTIVATIONS = {"sig": sigmoid, "step": step}


class Pass(NamedTuple):
    """One forward pass: pre-activations and activations of both layers, each (R, N, units)."""

    hid_in: torch.Tensor
    hidden: torch.Tensor
    out_in: torch.Tensor
    output: torch.Tensor


class StackedMLP(nn.Module):
    """R nets: hidden = act(W1 x + b1), output = act(w2 . hidden + b2), act sigmoid or step.

    Parameters (course order and shapes, per restart): in_weight (R, hid, 2), hid_bias (R, hid),
    out_weight (R, 1, hid), out_bias (R, 1).
    """

    def __init__(self, in_weight, hid_bias, out_weight, out_bias, act: str = "sig"):
        super().__init__()
        self.in_weight = nn.Parameter(torch.as_tensor(in_weight, dtype=torch.float32).clone())
        self.hid_bias = nn.Parameter(torch.as_tensor(hid_bias, dtype=torch.float32).clone())
        self.out_weight = nn.Parameter(torch.as_tensor(out_weight, dtype=torch.float32).clone())
        self.out_bias = nn.Parameter(torch.as_tensor(out_bias, dtype=torch.float32).clone())
        self.act = act

    @classmethod
    def random(cls, seeds: list[int], hid: int, std: float, act: str = "sig") -> StackedMLP:
        """Restart r drawn from N(0, std) by its own generator seeded seeds[r], so a restart's
        start does not depend on how many others are trained beside it."""
        shapes = [(hid, 2), (hid,), (1, hid), (1,)]
        nets = []
        for seed in seeds:
            gen = torch.Generator().manual_seed(seed)
            nets.append([torch.randn(shape, generator=gen) * std for shape in shapes])
        return cls(*(torch.stack(tensors) for tensors in zip(*nets)), act=act)

    @classmethod
    def single(cls, in_weight, hid_bias, out_weight, out_bias, act: str = "sig") -> StackedMLP:
        """One net (R = 1) from plain lists, e.g. a hand design."""
        return cls([in_weight], [hid_bias], [[out_weight]], [[out_bias]], act=act)

    @property
    def restarts(self) -> int:
        return self.in_weight.shape[0]

    @property
    def hid(self) -> int:
        return self.in_weight.shape[1]

    def forward(self, x: torch.Tensor) -> Pass:
        f = ACTIVATIONS[self.act]
        hid_in = (x[None, :, None, :] * self.in_weight[:, None]).sum(-1) + self.hid_bias[:, None]
        hidden = f(hid_in)
        out_in = (hidden[:, :, None, :] * self.out_weight[:, None]).sum(-1) + self.out_bias[:, None]
        return Pass(hid_in, hidden, out_in, f(out_in))

    def pick(self, r: int) -> StackedMLP:
        """Restart r alone, as a detached one-net model."""
        tensors = [p.detach()[r:r + 1] for p in self.parameters()]
        return StackedMLP(*tensors, act=self.act)

    def weights(self, r: int = 0) -> list[torch.Tensor]:
        """Restart r's parameters in the course's order: in_hid.weight, in_hid.bias,
        hid_out.weight, hid_out.bias."""
        return [p.detach()[r] for p in self.parameters()]
