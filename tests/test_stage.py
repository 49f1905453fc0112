"""The stage skeleton: params in, outputs written where the layout says, nothing on failure."""

import json

import pytest

from nnstudies import layout, stage
from nnstudies.outputs import Outputs
from nnstudies.params import ParamError

PARAMS = """\
hid: 3
tracking: {enabled: false, required: false}
"""


@pytest.fixture
def root(tmp_path):
    (tmp_path / "params.yaml").write_text(PARAMS)
    return tmp_path


def test_outputs_land_where_the_layout_says(root):
    def produce(p, ctx):
        assert ctx.stage == "train_checker" and ctx.item is None
        return Outputs(metrics={"accuracy": 1.0, "ok": True, "nested": {"loss": 0.5}},
                       results={"hid": p["hid"], "note": "text"},
                       files={"log.txt": "line\n", "t.csv": stage.Table(["a", "b"], [(1, "x,y")])})

    stage.run("train_checker", "checker", ["hid", "tracking"], produce, root=root)
    metrics = json.loads((root / layout.metrics("train_checker")).read_text())
    assert metrics == {"accuracy": 1.0, "ok": True, "nested": {"loss": 0.5}}
    results = json.loads((root / layout.results("train_checker")).read_text())
    assert results["hid"] == 3 and "python" in results["environment"]
    assert (root / "plots/train_checker/log.txt").read_text() == "line\n"
    assert (root / "plots/train_checker/t.csv").read_text() == 'a,b\n1,"x,y"\n'


def test_a_stale_file_of_an_earlier_run_does_not_linger(root):
    old = root / "plots/train_checker/hid_6_0.png"
    old.parent.mkdir(parents=True)
    old.write_text("old")
    stage.run("train_checker", "checker", ["hid", "tracking"],
              lambda p, ctx: Outputs(metrics={}, files={"hid_3_0.txt": "new"}), root=root)
    assert not old.exists() and (root / "plots/train_checker/hid_3_0.txt").exists()


def test_a_failing_stage_function_leaves_the_last_results(root):
    stage.run("train_checker", "checker", ["hid", "tracking"],
              lambda p, ctx: Outputs(metrics={"accuracy": 1.0}, files={"a.txt": "a"}), root=root)

    def broken(p, ctx):
        raise RuntimeError("diverged")

    with pytest.raises(RuntimeError):
        stage.run("train_checker", "checker", ["hid", "tracking"], broken, root=root)
    assert json.loads((root / "metrics/train_checker.json").read_text()) == {"accuracy": 1.0}
    assert (root / "plots/train_checker/a.txt").read_text() == "a"


def test_bad_params_stop_before_the_stage_function(root):
    (root / "params.yaml").write_text(PARAMS.replace("hid: 3", "hid: 0"))
    called = []
    with pytest.raises(ParamError, match="hid = 0"):
        stage.run("train_checker", "checker", ["hid", "tracking"],
                  lambda p, ctx: called.append(1), root=root)
    assert not called


def test_foreach_item_fills_the_params_groups_and_names_the_files(root):
    (root / "params.yaml").write_text(PARAMS + "seq: {}\n")
    seen = {}

    def produce(p, ctx):
        seen.update(item=ctx.item, keys=sorted(p))
        return Outputs(metrics={"x": 1})

    stage.run("train_checker@a", "checker", ["hid", "tracking"], produce, root=root)
    assert seen == {"item": "a", "keys": ["hid", "tracking"]}
    assert (root / "metrics/train_checker_a.json").exists()


def test_a_model_outside_the_stage_outputs_is_refused(root):
    with pytest.raises(ValueError, match="not one of its outputs"):
        stage.run("train_checker", "checker", ["hid", "tracking"],
                  lambda p, ctx: Outputs(metrics={}, models={"models/other.pt": {}}), root=root)


def test_metrics_are_flattened_once_for_mlflow():
    assert stage.loggable({"a": {"b": 1}, "ok": True, "name": "x", "per": [1, 2], "none": None}) \
        == {"a.b": 1.0, "ok": 1.0}
