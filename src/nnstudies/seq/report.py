"""The course's diagnostic print (seq_train every 1000 epochs), in its format."""

from __future__ import annotations

import numpy as np
import torch

from nnstudies.seq.languages import Grammar
from nnstudies.seq.models import Stacked


def _arr(a: np.ndarray) -> str:
    with np.printoptions(suppress=True, precision=2, sign=" "):
        return str(a)


@torch.no_grad()
def run_one(model: Stacked, symbols: np.ndarray, classes: int):
    """One sequence through a one-restart net: probabilities (L-1, C) and unit states."""
    x = torch.eye(classes)[torch.from_numpy(symbols[:-1])][:, None]
    logits, units = model.unrolled(x)
    units = {k: v[:, 0, 0].numpy() for k, v in units.items()}
    return torch.softmax(logits[:, 0, 0], -1).numpy(), units


def diagnostic(model: Stacked, grammar: Grammar, index: int, epoch: int) -> str:
    """The print for eval sequence ``index`` through the one-restart ``model``."""
    symbols, states, probs = grammar.eval.sequence(index, grammar.prob_table)
    out, units = run_one(model, symbols, grammar.classes)
    chars = grammar.alphabet
    sq = (out - probs) ** 2
    lines = ["-----"]
    reber = grammar.lang in ("reber", "ereber")
    if grammar.lang == "ereber":
        lines.append("state =  " + " ".join(map(str, states)))
    else:
        lines.append(("state = " if reber else "color = ") + "".join(map(str, states)))
    lines.append("symbol= " + "".join(chars[s] for s in symbols))
    lines.append("label = " + "".join(map(str, symbols)))
    if reber:
        lines.append("true probabilities:")
        lines.append("     " + "    ".join(chars))
        lines += [f"{states[k + 1]} {_arr(probs[k])}" for k in range(len(probs))]
        lines.append(f"hidden activations and output probabilities [{chars}]:")
        lines += [f"{states[k + 1]} {_arr(units['hidden'][k])} {_arr(out[k])}"
                  for k in range(len(out))]
    else:
        lines.append("hidden activations and output probabilities:")
        lines += [f"{chars[symbols[k + 1]]} {_arr(units['hidden'][k])} {_arr(out[k])}"
                  for k in range(len(out))]
    if "context" in units:  # the LSTM's cell states, as the seed author printed them
        lines.append("context units:")
        lines += [f"{states[k + 1]} {_arr(units['context'][k])}" for k in range(len(out))]
    lines.append(f"epoch: {epoch}")
    if grammar.lang == "ereber":
        lines.append(f"error: {sq[2:-3].mean():1.4f}")
        lines.append(f"final: {sq[-2].mean():1.4f}")
    else:
        lines.append(f"error: {sq.mean():1.4f}")
    return "\n".join(lines) + "\n"
