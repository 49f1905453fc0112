"""The course's SRN and LSTM, with R independent restarts stacked into one network.

Every parameter has a leading restart dimension.  ``forward`` assembles block-diagonal
recurrent weights (restart r owns units r*hid .. (r+1)*hid - 1) and runs torch's fused
recurrent kernel, so the time loop runs in C++; the off-block entries are constants (zero),
so each restart gets exactly its own gradient (changing one restart leaves the others'
training bit-identical; tested).  ``unrolled`` is the course's plain per-step loop: the
reference and the way to read the LSTM's context (cell) units.

R stacked restarts and R separate runs are two tensor shapes, for which torch may pick two
kernels, so with either torch formulation they agree to an ulp or so per step, not bit for
bit (tests/test_seq.py bounds it): ``unrolled`` gave identical weights on an Intel Xeon but
1-ulp differences on an AMD EPYC (MKL's batched products); the fused kernel's matrix
products sum in an order that depends on the stacked width (up to 1.6e-6 after 4 steps).
Only the compiled kernel (seq/compiled.py) trains a restart bit for bit alike alone or
stacked.

Shapes: inputs x are (T, batch, in); hidden/context are (T, batch, R, hid); logits are
(T, batch, R, out).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def restart_generator(seed: int, restart: int) -> torch.Generator:
    """Restart r's initial weights depend on (seed, r) only, never on how many run beside it."""
    state = np.random.SeedSequence([seed, restart]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


class Stacked(nn.Module):
    """Shared machinery: per-restart initialisation and taking one restart out."""

    def __init__(self, num_in: int, hid: int, num_out: int, restarts: int):
        super().__init__()
        self.num_in, self.hid, self.num_out, self.restarts = num_in, hid, num_out, restarts

    def init_restarts(self, seed: int, std: float = 0.001, first: int = 0) -> None:
        """Initialise restart r from generator (seed, first + r), parameters in order."""
        self.init_from([(seed, first + r) for r in range(self.restarts)], std)

    def init_from(self, starts: list[tuple[int, int]], std: float = 0.001) -> None:
        """Initialise restart r from generator starts[r] = (seed, restart): a sweep's lanes
        are restart 0 of seeds 0, 1, ..."""
        with torch.no_grad():
            for r, (seed, restart) in enumerate(starts):
                g = restart_generator(seed, restart)
                for p in self.parameters():
                    p[r].copy_(self.init_values(p[r].shape, g, std))

    def select(self, restart: int) -> Stacked:
        """A one-restart copy of restart ``restart``."""
        one = type(self)(self.num_in, self.hid, self.num_out, 1)
        state = self.state_dict()
        one.load_state_dict({k: v[restart:restart + 1].clone() for k, v in state.items()})
        return one

    def run(self, x: torch.Tensor, kernel: str = "fused"):
        """(hidden, logits) from the fused kernel, the compiled one or the per-step loop."""
        if kernel == "fused":
            return self(x)
        if kernel == "compiled":
            from nnstudies.seq import compiled  # numba, imported when used

            return compiled.forward(self, x)
        logits, units = self.unrolled(x)
        return units["hidden"], logits

    def readout(self, hidden: torch.Tensor) -> torch.Tensor:
        """logits = h V + out_bias per restart, as one bmm with the bias folded in: one
        kernel for every restart (its summation order may still depend on R; see above)."""
        T, N, R, H = hidden.shape
        h = hidden.reshape(T * N, R, H).transpose(0, 1)
        h = torch.cat([h, h.new_ones(R, T * N, 1)], -1)
        w = torch.cat([self.V, self.out_bias[:, None]], 1)
        return torch.bmm(h, w).transpose(0, 1).reshape(T, N, R, self.num_out)

    def _split(self, seq: torch.Tensor) -> torch.Tensor:
        return seq.unflatten(-1, (self.restarts, self.hid))


class SRN(Stacked):
    """h_t = tanh(x_t W + h_{t-1} U + b), h_0 = tanh(H0) learned; logits = h V + c."""

    def __init__(self, num_in: int, hid: int, num_out: int, restarts: int = 1):
        super().__init__(num_in, hid, num_out, restarts)
        R = restarts
        self.H0 = nn.Parameter(torch.zeros(R, hid))
        self.W = nn.Parameter(torch.zeros(R, num_in, hid))
        self.U = nn.Parameter(torch.zeros(R, hid, hid))
        self.hid_bias = nn.Parameter(torch.zeros(R, hid))
        self.V = nn.Parameter(torch.zeros(R, hid, num_out))
        self.out_bias = nn.Parameter(torch.zeros(R, num_out))

    def init_values(self, shape, g, std):
        return torch.randn(shape, generator=g) * std  # course: every parameter N(0, init)

    def initial(self, batch: int) -> torch.Tensor:
        return torch.tanh(self.H0).reshape(1, 1, -1).expand(1, batch, -1).contiguous()

    def forward(self, x):
        R, H = self.restarts, self.hid
        w_ih = self.W.permute(0, 2, 1).reshape(R * H, self.num_in)
        w_hh = torch.block_diag(*self.U.transpose(1, 2))
        bias = self.hid_bias.reshape(R * H)
        out, _ = torch._VF.rnn_tanh(x, self.initial(x.shape[1]),
                                    [w_ih, w_hh, bias, torch.zeros_like(bias)],
                                    True, 1, 0.0, self.training, False, False)
        hidden = self._split(out)
        return hidden, self.readout(hidden)

    def unrolled(self, x):
        """The course's loop: returns logits and {"hidden"}."""
        h = torch.tanh(self.H0).expand(x.shape[1], -1, -1)
        hidden = []
        for x_t in x:
            h = torch.tanh(torch.einsum("bi,rih->brh", x_t, self.W)
                           + torch.einsum("brk,rkh->brh", h, self.U) + self.hid_bias)
            hidden.append(h)
        hidden = torch.stack(hidden)
        return self.readout(hidden), {"hidden": hidden}


class LSTM(Stacked):
    """gates = x W + h U + b split i, f, g, o; c = f c + i g; h = o tanh(c); h_0 = c_0 = 0."""

    def __init__(self, num_in: int, hid: int, num_out: int, restarts: int = 1):
        super().__init__(num_in, hid, num_out, restarts)
        R = restarts
        self.W = nn.Parameter(torch.zeros(R, num_in, 4 * hid))
        self.U = nn.Parameter(torch.zeros(R, hid, 4 * hid))
        self.hid_bias = nn.Parameter(torch.zeros(R, 4 * hid))
        self.V = nn.Parameter(torch.zeros(R, hid, num_out))
        self.out_bias = nn.Parameter(torch.zeros(R, num_out))

    def init_values(self, shape, g, std):
        # The course ignores --init for the LSTM: every parameter, biases too, U(-b, b).
        bound = 1 / math.sqrt(self.hid)
        return (torch.rand(shape, generator=g) * 2 - 1) * bound

    def forward(self, x):
        R, H = self.restarts, self.hid
        # torch's layout: rows [i of every unit, f ..., g ..., o ...]; unit (r, j) = r*H + j.
        w_ih = self.W.reshape(R, self.num_in, 4, H).permute(2, 0, 3, 1).reshape(4 * R * H, -1)
        gates_hh = self.U.reshape(R, H, 4, H).permute(2, 0, 3, 1)  # (gate, r, j, k)
        w_hh = torch.cat([torch.block_diag(*gate) for gate in gates_hh])
        bias = self.hid_bias.reshape(R, 4, H).permute(1, 0, 2).reshape(-1)
        zeros = x.new_zeros(1, x.shape[1], R * H)
        out, _, _ = torch.lstm(x, (zeros, zeros), [w_ih, w_hh, bias, torch.zeros_like(bias)],
                               True, 1, 0.0, self.training, False, False)
        hidden = self._split(out)
        return hidden, self.readout(hidden)

    def unrolled(self, x):
        """The course's loop, returning the context (cell) units too."""
        h = x.new_zeros(x.shape[1], self.restarts, self.hid)
        c = torch.zeros_like(h)
        hidden, context = [], []
        for x_t in x:
            gates = (torch.einsum("bi,rig->brg", x_t, self.W)
                     + torch.einsum("brk,rkg->brg", h, self.U) + self.hid_bias)
            i, f, g, o = gates.chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            hidden.append(h)
            context.append(c)
        hidden = torch.stack(hidden)
        return self.readout(hidden), {"hidden": hidden, "context": torch.stack(context)}


MODELS = {"srn": SRN, "lstm": LSTM}


def build(model: str, num_in: int, hid: int, restarts: int) -> Stacked:
    """An uninitialised stacked net; the outputs are the next-symbol logits over the inputs."""
    return MODELS[model](num_in, hid, num_in, restarts)
