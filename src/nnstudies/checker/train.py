"""Train R restarts side by side with the course's rule (check_main.py), keep the first to succeed.

Each epoch is one full-batch Adam step on binary cross-entropy.  The loss is the SUM over
restarts of each restart's mean BCE, so restart r's gradient is exactly its own.  A restart
"succeeds" when its accuracy (from the outputs before the update, as the course computes it)
has been 100% for `patience` consecutive epochs.  The batch stops as soon as one restart has
succeeded (or, with ``stop="all"``, when every restart has), or at ``max_epochs``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from nnstudies.checker.model import StackedMLP


def restart_seeds(seed: int, restarts: int) -> list[int]:
    """Restart r of run `seed` starts from generator seed seed * 10000 + r, whatever R is."""
    return [seed * 10000 + r for r in range(restarts)]


def losses(model: StackedMLP, x: torch.Tensor, t: torch.Tensor):
    """Per-restart mean BCE (R,), per-restart number of correct points (R,), and the pass."""
    out = model(x)
    target = t.expand_as(out.output)
    loss = F.binary_cross_entropy(out.output, target, reduction="none").mean(dim=(1, 2))
    correct = ((out.output >= 0.5).float() == target).sum(dim=(1, 2)).long()
    return loss, correct, out


@dataclass
class Result:
    model: StackedMLP                 # all restarts, trained
    kept: int                         # the restart kept
    epochs: int                       # epochs run (updates made)
    first_full: list[int | None]      # per restart: first epoch at 100%, None if never
    met_rule: list[int | None]        # per restart: epoch it met the stopping rule, None if never
    final_loss: list[float]           # per restart, after the last update
    final_correct: list[int]
    history: list[tuple[int, list[float], list[int]]] = field(default_factory=list)

    @property
    def succeeded(self) -> list[bool]:
        return [e is not None for e in self.met_rule]


def train(model: StackedMLP, x: torch.Tensor, t: torch.Tensor, *, lr: float, weight_decay: float,
          max_epochs: int, patience: int, log_every: int, stop: str = "first",
          on_log: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None) -> Result:
    """Train in place; `history` holds (epoch, losses, correct counts) every `log_every` epochs."""
    n_points, restarts = len(x), model.restarts
    streak = torch.zeros(restarts, dtype=torch.long)
    first_full = torch.full((restarts,), -1, dtype=torch.long)
    met_rule = torch.full((restarts,), -1, dtype=torch.long)
    history = []
    # Step nets have zero gradient almost everywhere: the course evaluates them, never trains.
    epochs = max_epochs if model.act == "sig" else 0
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    epoch = 0
    while epoch < epochs:
        epoch += 1
        loss, correct, _ = losses(model, x, t)
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
        full = correct == n_points
        streak = torch.where(full, streak + 1, 0)
        first_full = torch.where(full & (first_full < 0), epoch, first_full)
        if epoch % log_every == 0:
            history.append((epoch, loss.detach().tolist(), correct.tolist()))
            if on_log:
                on_log(epoch, loss.detach(), correct)
        met_rule = torch.where((streak == patience) & (met_rule < 0), epoch, met_rule)
        done = met_rule >= 0
        if done.all() if stop == "all" else done.any():
            break
    with torch.no_grad():
        loss, correct, _ = losses(model, x, t)
    succeeded = (met_rule >= 0).tolist()
    # Keep a restart that met the rule; among equals, the most points right, then the lowest loss.
    order = sorted(range(restarts), key=lambda r: (not succeeded[r], -int(correct[r]), float(loss[r]), r))
    return Result(model=model, kept=order[0], epochs=epoch,
                  first_full=[int(e) if e >= 0 else None for e in first_full],
                  met_rule=[int(e) if e >= 0 else None for e in met_rule], final_loss=loss.tolist(),
                  final_correct=correct.tolist(), history=history)


# What happened to a restart, as the restarts table says it.
MET_RULE = "met the patience rule"
STOPPED_AT_100 = "reached 100%, stopped when another restart met the rule first"
STOPPED_BELOW = "never reached 100% before another restart met the rule"
BUDGET_AT_100 = "reached 100% but did not hold it for `patience` epochs within max_epochs"
BUDGET_BELOW = "never reached 100% within max_epochs"


def restart_table(res: Result, seeds: list[int], max_epochs: int) -> list[dict]:
    """One record per restart: its seed, when it first reached 100%, when it met the rule
    (100% for `patience` consecutive epochs), its final points right and loss, and the outcome:
    which of MET_RULE, STOPPED_*, BUDGET_* happened (the batch stops when one restart meets the
    rule, so a restart that had reached 100% may have been stopped before it could)."""
    ran_out = res.epochs >= max_epochs and not any(res.succeeded)
    rows = []
    for r, seed in enumerate(seeds):
        first, met = res.first_full[r], res.met_rule[r]
        if met is not None:
            outcome = MET_RULE
        elif ran_out:
            outcome = BUDGET_AT_100 if first is not None else BUDGET_BELOW
        else:
            outcome = STOPPED_AT_100 if first is not None else STOPPED_BELOW
        rows.append({"restart": r, "seed": seed, "first_epoch_at_100": first,
                     "met_rule_at": met, "final_correct": res.final_correct[r],
                     "final_loss": res.final_loss[r], "kept": r == res.kept, "outcome": outcome})
    return rows
