"""`nnstudies plots`: a real `dvc plots diff` of the views declared in dvc.yaml's top-level
`plots:` only, each panel once, none empty; plain `dvc plots diff` draws far more."""

from __future__ import annotations

import json
import re
import sys

import pytest
import yaml

from conftest import ROOT, run
from nnstudies import plotsview
from nnstudies.errors import UserError


def declared_ids() -> list[str]:
    """The top-level plot ids, read here with PyYAML, apart from plotsview's reader."""
    return [e if isinstance(e, str) else next(iter(e))
            for e in yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]]


def test_the_view_is_the_top_level_plots_of_dvc_yaml():
    ids = plotsview.curated_ids(ROOT)
    assert ids == declared_ids()
    assert {"kmnist_test_accuracy", "kmnist_losses", "seq_validation_error", "checkerboard_loss",
            "sweep_success_rate"} <= set(ids)
    assert not [i for i in ids if i.startswith("results/")]


def test_targets_select_one_id_and_name_no_file():
    # DVC re.match()es a target against each plot id and its "dvc.yaml::" form, and draws a
    # target naming an existing file a second time: neither may happen.
    losses, confusion = plotsview.target("kmnist_losses"), plotsview.target(
        "plots/train_kmnist_lin/confusion.csv")
    assert re.match(losses, "kmnist_losses") and not re.match(losses, "kmnist_losses_2")
    assert re.match(confusion, "plots/train_kmnist_lin/confusion.csv")
    for other in ("plots/train_kmnist_lin/confusionXcsv", "plots/train_kmnist_lin",
                  "dvc.yaml::plots/train_kmnist_lin/confusion.csv"):
        assert not re.match(confusion, other)
    assert "\\" not in confusion and not (ROOT / confusion).exists()
    with pytest.raises(UserError, match="cannot match literally"):
        plotsview.target("a^b")


def test_no_dvc_yaml_and_an_unknown_revision_are_one_line(tmp_path):
    with pytest.raises(UserError, match="no dvc.yaml"):
        plotsview.curated_ids(tmp_path)
    proc = run([sys.executable, "-m", "nnstudies", "plots", "no-such-rev"], ROOT, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == ("error: `dvc plots diff no-such-rev` failed: "
                                   "unknown Git revision 'no-such-rev'")


def panels(proc) -> dict:
    data = json.loads(proc.stdout)
    assert not data.get("errors"), data["errors"]
    return data["data"]


@pytest.mark.pipeline
def test_plots_diff_of_two_commits_draws_each_declared_view_once_with_data(repo):
    # a second commit that moves the checkerboard curve and a results file
    history = repo / "plots" / "train_checker" / "history.csv"
    lines = history.read_text().splitlines()
    epoch, loss, *rest = lines[1].split(",")
    lines[1] = ",".join([epoch, "0.5", *rest])
    history.write_text("\n".join(lines) + "\n")
    results = repo / "results" / "train_checker.json"
    results.write_text(results.read_text().replace("{", '{"edited": 1, ', 1))
    run("git -c user.name=t -c user.email=t@t commit -qam moved", repo)
    revs = ["HEAD~1", "HEAD"]

    curated = panels(run([sys.executable, "-m", "nnstudies", "plots", *revs, "--json"], repo))
    assert list(curated) == declared_ids()  # each declared view once: no twin, no results JSON
    for plot_id, drawn in curated.items():
        if drawn[0]["type"] == "image":
            assert sorted(r for d in drawn for r in d["revisions"]) == sorted(revs), plot_id
            continue
        (vega,) = drawn
        rows = vega["content"]["data"]["values"]
        assert {row["rev"] for row in rows} == set(revs), plot_id  # data rows from both commits
    loss_by_rev = {r["rev"]: r["loss"] for r in curated["checkerboard_loss"][0]["content"]["data"]["values"]
                   if r["epoch"] == epoch}
    assert loss_by_rev == {"HEAD~1": loss, "HEAD": "0.5"}

    # the page: one vega spec per vega view, one figure box per image view, no empty spec
    out = run([sys.executable, "-m", "nnstudies", "plots", *revs, "-o", "cmp"], repo).stdout.strip()
    assert out == str(repo / "cmp" / "index.html")
    page = (repo / "cmp" / "index.html").read_text(encoding="utf8")
    kinds = [d[0]["type"] for d in curated.values()]
    assert len(re.findall(r"vegaEmbed\('#", page)) == kinds.count("vega")
    assert len(re.findall(r'<div\s+id="', page)) == kinds.count("image")
    assert "var spec = {};" not in page

    # what the view leaves out: plain `dvc plots diff` draws every stage-level plot output,
    # results JSON and confusion twins included, some as empty specs
    plain = panels(run(["dvc", "plots", "diff", *revs, "--json"], repo))
    assert set(curated) < set(plain) and len(plain) > 4 * len(curated)
    assert "results/train_checker.json" in plain
    assert "dvc.yaml::plots/train_kmnist_lin/confusion.csv" in plain
