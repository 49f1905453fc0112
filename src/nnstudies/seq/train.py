"""Training: one epoch = one sequence, all restarts side by side, loss on the next symbol.

Every restart sees the same sequence; the batched loss is the sum of the restarts' own
mean next-symbol NLLs, so restart r's gradient is exactly its own.  Evaluation runs a
fixed split through every restart at once (sequences padded, batched): during training the
validation split, on which the kept restart is chosen; the test split is for the kept
restart's reported numbers only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from nnstudies.seq import diagnostics, dynamics
from nnstudies.seq.languages import Grammar
from nnstudies.seq.models import Stacked


@dataclass
class EvalBatch:
    """A split padded to (T, batch): inputs, next-symbol labels, true rows, masks."""

    x: torch.Tensor  # (T, N, C) one-hot inputs
    labels: torch.Tensor  # (T, N) next symbols (0 where padded)
    probs: torch.Tensor  # (T, N, C) true next-symbol rows
    valid: torch.Tensor  # (T, N) bool, real prediction positions
    error_mask: torch.Tensor  # (T, N) bool, positions counted in `error`
    final_mask: torch.Tensor | None  # (T, N) bool, positions counted in `final` (if any)
    states: torch.Tensor  # (T, N) state label of each hidden position


def eval_batch(grammar: Grammar, split: str = "validation") -> EvalBatch:
    data, language = grammar.split(split), grammar.language
    seqs = [data.sequence(i, grammar.prob_table) for i in range(len(data))]
    n = len(seqs)
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
        window, final = language.masks(L)
        error_mask[:L, i] = torch.from_numpy(window)
        if final is not None:
            final_mask[:L, i] = torch.from_numpy(final)
    return EvalBatch(x, labels, probs, valid, error_mask,
                     None if language.final is None else final_mask, states)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sequence mean over masked positions, then mean over sequences: (T, N) -> ()."""
    m = mask.float()
    return ((values * m).sum(0) / m.sum(0).clamp_min(1)).mean(0)


def _argmax0(x: torch.Tensor) -> torch.Tensor:
    """x.argmax(0), the first of equal maxima, as elementwise steps over the planes of x
    (torch's argmax over a first dim of a few classes is slow)."""
    best, arg = x[0], torch.zeros(x.shape[1:], dtype=torch.long)
    for c in range(1, len(x)):
        higher = x[c] > best
        best, arg = torch.where(higher, x[c], best), torch.where(higher, c, arg)
    return arg


def _restart_metrics(logits: torch.Tensor, batch: EvalBatch) -> dict[str, float]:
    """One restart's metrics from its logits (C, T, N), classes first: torch's softmax over a
    last dim of 2-7 classes is 20 times slower than over the first."""
    out, log_p = torch.softmax(logits, 0), torch.log_softmax(logits, 0)
    sq = ((out - batch.probs.permute(2, 0, 1)) ** 2).mean(0)  # (T, N)
    nll = -log_p.gather(0, batch.labels[None])[0]
    deterministic = (batch.probs.max(-1).values == 1) & batch.valid
    correct = (_argmax0(out) == batch.labels).float()
    metrics = {
        "error": _masked_mean(sq, batch.error_mask),
        "nll": (nll * batch.valid).sum() / batch.valid.sum(),
        "det_accuracy": (correct * deterministic).sum() / deterministic.sum(),
    }
    if batch.final_mask is not None:
        metrics["final"] = _masked_mean(sq, batch.final_mask)
    return {k: float(v) for k, v in metrics.items()}


@torch.no_grad()
def evaluate(model: Stacked, batch: EvalBatch, kernel: str = "fused") -> dict[str, np.ndarray]:
    """Per-restart metrics on ``batch`` (each an array of R values).  Each restart is
    measured on its own tensors, the same way whatever runs beside it (torch's kernels
    split a batched tensor into vector lanes and a remainder that depends on its size)."""
    model.eval()
    hidden, logits = model.run(batch.x, kernel)
    model.train()
    rows = [_restart_metrics(z.contiguous(), batch) for z in logits.permute(2, 3, 0, 1)]
    metrics = {k: np.array([row[k] for row in rows]) for k in rows[0]}
    metrics["separation"] = dynamics.centroid_accuracies(hidden[batch.valid].numpy(),
                                                         batch.states[batch.valid].numpy())
    return metrics


def entropy_floor(batch: EvalBatch) -> float:
    """The NLL of the true probabilities: no predictor can beat it on average."""
    p = batch.probs[batch.valid]
    return float(-(p * torch.log(p.clamp_min(1e-12))).sum(-1).mean())


def selection_score(metrics: dict) -> np.ndarray:
    """Lower is better: error, plus `final` where the task has one (on validation, the
    kept restart is the lowest)."""
    return metrics["error"] + metrics.get("final", 0.0)


def best_rows(curve: list[dict]) -> list[dict]:
    """The curve of the best restart at each evaluation (by ``selection_score``)."""
    best: dict[int, dict] = {}
    for row in curve:
        score = row["error"] + row.get("final", 0.0)
        if row["epoch"] not in best or score < best[row["epoch"]]["_score"]:
            best[row["epoch"]] = {**row, "_score": score}
    return [{k: v for k, v in row.items() if k != "_score"} for row in best.values()]


def within(metrics: dict, bounds: dict) -> np.ndarray:
    """Which restarts have every bounded metric within its bound (separation: a floor)."""
    ok = np.ones_like(metrics["error"], dtype=bool)
    for key, bound in bounds.items():
        ok &= metrics[key] >= bound if key == "separation" else metrics[key] <= bound
    return ok


def window_start(epoch: int, window: float) -> int:
    """The first epoch of the last ``window`` share of epochs 0..epoch."""
    return epoch - int(window * epoch)


def held(curve: list[dict], bounds: dict, epoch: int, window: float) -> np.ndarray:
    """The success rule, one for train_seq, train_beyond and the sweeps: a restart succeeds
    when its validation scores meet every bound at EVERY evaluation in the last ``window`` of
    its ``epoch`` epochs (the course asks for an error consistently in the band; one good last
    evaluation after a spike is not that).  ``curve``: rows of epoch, restart, metrics."""
    start, restarts = window_start(epoch, window), 1 + max(row["restart"] for row in curve)
    ok, seen = np.ones(restarts, dtype=bool), np.zeros(restarts, dtype=bool)
    for row in curve:
        if start <= row["epoch"] <= epoch:
            seen[row["restart"]] = True
            ok[row["restart"]] &= bool(within({k: np.asarray(v) for k, v in row.items()},
                                              bounds))
    return ok & seen


def held_since(curve: list[dict], bounds: dict, restart: int) -> int | None:
    """The first evaluation from which every later one of ``restart`` met the bounds (None if
    its last did not): when it settled, as the sweeps' epochs to success."""
    since = None
    for row in sorted((r for r in curve if r["restart"] == restart), key=lambda r: r["epoch"]):
        ok = bool(within({k: np.asarray(v) for k, v in row.items()}, bounds))
        since = (row["epoch"] if since is None else since) if ok else None
    return since


def choose(metrics: dict, ok: np.ndarray) -> int:
    """The kept restart: the best on validation (``selection_score``) among those that
    succeeded, or among all when none did."""
    score = np.where(ok, selection_score(metrics), np.inf) if ok.any() else selection_score(metrics)
    return int(np.argmin(score))


@dataclass
class Settings:
    epochs: int
    optim: str = "adam"
    lr: float = 0.001
    momentum: float = 0.0
    weight_decay: float = 1e-5
    log_every: int = 1000
    checkpoint_every: int = 10000
    kernel: str = "compiled"  # or "fused", "loop" (the references)
    success: dict = field(default_factory=dict)  # the task's bounds (seq.<task>.success) ...
    window: float = 0.1  # ... held at every evaluation in this last share of the epochs


@dataclass
class Progress:
    """Everything a run has made so far: a checkpoint of it resumes bit for bit."""

    epoch: int = -1  # the last finished epoch
    loss_sum: list = field(default_factory=list)  # per restart, since the last evaluation
    loss_count: int = 0
    curve: list = field(default_factory=list)  # rows: epoch, restart, metrics...
    log: list = field(default_factory=list)  # the diagnostic prints
    diagnostic: dict = field(default_factory=dict)  # the last of them, as data (diagnostics.record)
    seconds: float = 0.0  # training time (of this process: a resumed run counts from the resume)
    metrics: dict = field(default_factory=dict)  # per restart, at the last evaluation


def make_optimizer(model, s: Settings):
    if s.optim == "adam":
        return torch.optim.Adam(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=s.lr, momentum=s.momentum,
                           weight_decay=s.weight_decay)


def _next_multiple(epoch: int, every: int) -> int:
    return -(-epoch // every) * every


def spans(start: int, s: Settings, checkpoints: bool):
    """(first, last) epochs, inclusive, from ``start`` to the end, each span ending where
    ``train`` evaluates or (with ``checkpoints``) checkpoints: the compiled kernel trains a
    whole span in one call."""
    while start <= s.epochs:
        stop = min(_next_multiple(start, s.log_every), s.epochs)
        if checkpoints:
            stop = min(stop, _next_multiple(start, s.checkpoint_every))
        yield start, stop
        start = stop + 1


def _torch_epochs(model: Stacked, optimizer, symbols: torch.Tensor, starts: np.ndarray,
                  first: int, last: int, kernel: str, loss_sum: torch.Tensor) -> None:
    """Epochs first..last-1 with autograd and the torch optimiser (kernels fused, loop)."""
    eye, R = torch.eye(model.num_in), model.restarts
    for epoch in range(first, last):
        seq = symbols[starts[epoch]:starts[epoch + 1]]
        optimizer.zero_grad()
        _, logits = model.run(eye[seq[:-1]][:, None], kernel)  # (T, 1, R, C)
        nll = F.cross_entropy(logits[:, 0].permute(0, 2, 1), seq[1:, None].expand(-1, R),
                              reduction="none")  # (T, R)
        loss = nll.mean(0)  # each restart's own mean over time
        loss.sum().backward()
        optimizer.step()
        loss_sum += loss.detach()


def train(model: Stacked, grammar: Grammar, s: Settings, *,
          log: Callable[[str], None] = print,
          checkpoint: Callable[[int, dict], None] | None = None,
          on_eval: Callable[[int, dict], None] | None = None,
          resume: dict | None = None) -> Progress:
    """Train epochs 0..s.epochs inclusive (the course's N+1 updates), one sequence each.

    Every ``log_every`` epochs (from 0, after that epoch's update): evaluate every restart
    on the validation split, print the course's diagnostic for the best restart on it,
    record the curve.  Every ``checkpoint_every`` epochs and at the end: ``checkpoint(epoch, state)``,
    whose state (``resume``) continues the run exactly where it was: epoch e trains on
    sequence e, and nothing else is random.  Any kernel's checkpoint resumes under any
    other: the parameters and the optimiser state are torch's in all of them.
    """
    if len(grammar.train) < s.epochs + 1:
        raise ValueError(f"{s.epochs + 1} training sequences needed, {len(grammar.train)} given")
    optimizer = make_optimizer(model, s)
    R = model.restarts
    run = Progress(loss_sum=[0.0] * R)
    if resume:
        model.load_state_dict(resume["state"])
        optimizer.load_state_dict(resume["optimizer"])
        run = Progress(**resume["progress"])
    batch = eval_batch(grammar)
    starts = grammar.train.starts
    loss_sum = torch.tensor(run.loss_sum, dtype=torch.float32)
    if s.kernel == "compiled":
        from nnstudies.seq import compiled  # numba, imported when used

        def train_epochs(first, last):
            compiled.train_span(model, optimizer, grammar.train.symbols, starts, first, last,
                                loss_sum.numpy())
    else:
        symbols = torch.from_numpy(grammar.train.symbols.astype(np.int64))

        def train_epochs(first, last):
            _torch_epochs(model, optimizer, symbols, starts, first, last, s.kernel, loss_sum)
    clock = time.perf_counter() - run.seconds
    for first, epoch in spans(run.epoch + 1, s, checkpoint is not None):
        train_epochs(first, epoch + 1)
        run.loss_count += epoch + 1 - first
        run.epoch = epoch

        metrics = None
        if epoch % s.log_every == 0 or epoch == s.epochs:
            metrics = evaluate(model, batch, s.kernel)
            loss = (loss_sum / run.loss_count).numpy().astype(float)
            loss_sum.zero_()
            run.loss_count = 0
            best = int(np.argmin(selection_score(metrics)))
            for r in range(R):
                run.curve.append({"epoch": epoch, "restart": r,
                                  **{k: float(v[r]) for k, v in metrics.items()},
                                  "loss": float(loss[r])})
            sample = (epoch // s.log_every) % len(grammar.validation)
            run.diagnostic = diagnostics.record(model.select(best), grammar, sample, epoch, best)
            text = diagnostics.text(run.diagnostic, grammar.language) + f"best restart: {best}\n"
            run.log.append(text)
            log(text)
            if on_eval:
                on_eval(epoch, {**{k: float(v[best]) for k, v in metrics.items()},
                                "loss": float(loss[best])})
            run.metrics = {**{k: v.tolist() for k, v in metrics.items()}, "loss": loss.tolist()}
        if checkpoint and (epoch % s.checkpoint_every == 0 or epoch == s.epochs):
            run.loss_sum = loss_sum.tolist()
            if metrics is None:
                metrics = evaluate(model, batch, s.kernel)
            ok = held(run.curve, s.success, epoch, s.window)  # the plots keep this restart
            checkpoint(epoch, {"state": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "validation": {k: v.tolist() for k, v in metrics.items()},
                               "succeeded": ok.tolist(), "kept": choose(metrics, ok),
                               # No clock reading: a rerun writes the same bytes (dvc.lock).
                               "progress": {k: list(v) if isinstance(v, list) else v
                                            for k, v in vars(run).items() if k != "seconds"}})
    run.seconds = time.perf_counter() - clock
    return run
