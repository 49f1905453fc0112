"""`dvc repro` of Study 3 (sequences, training, plots) on a tiny profile, in a temp copy.

The stages' own behaviour (splits, the kept restart, resume) is tested in process in
test_seq.py; this is the one real run of the whole chain through DVC."""

import json

import pytest
import yaml

from conftest import run, set_params, tiny_seq

pytestmark = pytest.mark.pipeline

TASKS = ("reber", "anbn", "anbncn", "ereber")


def declared_outputs(repo):
    """Every out, metric and plot path that dvc.yaml declares for the Study 3 stages."""
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    paths = []
    for name in ("make_seq", "train_seq", "plot_seq"):
        items = stages[name]["foreach"]
        for item in items:
            for kind in ("outs", "metrics", "plots"):
                for entry in stages[name]["do"].get(kind, []):
                    path = entry if isinstance(entry, str) else next(iter(entry))
                    paths.append(path.replace("${key}", item).replace("${item}", item))
    return paths


def test_seq_pipeline_tiny_profile(repo):
    set_params(repo, **tiny_seq(601, 600, 300, **{f"seq.plot.epoch.{t}": 600 for t in TASKS}))
    run(["dvc", "repro", "plot_seq"], repo, timeout=600)
    for path in declared_outputs(repo):
        assert (repo / path).exists(), path
    for task in TASKS:
        assert sorted(p.name for p in (repo / f"models/seq_{task}").iterdir()) == [
            "epoch_0.pt", "epoch_300.pt", "epoch_600.pt", "progress.pt"]
        train = json.loads((repo / f"results/train_seq_{task}.json").read_text())
        assert len(train["per_restart"]) == 2 and 0 <= train["succeeded"] <= 2
        plot = json.loads((repo / f"results/plot_seq_{task}.json").read_text())
        assert plot["epoch"] == 600 and plot["split"] == "test" and plot["sequences"] == 20
        log = (repo / f"logs/train_seq_{task}/train.log").read_text()
        assert "epoch: 600" in log and "error: " in log
    pngs = {p.name for p in (repo / "plots/plot_seq_anbncn").iterdir()}
    assert pngs == {"hidden.png", "counter.png", "count_fit.png"}
    assert (repo / "plots/plot_seq_ereber/branches.png").exists()
    anbn = json.loads((repo / "metrics/plot_seq_anbn.json").read_text())
    assert set(anbn["count_r"]) == {"A", "B"} and "last_B" in anbn["det_accuracy"]
    assert "final" in json.loads((repo / "metrics/train_seq_ereber.json").read_text())["test"]
    # the Part 3 report renders from these results alone (no log is read)
    from nnstudies.report import document, seq

    text = document.markdown(seq.section(repo / "metrics", repo / "results", repo / "plots", {}),
                             repo / "reports")
    # "carries" only where the intervention on the cells shows it; either way the cell is named
    assert "of 2 restarts** met the bounds" in text and "**Intervention.**" in text
    assert "carries the outer T/P" in text or "separates the outer T/P best" in text
    # a unit is said to count only where it alone follows the count (|r| >= 0.9)
    assert ("counts the A's read so far" in text or "follows the A's read so far" in text)
    assert "read back from the hidden space" in text

    shown = run(["dvc", "plots", "show", "--json", "plots/train_seq_anbn/curve.csv"], repo)
    assert '"error"' in shown.stdout

    # A plot epoch is read only by its plot stage (a missing checkpoint: test_seq_dynamics).
    set_params(repo, **{"seq.plot.epoch.anbn": 300})
    again = run(["dvc", "repro", "plot_seq"], repo)
    ran = [line for line in again.stdout.splitlines() if line.startswith("Running stage")]
    # validate_params checks every params edit first; of the real stages only this plot reruns
    assert ran == ["Running stage 'validate_params':", "Running stage 'plot_seq@anbn':"], ran
    assert json.loads((repo / "results/plot_seq_anbn.json").read_text())["epoch"] == 300
