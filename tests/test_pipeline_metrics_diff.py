"""`dvc metrics diff` between two runs of one commit on two CPU paths: it shows exactly the
moves that survive the metrics' rounding (a move below its kind's quantum is not a row; across
the six paths of benchmarks/cpu_paths.json that halves the moved metrics, 14 to 7), and every
move it shows lies within its kind's tolerance."""

import json

import pytest

from conftest import SAMPLE, run, set_params

pytestmark = pytest.mark.pipeline
NETS = ("lin", "full")  # seconds per epoch; their losses differ between paths in the last bits
STAGES = [f"train_kmnist@{net}" for net in NETS]


def last_epoch(repo, rev: str | None) -> dict:
    """{(metrics file, metric): value} at full precision, from the results' history."""
    values = {}
    for net in NETS:
        path = f"results/train_kmnist_{net}.json"
        text = (run(["git", "show", f"{rev}:{path}"], repo).stdout if rev
                else (repo / path).read_text())
        last = json.loads(text)["history"][-1]
        values.update({(f"metrics/train_kmnist_{net}.json", k): last[k]
                       for k in ("train_loss", "test_loss", "test_accuracy")})
    return values


def test_metrics_diff_between_two_cpu_paths_is_within_tolerance_and_shorter(repo):
    from nnstudies import gates

    # host: the path the variables pick (strict would pin both runs to AVX2); the second run
    # takes torch's and MKL's oldest kernels, another path on any CPU with AVX2
    set_params(repo, **{"kmnist.source": SAMPLE, "kmnist.train.epochs": 2,
                        "kmnist.train.cpu_path": "host"})
    run(["dvc", "repro", *STAGES], repo, NNSTUDIES_TRACKING="off")
    run("git add -A && git -c user.name=t -c user.email=t@t commit -qm host", repo)
    run(["dvc", "repro", "-f", *STAGES], repo, NNSTUDIES_TRACKING="off",
        ATEN_CPU_CAPABILITY="default", MKL_ENABLE_INSTRUCTIONS="SSE4_2")

    before, after = last_epoch(repo, "HEAD"), last_epoch(repo, None)
    full_precision = [key for key in after if after[key] != before[key]]
    if not full_precision:
        pytest.skip("both runs took the same kernels on this CPU: nothing to compare")
    shown = json.loads(run(["dvc", "metrics", "diff", "--json", "HEAD"], repo).stdout)
    rows = {(file, metric) for file, metrics in shown.items() for metric in metrics}
    contract = gates.tolerances(repo / "gates.yaml")

    def written(key, value):
        return round(value, gates.decimals(contract.kinds[contract.kind(*key)]))

    survive = {key for key in full_precision if written(key, before[key]) != written(key, after[key])}
    assert rows == survive, (shown, {k: (before[k], after[k]) for k in full_precision})
    count, moves = gates.compare(shown, contract)
    assert count == len(rows) and all(move.ok for move in moves), moves
