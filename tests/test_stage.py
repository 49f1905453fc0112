"""The stage skeleton: params in, outputs written where the layout says, nothing on failure."""

import json
import os
import subprocess
import sys

import pytest

from nnstudies import layout, stage
from nnstudies.errors import UserError
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


def _good_run(root):
    stage.run("train_checker", "checker", ["hid", "tracking"],
              lambda p, ctx: Outputs(metrics={"accuracy": 1.0}, results={"r": 1},
                                     files={"a.txt": "a", "train.log": "log"}), root=root)


def _snapshot(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_figure_that_raises_while_writing_leaves_every_old_output(root):
    _good_run(root)
    before = _snapshot(root)

    def figure():
        raise RuntimeError("figure failed")

    with pytest.raises(RuntimeError):
        stage.run("train_checker", "checker", ["hid", "tracking"],
                  lambda p, ctx: Outputs(metrics={"accuracy": 0.5}, files={"b.txt": "b", "c.png": figure}),
                  root=root)
    assert _snapshot(root) == before  # nothing new beside the old, no temp left behind


def test_an_immutable_metrics_folder_is_one_line_and_changes_no_output(root):
    """The battery's case (`chattr +i metrics`), which also stops root."""
    import subprocess

    _good_run(root)
    before = _snapshot(root)
    if subprocess.run(["chattr", "+i", str(root / "metrics")], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not allowed on this file system")
    try:
        with pytest.raises(UserError, match=r"cannot write its outputs .*metrics"):
            stage.run("train_checker", "checker", ["hid", "tracking"],
                      lambda p, ctx: Outputs(metrics={"accuracy": 0.5}, files={"a.txt": "new"}), root=root)
    finally:
        subprocess.run(["chattr", "-i", str(root / "metrics")], check=True)
    assert _snapshot(root) == before


def test_threads_come_from_params_not_omp_num_threads(root, monkeypatch):
    import torch

    (root / "params.yaml").write_text(PARAMS + "checker: {train: {threads: 1, cpu_path: host}}\n")
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    seen = {}

    def produce(p, ctx):
        seen["threads"] = torch.get_num_threads()
        return Outputs(metrics={})

    before = torch.get_num_threads()
    try:
        stage.run("train_checker", "checker",
                  ["hid", "tracking", "checker.train.threads", "checker.train.cpu_path"], produce,
                  root=root, cpu_group="checker.train")
    finally:
        torch.set_num_threads(before)
    assert seen["threads"] == 1
    env = json.loads((root / layout.results("train_checker")).read_text())["environment"]
    assert env["cpu_path"]["threads"] == 1 and env["cpu_path"]["torch_capability"]
    assert "host" not in json.dumps(env)  # the host is an MLflow tag, never in hashed bytes


NUMBA_FIRST = """\
import os, numba
from numba import njit
from nnstudies import cpu
cpu.set_threads(1)  # numba started its pool at import: 2 threads (NUMBA_NUM_THREADS=2 below)
# A first compilation (an empty cache) re-reads every NUMBA_ variable, as a stage's first
# training step does: it used to stop with 'Cannot set NUMBA_NUM_THREADS ...'.
print(njit(lambda a: a + 1)(1), numba.get_num_threads(), os.environ["OMP_NUM_THREADS"])
"""


def test_threads_set_after_numba_loaded_let_it_compile(tmp_path):
    env = {**os.environ, "NUMBA_NUM_THREADS": "2", "NUMBA_CACHE_DIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", NUMBA_FIRST], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["2", "1", "1"]  # compiled; 1 thread runs; torch/MKL told 1


STRICT_RUN = """\
import json, sys, torch
from nnstudies import cli, stage
from nnstudies.outputs import Outputs
if sys.argv[1] == "computed-before":
    torch.ones(3).add_(1)  # a kernel runs first: torch fixes its capability now
cli.run(lambda: stage.run(
    "train_checker", "checker", ["hid", "tracking", "checker.train.threads", "checker.train.cpu_path"],
    lambda p, ctx: Outputs(metrics={"capability": torch.backends.cpu.get_cpu_capability()}),
    root=sys.argv[2], cpu_group="checker.train") and None)
"""


@pytest.mark.parametrize("first", ["fresh", "computed-before"])
def test_the_strict_cpu_path_wins_over_the_environment_or_says_it_cannot(root, first):
    """Run in a fresh process: each library fixes its CPU path once per process."""
    import os
    import subprocess
    import sys

    from nnstudies import cpu

    (root / "params.yaml").write_text(PARAMS + "checker: {train: {threads: 1, cpu_path: strict}}\n")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}
    done = subprocess.run([sys.executable, "-c", STRICT_RUN, first, str(root)], env=env,
                          capture_output=True, text=True, timeout=120)
    if first == "computed-before":  # DEFAULT is fixed: strict cannot hold, and says so
        assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
        assert "checker.train.cpu_path: strict needs torch's AVX2 kernels, but this process " \
               "runs DEFAULT" in done.stderr
        assert not (root / layout.metrics("train_checker")).exists()
        return
    assert done.returncode == 0, done.stderr
    assert json.loads((root / layout.metrics("train_checker")).read_text()) == {"capability": "AVX2"}
    path = json.loads((root / layout.results("train_checker")).read_text())["environment"]["cpu_path"]
    assert path["torch_capability"] == "AVX2" and path["variables"].items() >= cpu.STRICT.items()



@pytest.mark.parametrize("script", ["train_kmnist", "train_checker", "train_seq", "plot_seq"])
def test_a_stage_that_pins_its_cpu_path_computes_nothing_before(script):
    """Importing the script (all that runs before main() pins the path) leaves torch's kernel
    choice open: a variable set afterwards still decides it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = ("import importlib.util, os, sys, torch\n"
            f"spec = importlib.util.spec_from_file_location('s', {str(Path('stages') / (script + '.py'))!r})\n"
            "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
            "os.environ['ATEN_CPU_CAPABILITY'] = 'default'\n"
            "print(torch.backends.cpu.get_cpu_capability())")
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                          timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "DEFAULT", f"stages/{script}.py computes at import"

def test_two_saves_of_one_state_give_the_same_bytes(tmp_path):
    import torch

    from nnstudies import atomic

    state = {"w": torch.arange(6.0).reshape(2, 3), "step": 3}
    atomic.save_torch(state, tmp_path / "a.pt")
    atomic.save_torch(state, tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    assert torch.equal(torch.load(tmp_path / "a.pt", weights_only=True)["w"], state["w"])


def test_a_ctrl_c_after_the_last_output_says_so_and_exits_130(tmp_path):
    import subprocess
    import sys

    code = ("import atexit, os, signal\nfrom nnstudies import cli\n"
            "atexit.register(lambda: os.kill(os.getpid(), signal.SIGINT))\ncli.run(lambda: 0)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.startswith("interrupted: after the stage had finished")
    assert "Traceback" not in proc.stderr
