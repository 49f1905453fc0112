"""Profiles merge into params.yaml, keep its comments, and are validated before writing."""

import shutil

import pytest
import yaml

from conftest import ROOT
from nnstudies import params, profiles
from nnstudies.errors import UserError


@pytest.fixture
def workdir(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(ROOT / "profiles", tmp_path / "profiles")
    return tmp_path


def test_ci_paper_default_round_trip(workdir):
    """ci and paper change what they say; `default` gives back the committed params.yaml."""
    committed = params.flatten(yaml.safe_load((ROOT / "params.yaml").read_text()))
    assert committed["profile"] == "default"
    assert committed["kmnist.source"] == "data/samples/kmnist-holdout"  # offline by default
    profiles.apply("ci", workdir / "params.yaml", workdir / "profiles")
    ci = params.flatten(yaml.safe_load((workdir / "params.yaml").read_text()))
    assert ci["profile"] == "ci" and ci["kmnist.source"] == "data/samples/kmnist-holdout"
    assert ci["seq.anbncn.epochs"] < committed["seq.anbncn.epochs"]
    profiles.apply("paper", workdir / "params.yaml", workdir / "profiles")
    paper = params.flatten(yaml.safe_load((workdir / "params.yaml").read_text()))
    assert paper["kmnist.source"] == "official"
    assert paper["sweep.seeds"] > committed["sweep.seeds"]  # the sweeps: more seeds
    same = lambda flat: {k: v for k, v in flat.items()  # noqa: E731
                         if k not in ("profile", "kmnist.source") and not k.startswith("sweep.")}
    assert same(paper) == same(committed)
    profiles.apply("default", workdir / "params.yaml", workdir / "profiles")
    text = (workdir / "params.yaml").read_text()
    assert params.flatten(yaml.safe_load(text)) == committed
    assert "# hidden units of the trained Part 2 MLP" in text  # comments survive


def test_unknown_profile_and_bad_override_leave_params_untouched(workdir):
    before = (workdir / "params.yaml").read_text()
    with pytest.raises(UserError, match=r"profile 'nope': no such profile \(available in .*profiles/: "
                                        r"ci, default, paper\)"):
        profiles.apply("nope", workdir / "params.yaml", workdir / "profiles")
    (workdir / "profiles" / "bad.yaml").write_text("kmnist:\n  lin:\n    lr: -1\n")
    with pytest.raises(UserError, match=r"kmnist.lin.lr = -1: must be a number > 0"):
        profiles.apply("bad", workdir / "params.yaml", workdir / "profiles")
    assert (workdir / "params.yaml").read_text() == before
