"""The four languages of Study 3, generated from a seed, stored one compact file per language.

:data:`TABLE` holds what distinguishes the languages (alphabet, states, which prediction
positions are scored): every language-dependent branch reads it instead of comparing names.
Each language has three splits, each drawn from its own seeded stream: ``train`` (one
sequence per epoch), ``validation`` (the kept restart is chosen on it) and ``test`` (held out:
the kept restart's reported numbers).

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
import math
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nnstudies.errors import UserError
from nnstudies.outputs import Outputs

REBER = "BTSXPVE"
B, T, S, X, P, V, E = range(7)
# The Reber machine: node -> [(symbol, next node)]; node 6 is the end.  State = node + 1.
REBER_MACHINE = {0: [(T, 1), (P, 5)], 1: [(S, 1), (X, 2)], 2: [(S, 3), (X, 5)],
                 3: [(E, 6)], 4: [(V, 3), (P, 2)], 5: [(V, 4), (T, 5)]}
REBER_END = 6
BLOCKS = 5  # a^n b^n (c^n) blocks per sequence
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Language:
    """What a language's sequences look like and how a prediction of them is scored."""

    name: str
    alphabet: str  # symbol i is alphabet[i]
    counter: bool  # a^n b^n (c^n): the states are counts (else states of a finite machine)
    embedded: bool  # embedded Reber: B f <Reber string> f E
    top_state: int | None  # the top of the state colour scale; None: the counter's max_n
    # The prediction positions (of one sequence's L - 1) that `error` averages: embedded Reber
    # counts the inner string after its B and before its E (the course's [2:-3]) ...
    window: slice = field(default_factory=lambda: slice(None))
    # ... and scores the prediction of the closing T/P, the long-range dependency, as `final`.
    final: int | None = None

    @property
    def knob(self) -> str:
        """The ``seq.grammar`` setting of this language alone."""
        return "max_n" if self.counter else "reber_min_length"

    @property
    def machine(self) -> bool:
        """A finite-state grammar: its next-symbol probabilities are the machine's."""
        return not self.counter

    def max_state(self, max_n: int) -> int:
        return max_n if self.top_state is None else self.top_state

    def scores(self, sq: np.ndarray) -> dict[str, float]:
        """One sequence's squared errors per prediction position (L - 1, classes) ->
        ``error`` (mean over the window) and, where the language has one, ``final``."""
        out = {"error": float(sq[self.window].mean())}
        if self.final is not None:
            out["final"] = float(sq[self.final].mean())
        return out

    def masks(self, length: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Boolean masks over ``length`` prediction positions: the error window, the final one."""
        window = np.zeros(length, bool)
        window[self.window] = True
        if self.final is None:
            return window, None
        final = np.zeros(length, bool)
        final[self.final] = True
        return window, final


TABLE = {lang.name: lang for lang in (
    Language("reber", REBER, counter=False, embedded=False, top_state=6),
    Language("ereber", REBER, counter=False, embedded=True, top_state=18,
             window=slice(2, -3), final=-2),
    Language("anbn", "AB", counter=True, embedded=False, top_state=None),
    Language("anbncn", "ABC", counter=True, embedded=False, top_state=None),
)}
LANGUAGES = tuple(TABLE)  # the order fixes each language's seed stream


def language(name: str) -> Language:
    return TABLE[name]


def alphabet(lang: str) -> str:
    return TABLE[lang].alphabet


def max_state(lang: str, max_n: int) -> int:
    """The top of the colour scale, as the course plots it."""
    return TABLE[lang].max_state(max_n)


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
    def build(cls, seqs) -> Split:
        lengths = np.array([len(s[0]) for s in seqs])
        return cls(np.concatenate([s[0] for s in seqs]).astype(np.int8),
                   np.concatenate([s[1] for s in seqs]).astype(np.int16),
                   np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                   np.concatenate([s[2] for s in seqs]).astype(np.uint8))


@dataclass
class Grammar:
    lang: str
    max_n: int  # a^n b^n (c^n): n is at most max_n; 0 for the finite-state languages
    prob_table: np.ndarray  # distinct probability rows, (K, classes)
    train: Split
    validation: Split
    test: Split

    @property
    def language(self) -> Language:
        return TABLE[self.lang]

    @property
    def alphabet(self) -> str:
        return self.language.alphabet

    @property
    def classes(self) -> int:
        return len(self.alphabet)

    @property
    def max_state(self) -> int:
        return self.language.max_state(self.max_n)

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise ValueError(f"no split {name!r}: {', '.join(SPLITS)}")
        return getattr(self, name)


def fingerprint(grammar: Grammar, train_sequences: int) -> str:
    """md5 of what a run has seen after ``train_sequences`` epochs: those training
    sequences, the validation split it is evaluated on and the probability rows (a resumed
    run must see the same)."""
    h = hashlib.md5()
    end = grammar.train.starts[train_sequences]
    v = grammar.validation
    for a in (grammar.train.symbols[:end], v.symbols, v.states, v.prob_index,
              grammar.prob_table):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def generate(lang: str, seed: int, train: int, validation: int, test: int, max_n: int = 8,
             min_length: int = 0) -> Grammar:
    """Generate the train, validation and test splits of ``lang``, each from its own seeded
    stream (split k of seed s: stream (s, language, k)), so that a split's first sequences
    do not depend on how many the others hold."""
    info = TABLE[lang]
    rows = _Rows(len(info.alphabet))
    if not info.counter:
        max_n = 0  # no n in a finite-state language: its file does not depend on max_n
    splits = []
    for split_id, count in enumerate((train, validation, test)):
        rng = np.random.default_rng([seed, LANGUAGES.index(lang), split_id])
        if info.counter:
            seqs = _anbn_split(rng, count, len(info.alphabet), max_n, rows)
        else:
            seqs = _reber_split(rng, count, info.embedded, min_length, rows)
        splits.append(Split.build(seqs))
    return Grammar(lang, max_n, rows.array(), *splits)


def lengths(split: Split) -> np.ndarray:
    return np.diff(split.starts)


# Peak memory of `generate` per generated symbol (per-sequence arrays before they are joined),
# measured: 24 bytes (2,000,001 a^n b^n c^n sequences at max_n 64: 975M symbols, 23.7 GB) to
# 31 (the course's 200,001 at max_n 8: 13.7M symbols, 0.42 GB above the imports).
BYTES_PER_SYMBOL = 32
MEMORY_BUDGET = 4 * 2**30


def check_memory(lang: str, train: int, held_out: int, max_n: int, min_length: int) -> None:
    """A one-line UserError when generating these splits would exceed the memory budget:
    the mean length comes from a small sample made with the same settings.
    ``held_out``: the validation and test sequences together."""
    mean = float(lengths(generate(lang, 0, 1000, 1, 1, max_n, min_length).train).mean())
    need = (train + held_out) * mean * BYTES_PER_SYMBOL
    if need > MEMORY_BUDGET:
        raise UserError(f"params.yaml: seq.grammar.train_sequences = {train} (+ {held_out} "
                        f"validation and test) of {lang} (mean length {mean:.1f}) needs about "
                        f"{need / 2**30:.1f} GB to generate, over the {MEMORY_BUDGET / 2**30:g} GB "
                        "budget: fewer sequences, or a smaller seq.grammar.max_n / "
                        "reber_min_length")


def save(grammar: Grammar, file) -> None:
    """Write to an open binary file, a compressed npz.  The same sequences make the same
    bytes (numpy's savez stamps each member with the clock): a settings change that leaves
    a language's sequences as they were leaves its file, and what DVC runs after it, alone."""
    arrays = {"lang": np.array(grammar.lang), "max_n": np.array(grammar.max_n),
              "prob_table": grammar.prob_table}
    for name in SPLITS:
        split = grammar.split(name)
        for part in ("symbols", "states", "starts", "prob_index"):
            arrays[f"{name}_{part}"] = getattr(split, part)
    with zipfile.ZipFile(file, "w") as z:
        for name, array in arrays.items():
            member = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            member.compress_type = zipfile.ZIP_DEFLATED
            with z.open(member, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)


def _check(grammar: Grammar) -> None:
    """Raise ValueError unless the arrays fit together as ``save`` writes them."""
    if grammar.lang not in TABLE:
        raise ValueError(f"unknown language {grammar.lang!r}")
    classes = grammar.classes
    if grammar.prob_table.ndim != 2 or grammar.prob_table.shape[1] != classes:
        raise ValueError(f"prob_table has shape {grammar.prob_table.shape}, not (K, {classes})")
    for name in SPLITS:
        split = grammar.split(name)
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


def _check_sizes(z: zipfile.ZipFile) -> None:
    """Raise ValueError before numpy allocates what a forged file declares: numpy makes the
    array a member's header asks for before reading it (a shape of 10**14 is 91 TiB), and a
    member's length is what its zip entry says (a small deflated member can unpack to
    terabytes).  ``save`` writes no more than what ``generate`` may make within its budget."""
    total = 0
    for info in z.infolist():
        with z.open(info) as f:
            version = np.lib.format.read_magic(f)
            shape, _, dtype = (np.lib.format.read_array_header_1_0 if version == (1, 0) else
                               np.lib.format.read_array_header_2_0)(f)
        need = math.prod(shape) * dtype.itemsize
        if need > info.file_size:
            raise ValueError(f"{info.filename} declares shape {shape} ({need} bytes) but holds "
                             f"{info.file_size} bytes")
        total += info.file_size
    if total > MEMORY_BUDGET:
        raise ValueError(f"it unpacks to {total} bytes, over the {MEMORY_BUDGET} that make_seq "
                         "may write")


def load(path) -> Grammar:
    """Read and check a file written by ``save``; anything else is a one-line UserError."""
    try:
        with np.load(path, allow_pickle=False) as z:
            _check_sizes(z.zip)
            splits = [Split(*(z[f"{name}_{f}"] for f in ("symbols", "states", "starts",
                                                             "prob_index")))
                      for name in SPLITS]
            grammar = Grammar(str(z["lang"]), int(z["max_n"]), z["prob_table"], *splits)
        _check(grammar)
        return grammar
    except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile,
            zlib.error, NotImplementedError) as exc:
        # numpy's own text for foreign bytes suggests loading them with pickle: never shown;
        # zipfile says NotImplementedError for a corrupt entry's compression method.
        why = "truncated or corrupt" if "pickle" in str(exc) or not isinstance(
            exc, (KeyError, ValueError)) else str(exc).splitlines()[0]
        raise UserError(f"{path}: not a data file made by make_seq ({why}); "
                        f"regenerate it: dvc repro -f make_seq@{Path(path).stem}") from None


def split_facts(grammar: Grammar, name: str) -> dict:
    split = grammar.split(name)
    n = lengths(split)
    return {"sequences": len(split), "symbols": int(n.sum()), "mean_length": float(n.mean()),
            "min_length": int(n.min()), "max_length": int(n.max()),
            "max_state": int(split.states.max())}


def make(lang: str, g: dict) -> tuple[Grammar, Outputs]:
    """make_seq: the three splits of ``lang`` from the ``seq.grammar`` settings ``g``, and
    what they hold (lengths and states per split)."""
    import pandas as pd  # here: validate_params and the sweep workers import this module

    check_memory(lang, g["train_sequences"], g["validation_sequences"] + g["test_sequences"],
                 g["max_n"], g["reber_min_length"])
    grammar = generate(lang, g["seed"], g["train_sequences"], g["validation_sequences"],
                       g["test_sequences"], g["max_n"], g["reber_min_length"])
    splits = {name: split_facts(grammar, name) for name in SPLITS}
    info = grammar.language
    results = {"language": {"name": lang, "alphabet": info.alphabet, "counter": info.counter,
                            "embedded": info.embedded, "max_state": grammar.max_state},
               "settings": {k: v for k, v in g.items()
                            if k not in ("max_n", "reber_min_length") or k == info.knob},
               "splits": splits}
    metrics = {name: {"mean_length": facts["mean_length"], "max_length": facts["max_length"]}
               for name, facts in splits.items()}
    # How many sequences of each length each split holds (a figure's worth, as a table).
    counts = pd.DataFrame({name: pd.Series(lengths(grammar.split(name))).value_counts()
                           for name in SPLITS}).fillna(0).astype(int).sort_index()
    table = counts.rename_axis("length").reset_index()
    return grammar, Outputs(metrics=metrics, results=results, files={"lengths.csv": table})
