"""Training: one epoch = one sequence, all restarts side by side, loss on the next symbol.

Every restart sees the same sequence; the batched loss is the sum of the restarts' own
mean next-symbol NLLs, so restart r's gradient is exactly its own.  Evaluation runs the
fixed eval split through every restart at once (sequences padded, batched).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from nnstudies.seq import dynamics, report
from nnstudies.seq.languages import Grammar
from nnstudies.seq.models import Stacked


@dataclass
class EvalBatch:
    """The eval split padded to (T, batch): inputs, next-symbol labels, true rows, masks."""

    x: torch.Tensor  # (T, N, C) one-hot inputs
    labels: torch.Tensor  # (T, N) next symbols (0 where padded)
    probs: torch.Tensor  # (T, N, C) true next-symbol rows
    valid: torch.Tensor  # (T, N) bool, real prediction positions
    error_mask: torch.Tensor  # (T, N) bool, positions counted in `error`
    final_mask: torch.Tensor | None  # (T, N) bool, the closing T/P of embedded Reber
    states: torch.Tensor  # (T, N) state label of each hidden position


def eval_batch(grammar: Grammar, count: int | None = None) -> EvalBatch:
    n = len(grammar.eval) if count is None else min(count, len(grammar.eval))
    seqs = [grammar.eval.sequence(i, grammar.prob_table) for i in range(n)]
    T, C = max(len(s[0]) for s in seqs) - 1, grammar.classes
    x, probs = torch.zeros(T, n, C), torch.zeros(T, n, C)
    labels, states = torch.zeros(T, n, dtype=torch.long), torch.zeros(T, n, dtype=torch.long)
    valid = torch.zeros(T, n, dtype=torch.bool)
    error_mask, final_mask = torch.zeros_like(valid), torch.zeros_like(valid)
    for i, (sym, st, pr) in enumerate(seqs):
        L = len(sym) - 1
        x[torch.arange(L), i, torch.from_numpy(sym[:-1])] = 1
        labels[:L, i], states[:L, i] = torch.from_numpy(sym[1:]), torch.from_numpy(st[1:])
        probs[:L, i] = torch.from_numpy(pr)
        valid[:L, i] = True
        if grammar.lang == "ereber":
            error_mask[2:L - 3, i] = True  # course: the inner string after its B, not its E
            final_mask[L - 2, i] = True  # the prediction of the closing T/P
        else:
            error_mask[:L, i] = True
    return EvalBatch(x, labels, probs, valid, error_mask,
                     final_mask if grammar.lang == "ereber" else None, states)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sequence mean over masked positions, then mean over sequences: (..., R)."""
    m = mask[..., None].float()  # (T, N, 1)
    per_seq = (values * m).sum(0) / m.sum(0).clamp_min(1)
    return per_seq.mean(0)


@torch.no_grad()
def evaluate(model: Stacked, batch: EvalBatch, kernel: str = "fused") -> dict[str, np.ndarray]:
    """Per-restart metrics on the eval split (each an array of R values)."""
    model.eval()
    hidden, logits = model.run(batch.x, kernel)
    model.train()
    out = torch.softmax(logits, -1)  # (T, N, R, C)
    sq = ((out - batch.probs[:, :, None]) ** 2).mean(-1)  # (T, N, R)
    nll = -torch.log_softmax(logits, -1).gather(
        -1, batch.labels[:, :, None, None].expand(-1, -1, model.restarts, 1))[..., 0]
    deterministic = (batch.probs.max(-1).values == 1) & batch.valid
    correct = (out.argmax(-1) == batch.labels[:, :, None]).float()
    metrics = {
        "error": _masked_mean(sq, batch.error_mask),
        "nll": (nll * batch.valid[..., None]).sum((0, 1)) / batch.valid.sum(),
        "det_accuracy": (correct * deterministic[..., None]).sum((0, 1)) / deterministic.sum(),
    }
    if batch.final_mask is not None:
        metrics["final"] = _masked_mean(sq, batch.final_mask)
    metrics = {k: v.numpy().astype(float) for k, v in metrics.items()}
    hid = hidden[batch.valid].numpy()  # (points, R, hid)
    labels = batch.states[batch.valid].numpy()
    metrics["separation"] = np.array([dynamics.centroid_accuracy(hid[:, r], labels)
                                      for r in range(model.restarts)])
    return metrics


def entropy_floor(batch: EvalBatch) -> float:
    """The NLL of the true probabilities: no predictor can beat it on average."""
    p = batch.probs[batch.valid]
    return float(-(p * torch.log(p.clamp_min(1e-12))).sum(-1).mean())


def selection_score(metrics: dict) -> np.ndarray:
    """Lower is better: eval error, plus `final` where the task has one."""
    return metrics["error"] + metrics.get("final", 0.0)


def best_rows(curve: list[dict]) -> list[dict]:
    """The curve of the best restart at each evaluation (by ``selection_score``)."""
    best: dict[int, dict] = {}
    for row in curve:
        score = row["error"] + row.get("final", 0.0)
        if row["epoch"] not in best or score < best[row["epoch"]]["_score"]:
            best[row["epoch"]] = {**row, "_score": score}
    return [{k: v for k, v in row.items() if k != "_score"} for row in best.values()]


def succeeded(metrics: dict, bounds: dict) -> np.ndarray:
    """A restart succeeds when every bounded metric is within its bound (separation: floor)."""
    ok = np.ones_like(metrics["error"], dtype=bool)
    for key, bound in bounds.items():
        ok &= metrics[key] >= bound if key == "separation" else metrics[key] <= bound
    return ok


@dataclass
class Settings:
    epochs: int
    optim: str = "adam"
    lr: float = 0.001
    momentum: float = 0.0
    weight_decay: float = 1e-5
    log_every: int = 1000
    checkpoint_every: int = 10000
    kernel: str = "fused"  # or "loop"


@dataclass
class Progress:
    """Everything a run has made so far: a checkpoint of it resumes bit for bit."""

    epoch: int = -1  # the last finished epoch
    loss_sum: list = field(default_factory=list)  # per restart, since the last evaluation
    loss_count: int = 0
    curve: list = field(default_factory=list)  # rows: epoch, restart, metrics...
    log: list = field(default_factory=list)  # the diagnostic prints
    seconds: float = 0.0  # training time (the clock of a resumed run adds on)
    metrics: dict = field(default_factory=dict)  # per restart, at the last evaluation


def make_optimizer(model, s: Settings):
    if s.optim == "adam":
        return torch.optim.Adam(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=s.lr, momentum=s.momentum,
                           weight_decay=s.weight_decay)


def train(model: Stacked, grammar: Grammar, s: Settings, *,
          log: Callable[[str], None] = print,
          checkpoint: Callable[[int, dict], None] | None = None,
          on_eval: Callable[[int, dict], None] | None = None,
          resume: dict | None = None) -> Progress:
    """Train epochs 0..s.epochs inclusive (the course's N+1 updates), one sequence each.

    Every ``log_every`` epochs (from 0, after that epoch's update): evaluate every restart
    on the eval split, print the course's diagnostic for the best restart, record the
    curve.  Every ``checkpoint_every`` epochs and at the end: ``checkpoint(epoch, state)``,
    whose state (``resume``) continues the run exactly where it was: epoch e trains on
    sequence e, and nothing else is random.
    """
    if len(grammar.train) < s.epochs + 1:
        raise ValueError(f"{s.epochs + 1} training sequences needed, {len(grammar.train)} given")
    optimizer = make_optimizer(model, s)
    C, R = grammar.classes, model.restarts
    run = Progress(loss_sum=[0.0] * R)
    if resume:
        model.load_state_dict(resume["state"])
        optimizer.load_state_dict(resume["optimizer"])
        run = Progress(**resume["progress"])
    batch = eval_batch(grammar)
    symbols = torch.from_numpy(grammar.train.symbols.astype(np.int64))
    starts = grammar.train.starts
    eye = torch.eye(C)
    loss_sum = torch.tensor(run.loss_sum, dtype=torch.float32)
    clock = time.perf_counter() - run.seconds
    for epoch in range(run.epoch + 1, s.epochs + 1):
        seq = symbols[starts[epoch]:starts[epoch + 1]]
        optimizer.zero_grad()
        _, logits = model.run(eye[seq[:-1]][:, None], s.kernel)  # (T, 1, R, C)
        nll = F.cross_entropy(logits[:, 0].permute(0, 2, 1), seq[1:, None].expand(-1, R),
                              reduction="none")  # (T, R)
        loss = nll.mean(0)  # each restart's own mean over time
        loss.sum().backward()
        optimizer.step()
        loss_sum += loss.detach()
        run.loss_count += 1
        run.epoch = epoch

        if epoch % s.log_every == 0 or epoch == s.epochs:
            metrics = evaluate(model, batch, s.kernel)
            metrics["loss"] = (loss_sum / run.loss_count).numpy().astype(float)
            loss_sum, run.loss_count = torch.zeros(R), 0
            best = int(np.argmin(selection_score(metrics)))
            for r in range(R):
                run.curve.append({"epoch": epoch, "restart": r,
                                  **{k: float(v[r]) for k, v in metrics.items()}})
            sample = (epoch // s.log_every) % len(grammar.eval)
            text = report.diagnostic(model.select(best), grammar, sample, epoch)
            text += f"best restart: {best}\n"
            run.log.append(text)
            log(text)
            if on_eval:
                on_eval(epoch, {k: float(v[best]) for k, v in metrics.items()})
            run.metrics = {k: v.tolist() for k, v in metrics.items()}
        if checkpoint and (epoch % s.checkpoint_every == 0 or epoch == s.epochs):
            run.loss_sum, run.seconds = loss_sum.tolist(), time.perf_counter() - clock
            scores = evaluate(model, batch, s.kernel)  # picks the best restart when plotting
            checkpoint(epoch, {"state": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "eval": {k: v.tolist() for k, v in scores.items()},
                               "progress": {k: list(v) if isinstance(v, list) else v
                                            for k, v in vars(run).items()}})
    run.seconds = time.perf_counter() - clock
    return run
