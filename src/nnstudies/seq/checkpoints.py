"""Checkpoints of the stacked nets.

``epoch_<k>.pt``: every restart's weights and their validation metrics at epoch k (the
plots read it and take the restart best on validation).  ``progress.pt``: the latest state
of the run (weights, optimiser, curve, log, settings), from which ``resume`` continues bit
for bit.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path

import torch

from nnstudies import atomic
from nnstudies.errors import UserError
from nnstudies.seq import models
from nnstudies.seq.languages import Grammar, fingerprint
from nnstudies.seq.models import Stacked

FORMAT = "nnstudies-seq-1"


class Unreadable(Exception):
    """Why a file is not a train_seq checkpoint."""


def _load(path) -> dict:
    """The checkpoint at ``path``, read with torch's weights-only unpickler; why not, in the
    project's words: torch's own text advises weights_only=False, which would run whatever
    code the file holds, and its warnings would print before the project's line."""
    if not zipfile.is_zipfile(path):  # torch.save writes a zip; torch reads anything else as
        # a legacy raw pickle, warning about its protocol first
        raise Unreadable("not a torch zip archive: truncated or not written by train_seq")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError,
            zipfile.BadZipFile) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, pickle.UnpicklingError) or "weights_only" in why:
            why = ("it holds objects other than tensors and plain data; refused unread, as "
                   "loading them could run code")
        raise Unreadable(why) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise Unreadable("not a train_seq checkpoint")
    return ckpt


def _read(path) -> dict:
    try:
        return _load(path)
    except Unreadable as exc:
        raise UserError(f"{path}: cannot read this checkpoint ({exc}); rerun train_seq to "
                        "rewrite it") from None


def save(folder, settings: dict, grammar: Grammar, net: Stacked, epoch: int,
         state: dict) -> None:
    """Write epoch_<epoch>.pt and replace progress.pt; ``settings`` identifies the run."""
    folder = Path(folder)
    head = {"format": FORMAT, "model": settings["task"]["model"], "hid": net.hid,
            "num_in": net.num_in, "restarts": net.restarts, "epoch": epoch}
    atomic.save_torch({**head, "state": state["state"], "validation": state["validation"],
                       "succeeded": state["succeeded"], "kept": state["kept"]},
                      folder / f"epoch_{epoch}.pt")
    atomic.save_torch({**head, "settings": settings, "data": fingerprint(grammar, epoch + 1),
                       "state": state["state"],
                       "optimizer": state["optimizer"], "progress": state["progress"]},
                      folder / "progress.pt")


def clear(folder) -> None:
    """Remove an earlier run's checkpoints (the folder is a persistent DVC output)."""
    for f in Path(folder).glob("*.pt"):
        f.unlink()


def resumable(folder, settings: dict, grammar: Grammar, epochs: int) -> tuple[dict | None, str]:
    """The saved progress if it continues a run with these settings on the same data (the
    sequences it trained on so far may be followed by more), and why (not)."""
    path = Path(folder) / "progress.pt"
    if not path.exists():
        return None, f"no {path}: starting at epoch 0"
    try:
        ckpt = _load(path)
    except Unreadable as exc:  # a resume that cannot resume starts over, as documented
        return None, f"{path}: cannot resume from it ({exc}): starting at epoch 0"
    if not {"settings", "progress", "data", "state", "optimizer"} <= set(ckpt) or not isinstance(
            ckpt["progress"], dict) or "epoch" not in ckpt["progress"]:
        return None, f"{path} is not a progress file of train_seq: starting at epoch 0"
    if ckpt["settings"] != settings:
        return None, f"{path} was made with other settings: starting at epoch 0"
    done = ckpt["progress"]["epoch"]
    if done > epochs:
        return None, f"{path} is past epoch {epochs}: starting at epoch 0"
    if done + 1 > len(grammar.train) or ckpt["data"] != fingerprint(grammar, done + 1):
        return None, f"{path} was trained on other sequences: starting at epoch 0"
    return ckpt, f"resuming {path} after epoch {ckpt['progress']['epoch']}"


def load_all(path) -> tuple[Stacked, int, dict]:
    """Every restart at that checkpoint, the kept one (the best on validation among those
    that held their bounds up to it, ``train.held``) and what the checkpoint says of itself."""
    ckpt = _read(path)
    try:
        net = models.build(ckpt["model"], ckpt["num_in"], ckpt["hid"], ckpt["restarts"])
        net.load_state_dict(ckpt["state"])
        best = int(ckpt["kept"])
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: checkpoint does not hold a net ({exc})") from None
    return net, best, {"best_restart": best, "epoch": ckpt["epoch"], "model": ckpt["model"],
                       "restarts": ckpt["restarts"], "validation": ckpt["validation"]}


def load_best(path) -> tuple[Stacked, dict]:
    """The kept restart at that checkpoint, as a one-restart net."""
    net, best, info = load_all(path)
    return net.select(best), {k: info[k] for k in ("best_restart", "epoch", "restarts",
                                                    "validation")}
