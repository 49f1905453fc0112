"""The one skeleton every stage runs: params -> study function -> outputs, MLflow run.

A stage script is a few lines: the params groups it reads (exactly its dvc.yaml ``params:``,
``{item}`` for a foreach item) and a function from validated params to
:class:`~nnstudies.outputs.Outputs`::

    PARAMS = ["tracking", "kmnist.train", "kmnist.{item}"]

    def produce(p, ctx):
        return train.stage(p["kmnist"]["train"], p["kmnist"][ctx.item], ...)

    if __name__ == "__main__":
        stage.main("train_kmnist", "kmnist", PARAMS, produce, items=("lin", "full", "conv"))

This module does the rest, the same way for every stage: the command line, params loading
and validation, threads, the tracking run, flattening metrics for MLflow, writing every
output atomically at the path :mod:`nnstudies.layout` gives it (nothing before the study
function has succeeded, nothing outside the stage's outputs), metrics rounded by their kind
in gates.yaml (:meth:`nnstudies.gates.Contract.rounded`), and artifact logging.  Tests call
:func:`run` in process.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nnstudies import atomic, cli, cpu, gates, layout, params, tracking
from nnstudies.errors import UserError
from nnstudies.outputs import Outputs, Table
from nnstudies.progress import Progress


@dataclass
class Context:
    """What a stage function gets besides its params."""
    stage: str                      # as dvc.yaml names it, e.g. train_kmnist@lin
    item: str | None                # the foreach item, e.g. lin
    root: Path                      # the repository root (inputs are read relative to it)
    run: tracking.Run | None = field(default=None, repr=False)

    def log_metrics(self, values: dict, step: int) -> None:
        """Per-epoch numbers: MLflow curves (and nothing else: not the metrics file)."""
        if self.run is not None:
            self.run.log_metrics(loggable(values), step=step)

    def progress(self, total: int, unit: str = "epoch") -> Progress:
        return Progress(self.stage, total, unit)

    def path(self, relative: str | Path) -> Path:
        return self.root / relative


Produce = Callable[[dict, Context], Outputs]
GATES = "gates.yaml"  # at the root: its `tolerance` section gives every metric its kind


def main(name: str, study: str, groups: Sequence[str], produce: Produce, *,
         items: Sequence[str] | None = None, cpu_group: str | None = None) -> None:
    """The entry point of ``stages/<name>.py``: ``python stages/<name>.py [ITEM]``."""
    parser = argparse.ArgumentParser(description=sys.modules["__main__"].__doc__)
    if items is not None:
        parser.add_argument("item", choices=list(items))
    args = parser.parse_args()
    stage = f"{name}@{args.item}" if items is not None else name
    cli.run(lambda: run(stage, study, groups, produce, cpu_group=cpu_group) and None)


def run(stage: str, study: str, groups: Sequence[str], produce: Produce, *,
        root: str | Path = ".", cpu_group: str | None = None) -> Outputs:
    """Run one stage in process: load and check params, produce, write, track.

    ``cpu_group``: the dotted params group whose ``threads`` and ``cpu_path`` the stage runs
    with (e.g. ``kmnist.train``); without one, 1 thread on the host's path.  Never
    OMP_NUM_THREADS: the thread count changes the order of a reduction's additions, so it is
    a param like any other that shapes results.
    """
    root = Path(root)
    item = stage.partition("@")[2] or None
    p = params.load([g.format(item=item) for g in groups], root / "params.yaml")
    if cpu_group is not None:  # before any computation: each library fixes its path once
        cpu.pin(params.lookup(p, f"{cpu_group}.cpu_path"), f"{cpu_group}.cpu_path")
    cpu.set_threads(params.lookup(p, f"{cpu_group}.threads") if cpu_group else 1)
    kinds = metric_kinds(root)  # a bad gates.yaml stops here, before any training
    with tracking.start(study, stage, p) as tracked:
        tracked.set_tags(cpu.host())
        ctx = Context(stage, item, root, tracked if tracked.enabled else None)
        out = produce(p, ctx)
        written, metrics = write(stage, out, root, kinds)
        tracked.log_metrics({**loggable(metrics), **loggable(out.timings)}, step=out.step)
        tracked.log_params(out.params)
        for child in out.children:
            tracked.log_child(**child)
        for served in out.served:  # sent as MLflow models (nnstudies.served)
            tracked.log_model(served, step=out.step)
        for path in written:  # the .pt files stay in DVC's cache; MLflow gets out.served
            tracked.log_artifact(path, str(path.relative_to(root).parent))
    return out


def metric_kinds(root: Path) -> gates.Contract | None:
    """gates.yaml's metric kinds, which set the precision each metric is written with; None
    in a folder without gates.yaml (a test's scratch root): metrics written as computed.

    gates.yaml is no dep of a stage: a precision is not a result, and a changed bound must
    not retrain anything.  A stage writes a new precision the next time it runs.
    """
    path = root / GATES
    return gates.tolerances(path) if path.exists() else None


def write(stage: str, out: Outputs, root: Path,
          kinds: gates.Contract | None = None) -> tuple[list[Path], dict]:
    """Write every output of ``out`` where the layout puts it; return the files written (all
    but the models) and the metrics as written: rounded by their ``kinds``
    (:meth:`nnstudies.gates.Contract.rounded`) so that last-digit noise, which differs
    between CPU paths, never reaches `dvc metrics diff`.  The results keep every digit.

    All of them are prepared under temp names first (figures drawn, models serialised) and
    put in place together only when every one is ready: a figure that raises, a read-only
    folder or a full disk leaves the previous outputs as they were, none replaced.
    """
    for rel in out.models:
        _check_owned(stage, rel)
    files = out.files.items() if isinstance(out.files, dict) else out.files
    try:
        with atomic.Transaction() as batch:
            # The plots and logs folders are the stage's alone and are replaced whole, so that
            # nothing of a previous run with other params (a figure of another width) lingers.
            folder, logs = batch.folder(root / layout.plots(stage)), batch.folder(root / layout.logs(stage))
            written = []
            for name, value in files:
                # A course log (*.log) is for people: in logs/, DVC-cached; plots/ holds only
                # what `dvc plots` can draw (CSV, images).
                place = logs if name.endswith(".log") else folder
                _write_file(place / name, value() if callable(value) else value)
                written.append(root / (layout.logs(stage) if place is logs else layout.plots(stage)) / name)
            for rel, obj in out.models.items():
                batch.file(root / rel).write_bytes(atomic.torch_bytes(obj))
            results = {**out.results, "environment": environment()}
            metrics = _plain(out.metrics)
            if kinds is not None:
                metrics = kinds.rounded(layout.metrics(stage).as_posix(), metrics)
            for path, data in ((layout.results(stage), results), (layout.metrics(stage), metrics)):
                batch.file(root / path).write_text(atomic.json_text(_plain(data)))
            batch.commit()
    except OSError as exc:
        where = exc.filename or ""
        raise UserError(f"{stage}: cannot write its outputs ({exc.strerror or exc}: {where}); "
                        "none was replaced, the previous ones are as they were") from None
    return written + [root / layout.results(stage), root / layout.metrics(stage)], metrics


def _write_file(path: Path, value) -> None:
    """Write one file inside a folder that is not yet in place (so no temp name of its own)."""
    if isinstance(value, str):
        path.write_text(value)
    elif isinstance(value, Table):
        atomic.csv_file(path, value.header, value.rows)
    elif type(value).__module__.startswith("pandas"):
        value.to_csv(path, index=False, lineterminator="\n")
    elif hasattr(value, "savefig"):
        import matplotlib.pyplot as plt

        # No matplotlib version in a PNG's bytes: the same run gives the same file anywhere.
        value.savefig(path, format=path.suffix.lstrip("."),
                      **({"metadata": {"Software": None}} if path.suffix == ".png" else {}))
        plt.close(value)
    else:
        raise TypeError(f"{path}: cannot write a {type(value).__name__}")


def _check_owned(stage: str, rel: str | Path) -> None:
    if not layout.owns(stage, rel):
        raise ValueError(f"{stage} may not write {rel}: not one of its outputs in layout.outs")


def loggable(metrics: dict, prefix: str = "") -> dict[str, float]:
    """Nested metrics -> {"a.b": float} for MLflow: bools as 0/1; text, lists and None skipped
    (they are facts for the results file, not numbers to chart)."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(loggable(value, name + "."))
        elif hasattr(value, "__float__"):  # bool, int, float, numpy scalars; not str or None
            flat[name] = float(value)
    return flat


def _plain(value):
    """JSON-ready: numpy scalars and arrays to Python numbers and lists, NaN to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def environment() -> dict:
    """What shaped the numbers' last digits: library versions and the CPU path (no host name:
    two machines on one path write the same bytes)."""
    import platform

    env = {"python": platform.python_version()}
    for lib in ("numpy", "torch", "numba"):
        module = sys.modules.get(lib)
        if module is not None:
            env[lib] = module.__version__
    env["cpu_path"] = cpu.path()
    return env
