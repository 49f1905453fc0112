"""Every trained net lands in MLflow as a model (nnstudies.served): the real stages on tiny
params and the bundled sample, their records flushed into a temp sqlite store, each model
loaded back with mlflow.pytorch.load_model (a torch.export program, no pickle) and compared
with the net the stage saved, at two sequence lengths for the recurrent nets."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.entities import LoggedModelStatus

from conftest import landed_run
from nnstudies import served, stage, tracking
from nnstudies.outputs import Served
from test_kmnist import load_stage, write_subset
from test_tracking import client

PARAMS = """\
tracking: {enabled: true, required: false}
hid: 6
kmnist:
  source: unused
  train: {seed: 0, epochs: 1, batch_size: 64, test_batch_size: 100, shuffle: false,
          device: cpu, log_interval: 5, threads: 1, cpu_path: host}
  conv: {lr: 0.05, momentum: 0.5, channels1: 4, channels2: 8, kernel: 3, fc: 16}
checker:
  train: {act: sig, init: 0.15, lr: 0.01, weight_decay: 1.0e-5, max_epochs: 1500, patience: 200,
          restarts: 8, seed: 0, log_every: 100, threads: 1, cpu_path: host}
seq:
  grammar: {seed: 0, train_sequences: 61, validation_sequences: 12, test_sequences: 9,
            max_n: 4, reber_min_length: 0}
  train: {optim: adam, lr: 0.01, momentum: 0.0, weight_decay: 1.0e-5, init: 0.1, restarts: 2,
          seed: 0, log_every: 20, checkpoint_every: 60, kernel: fused, resume: false,
          threads: 1, cpu_path: host, success_window: 0.1}
  reber: {model: srn, hid: 2, epochs: 60, success: {error: 0.5, separation: 0.0}}
  ereber: {model: lstm, hid: 3, epochs: 60, success: {final: 0.0}}
"""
PICKLE_SWITCH = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    """train_kmnist@conv, train_checker, train_seq@reber (SRN) and @ereber (LSTM) run in
    process with tracking on; their records flushed in process.  Returns the root and
    {model name: (stage outputs, run id)}."""
    root = tmp_path_factory.mktemp("served")
    (root / ".dvc").mkdir()
    (root / "params.yaml").write_text(PARAMS)
    write_subset(root / "data" / "kmnist", train_images=320, test_images=100)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DVC_ROOT", str(root))
        for name in ("MLFLOW_TRACKING_URI", "NNSTUDIES_TRACKING", "NNSTUDIES_TRACKING_SYNC",
                     "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV", PICKLE_SWITCH):
            mp.delenv(name, raising=False)
        mp.setattr(tracking, "_start_sender", lambda root: None)  # sent below, in process
        runs = {}
        for name, study, stage_name, module, cpu_group in [
                ("net_conv", "kmnist", "train_kmnist@conv", "train_kmnist", "kmnist.train"),
                ("checker_mlp", "checker", "train_checker", "train_checker", "checker.train"),
                ("seq_reber", "seq", "train_seq@reber", "train_seq", "seq.train"),
                ("seq_ereber", "seq", "train_seq@ereber", "train_seq", "seq.train")]:
            if study == "seq":
                make = load_stage("make_seq")
                stage.run(stage_name.replace("train", "make"), "seq", make.PARAMS, make.produce,
                          root=root)
            produce = load_stage(module)
            out = stage.run(stage_name, study, produce.PARAMS, produce.produce, root=root,
                            cpu_group=cpu_group)
            runs[name] = out, tracking.pending(root)[-1].name
        done = tracking.flush(root)
        assert done.failed == [], done.failed
        c = client(root)
        yield root, {name: (out, landed_run(c, record).info.run_id)
                     for name, (out, record) in runs.items()}


def logged_models(c, run_id: str):
    experiment = c.get_run(run_id).info.experiment_id
    return list(c.search_logged_models([experiment], f"source_run_id = '{run_id}'"))


def load(root, uri: str):
    import mlflow.pytorch

    assert PICKLE_SWITCH not in os.environ  # loads as it would anywhere: pickle refused
    with served.store(f"sqlite:///{root / 'mlflow.db'}"):
        return mlflow.pytorch.load_model(uri)


def stage_net(root, name: str, out):
    """The net as the stage saved it (its DVC model file, or train_seq's last checkpoint and
    kept restart), and a function giving its prediction."""
    from nnstudies.checker.model import StackedMLP
    from nnstudies.kmnist import models as kmnist_models
    from nnstudies.seq import models as seq_models

    if name == "net_conv":
        saved = torch.load(root / "models/kmnist_conv.pt", weights_only=True)
        net = kmnist_models.build(saved["net"], saved["sizes"])
        net.load_state_dict(saved["state_dict"])
        return net.eval()
    if name == "checker_mlp":
        saved = torch.load(root / "models/checker.pt", weights_only=True)
        hid = saved["hid"]
        net = StackedMLP(torch.zeros(1, hid, 2), torch.zeros(1, hid), torch.zeros(1, 1, hid),
                         torch.zeros(1, 1), act=saved["act"])
        net.load_state_dict(saved["state_dict"])
        return lambda x: net(x).output[0]
    task = name.removeprefix("seq_")
    saved = torch.load(root / f"models/seq_{task}/epoch_{out.results['epochs']}.pt",
                       weights_only=True)
    net = seq_models.build(saved["model"], saved["num_in"], saved["hid"], saved["restarts"])
    net.load_state_dict(saved["state"])
    kept = net.select(out.results["kept_restart"]).eval()
    return lambda x: kept(x)[1][:, :, 0]  # the fused kernel, as the stage evaluates


def inputs(root, name: str):
    """Real inputs: test images, the checkerboard's points and more, test sequences cut at two
    lengths (with two batch sizes, neither the example's)."""
    if name == "net_conv":
        from nnstudies.kmnist import data

        return [data.load_split(root / "data/kmnist", train=False)[0][10:17]]
    if name == "checker_mlp":
        return [torch.cartesian_prod(torch.linspace(-1.5, 1.5, 7), torch.linspace(-1.5, 1.5, 7))]
    from nnstudies.seq import languages, train

    x = train.eval_batch(languages.load(root / f"data/seq/{name.removeprefix('seq_')}.npz"),
                         "test").x
    return [x[:5, :2], x[:, 2:7]]


@pytest.mark.parametrize("name", ["net_conv", "checker_mlp", "seq_reber", "seq_ereber"])
def test_each_trained_net_loads_from_mlflow_and_predicts_as_the_stage(landed, name):
    root, runs = landed
    out, run_id = runs[name]
    (model,) = logged_models(client(root), run_id)
    assert model.name == name and model.status == LoggedModelStatus.READY
    net = stage_net(root, name, out)
    lengths = set()
    for uri in (f"models:/{model.model_id}", f"runs:/{run_id}/{name}"):  # as docs/compare.md
        loaded = load(root, uri)
        for x in inputs(root, name):
            with torch.no_grad():
                want, got = net(x), loaded(x)
            assert got.shape == want.shape
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
            lengths.add(x.shape[0])
    assert len(lengths) == 2 or not name.startswith("seq_")  # two sequence lengths


@pytest.mark.parametrize("name, variable", [("net_conv", (0,)), ("checker_mlp", (0,)),
                                            ("seq_reber", (0, 1)), ("seq_ereber", (0, 1))])
def test_models_have_a_signature_with_free_dims_an_input_example_and_no_pickle(landed, name,
                                                                               variable):
    import mlflow
    from mlflow.models import Model

    root, runs = landed
    out, run_id = runs[name]
    c = client(root)
    (model,) = logged_models(c, run_id)
    with served.store(f"sqlite:///{root / 'mlflow.db'}"):
        path = mlflow.artifacts.download_artifacts(f"models:/{model.model_id}")
    mlmodel = Model.load(path)
    example = out.served[0].example
    for spec, shape in ((mlmodel.signature.inputs.inputs[0], example.shape),
                        (mlmodel.signature.outputs.inputs[0], None)):
        assert all((n == -1) == (i in variable) for i, n in enumerate(spec.shape)), spec.shape
        assert shape is None or [n for i, n in enumerate(shape) if i not in variable] == [
            n for n in spec.shape if n != -1]
    np.testing.assert_array_equal(mlmodel.load_input_example(path), example)
    files = sorted(str(p.relative_to(path)) for p in Path(path).rglob("*") if p.is_file())
    assert "data/model.pt2" in files and not any(f.endswith((".pth", ".pkl")) for f in files)
    # The run's Models tab lists it; the run's final metrics are linked to it.
    outputs = c.get_run(run_id).outputs.model_outputs
    assert [o.model_id for o in outputs] == [model.model_id]
    assert {m.key for m in c.get_logged_model(model.model_id).metrics} >= set(
        stage.loggable(json.loads((root / "metrics" / f"{stage_slug(name)}.json").read_text())))


def stage_slug(name: str) -> str:
    return {"net_conv": "train_kmnist_conv", "checker_mlp": "train_checker"}.get(
        name, f"train_seq_{name.removeprefix('seq_')}")


# ---- records the sender refuses, and resending ---------------------------------------------

@pytest.fixture
def root(tmp_path, monkeypatch):
    (tmp_path / ".dvc").mkdir()
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    for name in ("MLFLOW_TRACKING_URI", "NNSTUDIES_TRACKING", "NNSTUDIES_TRACKING_SYNC",
                 "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tracking, "_start_sender", lambda root: None)
    return tmp_path


def tiny_mlp(family: str = "checker_mlp") -> Served:
    from nnstudies.checker.model import StackedMLP

    net = StackedMLP.random([0], 3, 0.5)
    return Served("checker_mlp", family, {"hid": 3, "act": "sig"}, net.state_dict(),
                  np.array([[-1, -1], [0, 1], [1, 0]], np.float32))


def recorded(served: Served) -> str:
    with tracking.start("checker", "train_checker", {"tracking": {"enabled": True,
                                                                   "required": False}}) as run:
        run.log_metrics({"accuracy": 1.0}, step=3)
        run.log_model(served, step=3)
    return run.record_id


def nothing_landed(root) -> bool:
    c = client(root)
    experiments = [e.experiment_id for e in c.search_experiments()]
    return not c.search_runs(experiments) and not list(c.search_logged_models(experiments))


@pytest.mark.parametrize("edit, why", ids=["unknown family", "state outside", "absolute example",
                                            "weights of another size"], argvalues=[
    (lambda m: m.update(family="os.system"), "family 'os.system' is not one of checker_mlp, "
                                             "kmnist, seq_lstm, seq_srn: refused"),
    (lambda m: m.update(state="../../../etc/passwd"), "its state and example must be files "
                                                      "inside the record's folder"),
    (lambda m: m.update(example="/etc/hostname"), "its state and example must be files"),
    (lambda m: m["config"].update(hid=5), "its checker_mlp net cannot be rebuilt from the record "
                                          "(Error(s) in loading state_dict for StackedMLP:"),
])
def test_an_edited_model_entry_is_refused_in_one_line_and_nothing_is_logged(root, edit, why):
    record_id = recorded(tiny_mlp())
    path = tracking.outbox(root) / record_id / "record.json"
    rec = json.loads(path.read_text())
    edit(rec["models"][0])
    path.write_text(json.dumps(rec))
    client(root).search_experiments()  # the store exists: nothing in it after the flush
    done = tracking.flush(root)
    assert [rid for rid, _ in done.failed] == [record_id] and done.landed == []
    message = done.failed[0][1]
    assert why in message and "\n" not in message
    assert nothing_landed(root) and [p.name for p in tracking.pending(root)] == [record_id]


def test_a_resent_record_logs_its_model_once(root, monkeypatch):
    """A sender that died before ending the run leaves a RUNNING run with a model: the resend
    deletes both and sends again; a landed record sent again logs nothing."""
    from mlflow.tracking import MlflowClient

    record_id = recorded(tiny_mlp())
    real = MlflowClient.set_terminated

    def dies(self, *args, **kwargs):
        raise RuntimeError("sender killed")

    monkeypatch.setattr(MlflowClient, "set_terminated", dies)
    assert [rid for rid, _ in tracking.flush(root).failed] == [record_id]
    monkeypatch.setattr(MlflowClient, "set_terminated", real)
    c = client(root)
    (half,) = c.search_runs([e.experiment_id for e in c.search_experiments()])
    assert half.info.status == "RUNNING" and len(logged_models(c, half.info.run_id)) == 1
    copy = tracking.outbox(root) / record_id
    saved = {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    assert tracking.flush(root).failed == []
    run_id = landed_run(c, record_id).info.run_id
    experiments = [e.experiment_id for e in c.search_experiments()]
    assert [m.source_run_id for m in c.search_logged_models(experiments)] == [run_id]
    for rel, data in saved.items():  # the record again, as if its sender died before deleting
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (copy / rel).write_bytes(data)
    assert tracking.flush(root).landed == [(record_id, run_id)]
    assert len(list(c.search_logged_models(experiments))) == 1


def test_logging_a_model_leaves_the_tracking_variable_as_it_was(root, monkeypatch, tmp_path):
    """A reader flushes first (`nnstudies compare`), then reads the store MLFLOW_TRACKING_URI
    names: sending a model must not delete or change that variable."""
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    with tracking.Run("checker", "train_checker", {}) as run:
        run.log_model(tiny_mlp(), step=1)
    assert tracking.flush(root).failed == []
    assert os.environ["MLFLOW_TRACKING_URI"] == store
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    with served.store(store):
        assert os.environ["MLFLOW_TRACKING_URI"] == store
    assert "MLFLOW_TRACKING_URI" not in os.environ
