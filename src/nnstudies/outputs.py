"""What a study's stage function returns: every output of one stage, as data.

Study packages build an :class:`Outputs` and never write files, log to MLflow or read
params.yaml themselves: :mod:`nnstudies.stage` does that, the same way for every stage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class Table(NamedTuple):
    """A CSV file without pandas: a header and rows of values."""
    header: Sequence[str]
    rows: Iterable[Sequence]


@dataclass
class Served:
    """One trained net to log as an MLflow model."""
    name: str             # the model's name in MLflow, e.g. net_conv, checker_mlp, seq_reber
    family: str           # a key of nnstudies.served.REGISTRY: how to rebuild the net from config and state
    config: dict          # the family's constructor arguments, JSON-able
    state: dict           # one net's state_dict (CPU tensors)
    example: Any          # a small float32 numpy input, batch (and T) > 1: export fixes a size 1


@dataclass
class Outputs:
    """One stage's outputs.  Paths under ``files`` are relative to the stage's plots folder.

    - ``metrics``: what is gated or compared (numbers, nested dicts allowed), written to
      ``metrics/<stage>.json`` and logged to MLflow flattened (``a.b``).
    - ``results``: every fact the report shows (settings used, tables, excerpts, per-restart
      detail), ``results/<stage>.json``; JSON-serialisable.
    - ``files``: name -> a pandas DataFrame (CSV), a str (text) or a matplotlib figure (PNG,
      closed once saved); a course log (``*.log``) goes to ``logs/<stage>/``, the rest to
      ``plots/<stage>/``; a dict, or an iterable of (name, value) pairs such as a generator,
      consumed in order, so that only one figure is open at a time; a :class:`Table` is a CSV
      file without pandas.
    - ``models``: path (relative to the repository root) -> an object for ``torch.save``.
    - ``served``: the trained nets to log as MLflow models
      (:class:`Served`: name, family, config, weights, input example);
      the sender exports each as a ``torch.export`` program (docs/compare.md).  Sweeps log
      none: thousands of nets.
    - ``timings``: clock readings, logged to MLflow only (metrics files are what code and
      params determine, so they never hold one).
    - ``step``: the MLflow step of the final metrics (e.g. the last epoch).
    - ``params``: params known only at run time (e.g. the md5s of the data read), logged to
      MLflow beside params.yaml's (nested dicts flattened).
    - ``children``: nested MLflow runs (one per sweep point), each a dict of
      ``tracking.Run.log_child``'s arguments (name, params, metrics, tags, start_ms, end_ms).
    """

    metrics: dict
    results: dict = field(default_factory=dict)
    files: dict[str, Any] | Iterable[tuple[str, Any]] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    step: int | None = None
    children: list[dict] = field(default_factory=list)
    params: dict = field(default_factory=dict)
    served: list[Served] = field(default_factory=list)


# What a stage function may call back while it runs: per-epoch numbers for MLflow's curves.
LogMetrics = Callable[[dict, int], None]
