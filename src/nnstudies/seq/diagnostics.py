"""The course's diagnostic print (seq_train every 1000 epochs): recorded as data, then
printed in the course's format for the training log (which nobody parses: the report reads
the record)."""

from __future__ import annotations

import numpy as np
import torch

from nnstudies.seq.languages import Grammar, Language
from nnstudies.seq.models import Stacked


@torch.no_grad()
def run_one(model: Stacked, symbols: np.ndarray, classes: int):
    """One sequence through a one-restart net: probabilities (L-1, C) and unit states."""
    x = torch.eye(classes)[torch.from_numpy(symbols[:-1])][:, None]
    logits, units = model.unrolled(x)
    units = {k: v[:, 0, 0].numpy() for k, v in units.items()}
    return torch.softmax(logits[:, 0, 0], -1).numpy(), units


def record(model: Stacked, grammar: Grammar, index: int, epoch: int, restart: int,
           split: str = "validation") -> dict:
    """Sequence ``index`` of ``split`` through the one-restart ``model``: one row per
    prediction (after reading ``read``, the state reached, the units, the output and the
    true next-symbol probabilities), and the sequence's scores."""
    symbols, states, probs = grammar.split(split).sequence(index, grammar.prob_table)
    out, units = run_one(model, symbols, grammar.classes)
    chars = grammar.alphabet
    rows = []
    for k in range(len(out)):
        row = {"read": chars[symbols[k]], "next": chars[symbols[k + 1]],
               "state": int(states[k + 1])}
        row.update({unit: values[k].tolist() for unit, values in units.items()})
        rows.append({**row, "output": out[k].tolist(), "target": probs[k].tolist()})
    return {"epoch": epoch, "restart": restart, "split": split, "sequence": index,
            "symbols": "".join(chars[s] for s in symbols), "states": states.tolist(),
            "rows": rows, "scores": grammar.language.scores((out - probs) ** 2)}


def _arr(values) -> str:
    with np.printoptions(suppress=True, precision=2, sign=" "):
        return str(np.asarray(values, np.float32))


def text(rec: dict, language: Language) -> str:
    """A ``record`` in the course's print format."""
    chars, rows, states = language.alphabet, rec["rows"], rec["states"]
    lines = ["-----"]
    if language.machine:
        # Two-digit states (embedded Reber) are printed apart, as the seed author did.
        sep = " " if language.top_state >= 10 else ""
        lines.append("state = " + sep + sep.join(map(str, states)))
    else:
        lines.append("color = " + "".join(map(str, states)))
    lines.append("symbol= " + rec["symbols"])
    lines.append("label = " + "".join(str(chars.index(c)) for c in rec["symbols"]))
    if language.machine:
        lines.append("true probabilities:")
        lines.append("     " + "    ".join(chars))
        lines += [f"{r['state']} {_arr(r['target'])}" for r in rows]
        lines.append(f"hidden activations and output probabilities [{chars}]:")
        lines += [f"{r['state']} {_arr(r['hidden'])} {_arr(r['output'])}" for r in rows]
    else:
        lines.append("hidden activations and output probabilities:")
        lines += [f"{r['next']} {_arr(r['hidden'])} {_arr(r['output'])}" for r in rows]
    if rows and "context" in rows[0]:  # the LSTM's cell states, as the seed author printed them
        lines.append("context units:")
        lines += [f"{r['state']} {_arr(r['context'])}" for r in rows]
    lines.append(f"epoch: {rec['epoch']}")
    lines += [f"{name}: {value:1.4f}" for name, value in rec["scores"].items()]
    return "\n".join(lines) + "\n"
