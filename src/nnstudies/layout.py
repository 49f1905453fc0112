"""Where every file of the pipeline lives: the one module that names output paths.

A stage is named as in dvc.yaml (``train_kmnist``), a foreach stage's item after ``@``
(``train_kmnist@lin``).  Its files are named by :func:`slug` (``train_kmnist_lin``):
``metrics/<slug>.json`` holds what is gated or compared, ``results/<slug>.json`` every fact
the report shows, ``plots/<slug>/`` its figures and tables, ``logs/<slug>/`` the course's
logs (stages in :data:`WITH_LOGS`).  :func:`outs` lists every stage's outputs;
``tests/test_dvc_yaml.py`` checks dvc.yaml against it, and :mod:`nnstudies.stage` refuses to
write a model outside them.
"""

from __future__ import annotations

from pathlib import Path

METRICS, RESULTS, PLOTS, LOGS = Path("metrics"), Path("results"), Path("plots"), Path("logs")
DATA, MODELS, REPORTS = Path("data"), Path("models"), Path("reports")

PARAMS_OK = DATA / "params.ok"
KMNIST_DATA = DATA / "kmnist"


def slug(stage: str) -> str:
    """``train_kmnist@lin`` -> ``train_kmnist_lin``: the stem of a stage's files."""
    return stage.replace("@", "_")


def metrics(stage: str) -> Path:
    return METRICS / f"{slug(stage)}.json"


def results(stage: str) -> Path:
    return RESULTS / f"{slug(stage)}.json"


def plots(stage: str) -> Path:
    return PLOTS / slug(stage)


def logs(stage: str) -> Path:
    """The course's logs of a stage (``*.log``): for people, DVC-cached, parsed by nothing."""
    return LOGS / slug(stage)


def seq_data(task: str) -> Path:
    return DATA / "seq" / f"{task}.npz"


def kmnist_model(net: str) -> Path:
    return MODELS / f"kmnist_{net}.pt"


def seq_models(task: str) -> Path:
    return MODELS / f"seq_{task}"


CHECKER_MODEL = MODELS / "checker.pt"

# Every stage's outputs, as dvc.yaml names them ({item}: the foreach item).  The standard three
# (metrics, results, plots folder) are added by outs(); list here only what else a stage writes.
EXTRA_OUTS: dict[str, list[str]] = {
    "validate_params": [str(PARAMS_OK)],
    "fetch_kmnist": [str(KMNIST_DATA)],
    "train_kmnist": ["models/kmnist_{item}.pt"],
    "compare_kmnist": [],
    "seeds_kmnist": ["points/seeds_kmnist.jsonl"],
    "train_checker": [str(CHECKER_MODEL)],
    "hand_checker": [],
    "make_seq": ["data/seq/{item}.npz"],
    "train_seq": ["models/seq_{item}"],
    "plot_seq": [],
    "train_beyond": ["models/seq_{item}"],
    "beyond": [],
    "sweep_checker": ["points/sweep_checker.jsonl"],
    "sweep_seq": ["points/sweep_seq.jsonl"],
    "report": ["reports/report.md", "reports/report.html"],
}
# Stages that write no metrics/results/plots of their own.
BARE = {"validate_params", "report"}
# Stages that write the course's logs (the original scripts' console output).
WITH_LOGS = {"train_kmnist", "train_checker", "hand_checker", "train_seq", "train_beyond"}


def outs(stage: str) -> list[Path]:
    """Every path ``stage`` (``name`` or ``name@item``) may write: files, or folders it owns."""
    name, _, item = stage.partition("@")
    extra = [Path(p.format(item=item)) for p in EXTRA_OUTS[name]]
    if name in BARE:
        return extra
    return [metrics(stage), results(stage), plots(stage), *extra,
            *([logs(stage)] if name in WITH_LOGS else [])]


def owns(stage: str, path: str | Path) -> bool:
    """Whether ``path`` (relative to the repository root) is, or is inside, one of its outputs."""
    path = Path(path)
    return any(path == out or out in path.parents for out in outs(stage))


def sweep_points(stage: str) -> Path:
    """A sweep's point cache (nnstudies.sweep.cache): committed in git, kept across reruns."""
    return Path("points") / f"{slug(stage)}.jsonl"


def dask_log(stage: str) -> Path:
    """Dask's own log records during a sweep: for debugging, in no output (git ignores it)."""
    return Path(".nnstudies") / "dask" / f"{slug(stage)}.log"
