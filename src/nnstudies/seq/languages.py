"""The four grammars of Study 3, generated from a seed, stored one compact file per language.

Every sequence carries, per symbol, its grammar state, and per prediction position the true
next-symbol probability row (the course's ``target``).  Alignment, as in the course:
position k of a network's output comes after reading ``symbols[k]``, predicts
``symbols[k+1]`` with true row ``probs[k]``, and is labelled with ``states[k+1]``.

Storage (``save``/``load``): the sequences of a split are concatenated; ``starts`` holds
the offsets.  Probability rows are few and repeat, so each language keeps a small table of
distinct rows and one uint8 index per prediction position.
"""

from __future__ import annotations

import hashlib
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnstudies.errors import UserError

LANGUAGES = ("reber", "ereber", "anbn", "anbncn")
REBER = "BTSXPVE"
B, T, S, X, P, V, E = range(7)
# The Reber machine: node -> [(symbol, next node)]; node 6 is the end.  State = node + 1.
REBER_MACHINE = {0: [(T, 1), (P, 5)], 1: [(S, 1), (X, 2)], 2: [(S, 3), (X, 5)],
                 3: [(E, 6)], 4: [(V, 3), (P, 2)], 5: [(V, 4), (T, 5)]}
REBER_END = 6
BLOCKS = 5  # a^n b^n (c^n) blocks per sequence


def alphabet(lang: str) -> str:
    return {"reber": REBER, "ereber": REBER, "anbn": "AB", "anbncn": "ABC"}[lang]


def max_state(lang: str, max_n: int) -> int:
    """The top of the colour scale, as the course plots it."""
    return {"reber": 6, "ereber": 18}.get(lang, max_n)


class _Rows:
    """Interns probability rows: a table of distinct rows and an index per position."""

    def __init__(self, width: int):
        self.width, self.table = width, {}

    def index(self, row: tuple) -> int:
        return self.table.setdefault(row, len(self.table))

    def one_hot(self, symbol: int) -> int:
        return self.index(tuple(1.0 if i == symbol else 0.0 for i in range(self.width)))

    def array(self) -> np.ndarray:
        rows = np.zeros((len(self.table), self.width), np.float32)
        for row, i in self.table.items():
            rows[i] = row
        return rows


def _reber(rng, rows: _Rows, min_length: int, shift: int = 0):
    """One Reber string: (symbols, states, prob row indices); states shifted by ``shift``."""
    symbols, states, probs = [B], [0], []
    node = 0
    while node != REBER_END:
        states.append(node + 1 + shift)
        moves = REBER_MACHINE[node]
        if len(symbols) < min_length - 2 and node in (2, 4):
            # Length forcing (course): take the transition that avoids the exit to state 4.
            symbol, nxt = moves[1]
            probs.append(rows.one_hot(symbol))
        else:
            symbol, nxt = moves[rng.integers(len(moves))] if len(moves) > 1 else moves[0]
            row = [0.0] * 7
            for s, _ in moves:
                row[s] = 1.0 / len(moves)
            probs.append(rows.index(tuple(row)))
        symbols.append(symbol)
        node = nxt
    return symbols, states, probs


def _embedded_reber(rng, rows: _Rows, min_length: int):
    """B f <Reber string> f E with f = T or P; the closing f is the long-range dependency."""
    f = (T, P)[rng.integers(2)]
    shift = 2 if f == T else 10
    inner, inner_states, inner_probs = _reber(rng, rows, min_length, shift)
    inner_states[0] = shift  # the inner B's state
    symbols = [B, f] + inner + [f, E]
    states = [0, 1] + inner_states + [9 if f == T else 17, 18]
    probs = ([rows.index((0, .5, 0, 0, .5, 0, 0)), rows.one_hot(B)] + inner_probs
             + [rows.one_hot(f), rows.one_hot(E)])
    return symbols, states, probs


def _reber_split(rng, count: int, embed: bool, min_length: int, rows: _Rows):
    make = _embedded_reber if embed else _reber
    return [make(rng, rows, min_length) for _ in range(count)]


def _anbn_split(rng, count: int, classes: int, max_n: int, rows: _Rows):
    """Sequences of 5 blocks A^n B^n (C^n), n uniform in 1..max_n, then a final A.

    Each block is built once per n as a template (symbols after its leading A, the states,
    the prob rows) and sequences are assembled from templates, which is fast in numpy.
    """
    guess = rows.index((0.8, 0.2) + (0.0,) * (classes - 2))  # the course's heuristic row
    templates = {}
    for n in range(1, max_n + 1):
        symbols = [0] * (n - 1) + [1] * n + [k for k in range(2, classes) for _ in range(n)] + [0]
        states = [0] + list(range(1, n)) + [n] + list(range(n - 1, 0, -1))
        states += [s for _ in range(2, classes) for s in range(n, 0, -1)]
        probs = [guess] * n + [rows.one_hot(1)] * (n - 1)
        probs += [rows.one_hot(k) for k in range(2, classes) for _ in range(n)] + [rows.one_hot(0)]
        templates[n] = tuple(np.asarray(a) for a in (symbols, states, probs))
    ns = rng.integers(1, max_n + 1, size=(count, BLOCKS))
    out = []
    for seq_ns in ns:
        parts = [templates[n] for n in seq_ns]
        symbols = np.concatenate([[0]] + [p[0] for p in parts])
        states = np.concatenate([p[1] for p in parts] + [[0]])
        probs = np.concatenate([p[2] for p in parts])
        out.append((symbols, states, probs))
    return out


@dataclass
class Split:
    """A set of sequences, concatenated: sequence i is ``symbols[starts[i]:starts[i+1]]``."""

    symbols: np.ndarray  # int8, every symbol
    states: np.ndarray  # int16, the state of every symbol
    starts: np.ndarray  # int64, len = count + 1
    prob_index: np.ndarray  # uint8, one per prediction position (L - 1 per sequence)

    def __len__(self) -> int:
        return len(self.starts) - 1

    def sequence(self, i: int, prob_table: np.ndarray):
        """(symbols, states, probs) of sequence i: L symbols, L states, L-1 prob rows."""
        a, b = self.starts[i], self.starts[i + 1]
        return (self.symbols[a:b].astype(np.int64), self.states[a:b].astype(np.int64),
                prob_table[self.prob_index[a - i:b - i - 1]])

    @classmethod
    def build(cls, seqs) -> "Split":
        lengths = np.array([len(s[0]) for s in seqs])
        return cls(np.concatenate([s[0] for s in seqs]).astype(np.int8),
                   np.concatenate([s[1] for s in seqs]).astype(np.int16),
                   np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                   np.concatenate([s[2] for s in seqs]).astype(np.uint8))


@dataclass
class Grammar:
    lang: str
    max_n: int
    prob_table: np.ndarray  # distinct probability rows, (K, classes)
    train: Split
    eval: Split

    @property
    def alphabet(self) -> str:
        return alphabet(self.lang)

    @property
    def classes(self) -> int:
        return len(self.alphabet)

    @property
    def max_state(self) -> int:
        return max_state(self.lang, self.max_n)


def fingerprint(grammar: Grammar, train_sequences: int) -> str:
    """md5 of what a run has seen after ``train_sequences`` epochs: those training
    sequences, the eval split and the probability rows (a resumed run must see the same)."""
    h = hashlib.md5()
    end = grammar.train.starts[train_sequences]
    for a in (grammar.train.symbols[:end], grammar.eval.symbols, grammar.eval.states,
              grammar.eval.prob_index, grammar.prob_table):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def generate(lang: str, seed: int, train: int, eval: int, max_n: int = 8,
             min_length: int = 0) -> Grammar:
    """Generate the train and eval splits of ``lang`` from independent seeded streams."""
    rows = _Rows(len(alphabet(lang)))
    splits = []
    for split_id, count in enumerate((train, eval)):
        rng = np.random.default_rng([seed, LANGUAGES.index(lang), split_id])
        if lang in ("reber", "ereber"):
            seqs = _reber_split(rng, count, lang == "ereber", min_length, rows)
        else:
            seqs = _anbn_split(rng, count, len(alphabet(lang)), max_n, rows)
        splits.append(Split.build(seqs))
    return Grammar(lang, max_n, rows.array(), *splits)


# Peak memory of `generate` per generated symbol (per-sequence arrays before they are joined),
# measured: 24 bytes (2,000,001 a^n b^n c^n sequences at max_n 64: 975M symbols, 23.7 GB) to
# 31 (the course's 200,001 at max_n 8: 13.7M symbols, 0.42 GB above the imports).
BYTES_PER_SYMBOL = 32
MEMORY_BUDGET = 4 * 2**30


def check_memory(lang: str, train: int, eval: int, max_n: int, min_length: int) -> None:
    """A one-line UserError when generating these splits would exceed the memory budget:
    the mean length comes from a small sample made with the same settings."""
    lengths = np.diff(generate(lang, 0, 1000, 1, max_n, min_length).train.starts)
    need = (train + eval) * float(lengths.mean()) * BYTES_PER_SYMBOL
    if need > MEMORY_BUDGET:
        raise UserError(f"params.yaml: grammar.train_sequences = {train} (+ {eval} eval) of {lang} "
                        f"(mean length {lengths.mean():.1f}) needs about {need / 2**30:.1f} GB to "
                        f"generate, over the {MEMORY_BUDGET / 2**30:g} GB budget: fewer sequences, "
                        "or a smaller grammar.max_n / reber_min_length")


def save(grammar: Grammar, file) -> None:
    """Write to an open binary file (numpy's compressed npz)."""
    arrays = {"lang": np.array(grammar.lang), "max_n": np.array(grammar.max_n),
              "prob_table": grammar.prob_table}
    for name in ("train", "eval"):
        split = getattr(grammar, name)
        for field in ("symbols", "states", "starts", "prob_index"):
            arrays[f"{name}_{field}"] = getattr(split, field)
    np.savez_compressed(file, **arrays)


def _check(grammar: Grammar) -> None:
    """Raise ValueError unless the arrays fit together as ``save`` writes them."""
    if grammar.lang not in LANGUAGES:
        raise ValueError(f"unknown language {grammar.lang!r}")
    classes = len(alphabet(grammar.lang))
    if grammar.prob_table.ndim != 2 or grammar.prob_table.shape[1] != classes:
        raise ValueError(f"prob_table has shape {grammar.prob_table.shape}, not (K, {classes})")
    for name in ("train", "eval"):
        split = getattr(grammar, name)
        arrays = (split.symbols, split.states, split.starts, split.prob_index)
        if any(a.ndim != 1 for a in arrays):
            raise ValueError(f"{name} arrays must be 1-D")
        n = len(split)
        if (n < 1 or split.starts[0] != 0 or split.starts[-1] != len(split.symbols)
                or np.any(np.diff(split.starts) < 2) or len(split.states) != len(split.symbols)
                or len(split.prob_index) != len(split.symbols) - n):
            raise ValueError(f"{name} sequence offsets and lengths do not agree")
        if split.symbols.min() < 0 or split.symbols.max() >= classes:
            raise ValueError(f"{name} symbols outside 0..{classes - 1}")
        if split.prob_index.max() >= len(grammar.prob_table):
            raise ValueError(f"{name} probability rows outside the table")


def load(path) -> Grammar:
    """Read and check a file written by ``save``; anything else is a one-line UserError."""
    try:
        with np.load(path, allow_pickle=False) as z:
            splits = [Split(*(z[f"{name}_{f}"] for f in ("symbols", "states", "starts",
                                                             "prob_index")))
                      for name in ("train", "eval")]
            grammar = Grammar(str(z["lang"]), int(z["max_n"]), z["prob_table"], *splits)
        _check(grammar)
        return grammar
    except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile,
            zlib.error) as exc:
        # numpy's own text for foreign bytes suggests loading them with pickle: never shown.
        why = "truncated or corrupt" if "pickle" in str(exc) or not isinstance(
            exc, (KeyError, ValueError)) else str(exc).splitlines()[0]
        raise UserError(f"{path}: not a grammar data file made by make_grammar ({why}); "
                        f"regenerate it: dvc repro -f make_grammar@{Path(path).stem}") from None
