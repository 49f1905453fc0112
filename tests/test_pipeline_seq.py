"""`dvc repro` of Study 3 (grammars, training, plots) on a tiny profile, in a temp copy."""

import json

import pytest
import yaml

from conftest import run, set_params

pytestmark = pytest.mark.pipeline

TASKS = ("reber", "anbn", "anbncn", "ereber")


def declared_outputs(repo):
    """Every out, metric and plot path that dvc.yaml declares for the Study 3 stages."""
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    paths = []
    for name in ("make_grammar", "train_seq", "plot_seq"):
        items = stages[name]["foreach"]
        for item in items:
            for kind in ("outs", "metrics", "plots"):
                for entry in stages[name]["do"].get(kind, []):
                    path = entry if isinstance(entry, str) else next(iter(entry))
                    paths.append(path.replace("${key}", item).replace("${item}", item))
    return paths


def test_seq_pipeline_tiny_profile(repo):
    set_params(repo, **{
        "tracking.enabled": False,
        "grammar.train_sequences": 601, "grammar.eval_sequences": 20,
        "seq.train.restarts": 2, "seq.train.log_every": 200, "seq.train.checkpoint_every": 300,
        **{f"seq.{t}.epochs": 600 for t in TASKS},
        **{f"seq.plot.epoch.{t}": 600 for t in TASKS},
    })
    run(["dvc", "repro", "plot_seq"], repo, timeout=600)
    for path in declared_outputs(repo):
        assert (repo / path).exists(), path
    for task in TASKS:
        assert sorted(p.name for p in (repo / f"models/seq_{task}").iterdir()) == [
            "epoch_0.pt", "epoch_300.pt", "epoch_600.pt", "progress.pt"]
        train = json.loads((repo / f"metrics/train_seq_{task}.json").read_text())
        assert len(train["restart"]["error"]) == 2 and 0 <= train["success_count"] <= 2
        plot = json.loads((repo / f"metrics/plot_seq_{task}.json").read_text())
        assert 0 <= plot["hidden"]["centroid_accuracy"] <= 1
        log = (repo / f"plots/train_seq_{task}/train.log").read_text()
        assert "epoch: 600" in log and "error: " in log
    pngs = {p.name for p in (repo / "plots/plot_seq_anbncn").glob("*.png")}
    assert {"hidden_01.png", "hidden_02.png", "hidden_12.png", "machine.png",
            "counter.png"} <= pngs and any("3d" in n for n in pngs)
    assert (repo / "plots/plot_seq_ereber/context_34.png").exists()
    anbn = json.loads((repo / "metrics/plot_seq_anbn.json").read_text())
    assert 0 <= anbn["hidden"]["phase_centroid_accuracy"] <= 1 and "last_B" in anbn["det_accuracy"]
    assert "final" in json.loads((repo / "metrics/train_seq_ereber.json").read_text())

    shown = run(["dvc", "plots", "show", "--json", "plots/train_seq_anbn/curve.csv"], repo)
    assert '"error"' in shown.stdout

    # A plot epoch is read only by its plot stage; a missing checkpoint is one clear line.
    set_params(repo, **{"seq.plot.epoch.anbn": 300})
    again = run(["dvc", "repro", "plot_seq"], repo)
    ran = [line for line in again.stdout.splitlines() if line.startswith("Running stage")]
    # validate_params checks every params edit first; of the real stages only this plot reruns
    assert ran == ["Running stage 'validate_params':", "Running stage 'plot_seq@anbn':"], ran
    assert json.loads((repo / "metrics/plot_seq_anbn.json").read_text())["epoch"] == 300
    set_params(repo, **{"seq.plot.epoch.anbn": 450})
    bad = run(["dvc", "repro", "plot_seq@anbn"], repo, check=False)
    assert bad.returncode != 0
    assert "seq.plot.epoch.anbn = 450: no checkpoint" in bad.stderr + bad.stdout
    assert "Traceback" not in bad.stderr

    # resume: a longer run carries on from the persisted checkpoints, log and curve included.
    before = json.loads((repo / "metrics/train_seq_anbn.json").read_text())
    set_params(repo, **{"seq.train.resume": True, "seq.anbn.epochs": 700,
                        "grammar.train_sequences": 701})
    resumed = run(["dvc", "repro", "train_seq@anbn"], repo)
    assert "resuming" in resumed.stdout and "after epoch 600" in resumed.stdout
    after = json.loads((repo / "metrics/train_seq_anbn.json").read_text())
    assert after["epochs"] == 700 and before["epochs"] == 600
    assert (repo / "models/seq_anbn/epoch_700.pt").exists()
    log = (repo / "plots/train_seq_anbn/train.log").read_text()
    assert "epoch: 0\n" in log and "epoch: 700\n" in log
