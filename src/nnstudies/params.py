"""The one place that knows the schema of params.yaml.

Every stage calls :func:`load` with the dotted groups it reads (the same keys its
``dvc.yaml`` entry lists under ``params:``).  Those groups are validated in full before
any work starts: a wrong type, an out-of-range number, an unknown choice or an unknown
key raises :class:`ParamError` with one line naming the key, the value and what is
allowed.  Top-level key names are always checked, so a typo such as ``hidd: 6`` is
caught by whichever stage runs first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nnstudies import yamlfile
from nnstudies.errors import UserError


class ParamError(UserError):
    """A params.yaml value that the schema does not allow; ``key``: its dotted key, if one;
    ``also``: the keys of other values it does not fit with."""

    def __init__(self, message: str, key: str | None = None, *also: str):
        super().__init__(message)
        self.keys = tuple(k for k in (key, *also) if k)


# ---------------------------------------------------------------------------
# Value specs: each checks one value and says what it allows.


@dataclass(frozen=True)
class Int:
    lo: int | None = None
    hi: int | None = None

    def check(self, value):
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            return None
        return value

    def allowed(self):
        return "an integer" + _range_text(self.lo, self.hi)


@dataclass(frozen=True)
class Float:
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # True: the lower bound itself is not allowed

    def check(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            return None
        if self.lo is not None and (value < self.lo or (self.lo_open and value == self.lo)):
            return None
        if self.hi is not None and value > self.hi:
            return None
        return value

    def allowed(self):
        if self.lo_open and self.hi is None:
            return f"a number > {self.lo:g}"
        return "a number" + _range_text(self.lo, self.hi)


@dataclass(frozen=True)
class Bool:
    def check(self, value):
        return value if isinstance(value, bool) else None

    def allowed(self):
        return "true or false"


@dataclass(frozen=True)
class Choice:
    options: tuple

    def check(self, value):
        return value if isinstance(value, str) and value in self.options else None

    def allowed(self):
        return "one of " + ", ".join(map(str, self.options))


@dataclass(frozen=True)
class Text:
    def check(self, value):
        return value if isinstance(value, str) and value.strip() else None

    def allowed(self):
        return "a non-empty string"


@dataclass(frozen=True)
class Match:
    """A string matching a regular expression; ``text`` says what it allows."""
    pattern: str
    text: str

    def check(self, value):
        return value if isinstance(value, str) and re.fullmatch(self.pattern, value) else None

    def allowed(self):
        return self.text


@dataclass(frozen=True)
class List:
    item: Any
    length: int | None = None
    min_length: int = 1

    def check(self, value):
        if not isinstance(value, list):
            return None
        if self.length is not None and len(value) != self.length:
            return None
        if len(value) < self.min_length:
            return None
        checked = [self.item.check(v) for v in value]
        return None if any(c is None for c in checked) else checked

    def allowed(self):
        size = f"{self.length} " if self.length is not None else ""
        return f"a list of {size}items, each {self.item.allowed()}"


def _range_text(lo, hi):
    if lo is not None and hi is not None:
        return f" from {lo:g} to {hi:g}"
    if lo is not None:
        return f" >= {lo:g}"
    if hi is not None:
        return f" <= {hi:g}"
    return ""


# ---------------------------------------------------------------------------
# The schema.  A dict is a group (its keys are exactly the allowed keys);
# anything else is a value spec.

_SGD = {"lr": Float(0.0, lo_open=True), "momentum": Float(0.0, 1.0)}
# A seq task's language is its name (data/seq/<task>.npz); `success` bounds each
# restart's final validation metrics (error, final: ceilings; separation: a floor).
_SEQ_TASK = {"model": Choice(("srn", "lstm")), "hid": Int(1, 64), "epochs": Int(1)}
_RATE = Float(0.0, 1.0)
# A sweep: sizes (deduplicated, in order) x seeds 0..seeds-1, one run per point.
_HIDS = List(Int(1, 64))
# torch/numba threads of a training stage: part of what decides the last bits of its results
# (a reduction split over more threads adds in another order), so a param, never the
# environment's OMP_NUM_THREADS.  256 caps a typo (100,000 threads segfaulted a stage).
_THREADS = Int(1, 256)
# Which kernels compute (nnstudies.cpu): host = this machine's own; strict = the AVX2 kernels
# every x86 machine runs, the same bits everywhere.
_CPU_PATH = Choice(("host", "strict"))
# The counter nets that train_beyond trains (seq.beyond.<name>; dvc.yaml's foreach list).
BEYOND_NETS = ("anbn_lstm", "anbncn_lstm", "anbn_wide")

SCHEMA: dict = {
    "profile": Text(),  # a profiles/<name>.yaml; gates.yaml must have its bounds
    "hid": Int(1, 64),  # 64: train_checker peaks at 1.1 GB (1,000 took 2 GB and 150 s)
    "tracking": {"enabled": Bool(), "required": Bool()},
    "kmnist": {
        "source": Text(),
        "seeds": Int(1, 1000),  # seeds_kmnist: each net from seeds 0..seeds-1
        "train": {
            "seed": Int(0),
            "epochs": Int(1, 1000),
            "batch_size": Int(1, 60000),
            "test_batch_size": Int(1, 60000),
            "shuffle": Bool(),
            "device": Choice(("auto", "cpu", "cuda")),
            "log_interval": Int(1),
            "threads": _THREADS,
            "cpu_path": _CPU_PATH,
        },
        # Per net: its optimiser and its layer sizes.
        "lin": dict(_SGD),
        "full": dict(_SGD, hidden=Int(1, 100000)),
        "wide": dict(_SGD, hidden=Int(1, 100000)),  # NetFull, widened: the size control
        "conv": dict(_SGD, channels1=Int(1, 1024), channels2=Int(1, 1024), kernel=Int(1, 7),
                     fc=Int(1, 100000)),
    },
    "checker": {
        "train": {
            "act": Choice(("sig", "step")),
            "init": Float(0.0, lo_open=True),
            "lr": Float(0.0, lo_open=True),
            "weight_decay": Float(0.0),
            "max_epochs": Int(1),
            "patience": Int(1),
            "restarts": Int(1, 4096),
            "seed": Int(0),
            "log_every": Int(1),
            "threads": _THREADS,
            "cpu_path": _CPU_PATH,
        },
        "hand": {
            "in_weight": List(List(Float(), length=2), length=4),
            "hid_bias": List(Float(), length=4),
            "out_weight": List(Float(), length=4),
            "out_bias": Float(),
            "scale": Float(0.0, lo_open=True),
        },
    },
    "seq": {
        # The sequences of every task (make_seq): the kept restart is chosen on validation and
        # reported on test, two held-out splits of their own.
        "grammar": {
            "seed": Int(0),
            "train_sequences": Int(1),
            "validation_sequences": Int(1, 100000),
            "test_sequences": Int(1, 100000),
            "max_n": Int(1, 64),
            "reber_min_length": Int(0, 64),
        },
        "train": {
            "optim": Choice(("adam", "sgd")),
            "lr": Float(0.0, lo_open=True),
            "momentum": Float(0.0, 1.0),
            "weight_decay": Float(0.0),
            "init": Float(0.0, lo_open=True),
            "restarts": Int(1, 1024),
            "seed": Int(0),
            "log_every": Int(1),
            "checkpoint_every": Int(1),
            "kernel": Choice(("compiled", "fused", "loop")),
            "resume": Bool(),
            "threads": _THREADS,
            "cpu_path": _CPU_PATH,
            "success_window": Float(0.0, 1.0),
        },
        "reber": dict(_SEQ_TASK, success={"error": _RATE, "separation": _RATE}),
        "anbn": dict(_SEQ_TASK, success={"error": _RATE}),
        "anbncn": dict(_SEQ_TASK, success={"error": _RATE}),
        "ereber": dict(_SEQ_TASK, success={"final": _RATE}),
        # Counter nets probed past their trained n (stage beyond); each trained by train_beyond.
        "beyond": {
            "probe_max_n": Int(2, 1000),
            **{name: dict(_SEQ_TASK, language=Choice(("anbn", "anbncn")), max_n=Int(1, 64),
                          success={"error": _RATE})
               for name in BEYOND_NETS},
        },
        # Which checkpoint each plot stage reads (in epochs): a group of its own, so that
        # changing it reruns only the plots, never the training.
        "plot": {
            "num_sequences": Int(1, 1000),
            "epoch": {"reber": Int(0), "anbn": Int(0), "anbncn": Int(0), "ereber": Int(0)},
        },
    },
    "sweep": {
        "scheduler": Match(r"local|(tcp|tls)://\S+:\d+",
                           "'local' or a Dask scheduler address such as tcp://host:8786"),
        "workers": Int(0, 1024),  # local only; 0: one per core
        "batch": Int(1, 4096),  # seeds per Dask task (lanes): changes no result
        "seeds": Int(1, 100000),
        "threshold": Float(0.0, 1.0, lo_open=True),
        "checker": {"hids": _HIDS},
        "seq": {"reber": {"hids": _HIDS}, "anbn": {"hids": _HIDS}, "anbncn": {"hids": _HIDS}},
    },
    "report": {"title": Text()},
}


# ---------------------------------------------------------------------------


def read(path: str | Path = "params.yaml") -> dict:
    """Parse params.yaml as DVC does (YAML 1.2); a missing or malformed file is one line."""
    data = yamlfile.read(path, ParamError)
    if data is None:  # YAML reads an empty file, or one of comments only, as null
        raise ParamError(f"{path}: holds no keys (empty, or only comments); it must map "
                         f"{', '.join(SCHEMA)} to values")
    if not isinstance(data, dict):
        raise ParamError(f"{path}: must map keys ({', '.join(SCHEMA)}) to values, "
                         f"but holds {yamlfile.kind(data)}")
    return data


def load(keys: Iterable[str], path: str | Path = "params.yaml") -> dict:
    """Validate the dotted ``keys`` of params.yaml and return them as a nested dict.

    ``load(["kmnist.train", "kmnist.lin"])`` returns ``{"kmnist": {"train": {...}, "lin": {...}}}``
    with every value checked against :data:`SCHEMA`.
    """
    return check(read(path), keys, path)


def check(data: dict, keys: Iterable[str], path: str | Path = "params.yaml") -> dict:
    """:func:`load` of params already read (a mapping); ``path`` names them in messages."""
    for name in data:
        if name not in SCHEMA:
            raise ParamError(f"{path}: unknown key {yamlfile.show(name)} (allowed: "
                             f"{', '.join(SCHEMA)})", str(name))
    out: dict = {}
    for dotted in keys:
        spec, value = SCHEMA, data
        parts = dotted.split(".")
        for depth, part in enumerate(parts):
            if not isinstance(spec, dict) or part not in spec:
                raise KeyError(f"{dotted} is not in the params schema")  # a programming error
            if not isinstance(value, dict) or part not in value:
                missing = ".".join(parts[:depth + 1])
                raise ParamError(f"{path}: missing key '{missing}'", missing)
            spec, value = spec[part], value[part]
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = validate(spec, value, dotted, path)
    return out


def validate(spec, value, key: str, path: str | Path = "params.yaml"):
    """Check ``value`` against ``spec``; return it (floats normalised) or raise ParamError."""
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise ParamError(f"{path}: {key} = {yamlfile.show(value)}: must be a group of keys "
                             f"({', '.join(spec)})", key)
        unknown = [k for k in value if k not in spec]
        if unknown:
            raise ParamError(f"{path}: unknown key '{key}.{unknown[0]}' (allowed: {', '.join(spec)})",
                             f"{key}.{unknown[0]}")
        missing = [k for k in spec if k not in value]
        if missing:
            raise ParamError(f"{path}: missing key '{key}.{missing[0]}'", f"{key}.{missing[0]}")
        return {k: validate(spec[k], value[k], f"{key}.{k}", path) for k in spec}
    checked = spec.check(value)
    if checked is None:
        raise ParamError(f"{path}: {key} = {yamlfile.show(value)}: must be {spec.allowed()}", key)
    return checked


def flatten(tree: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: how params are logged to MLflow."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def lookup(tree: dict, dotted: str):
    """``lookup(p, "kmnist.train.threads")``: one value of loaded params by its dotted key."""
    for part in dotted.split("."):
        tree = tree[part]
    return tree
