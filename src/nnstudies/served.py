"""Trained nets as MLflow models: what a stage hands over, and how the sender logs it.

A stage returns each net it trained as a :class:`nnstudies.outputs.Served` (``Outputs.served``;
declared there, so that a study module never imports this one, nor mlflow): a name, a
family of :data:`REGISTRY`, the constructor's config, one net's weights and a small input
example.  The stage's Run writes the weights (``torch.save`` of tensors only) and the example
(``.npy``) into its record (tracking.Run._write_record): no mlflow, no export in the stage.
Before it sends anything, the sender rebuilds the net from its family (:func:`rebuild`),
reading the weights with ``torch.load(weights_only=True)`` and the example with
``np.load(allow_pickle=False)``; then it logs it (:meth:`Rebuilt.log`) with
``mlflow.pytorch.log_model(serialization_format="pt2")``: a ``torch.export`` program, which
``mlflow.pytorch.load_model`` loads without unpickling anything (MLflow 3.17 refuses a pt2
archive holding a pickle payload unless MLFLOW_ALLOW_PICKLE_DESERIALIZATION is set; it never
is here).  A record is an editable file, so only the families named here can
be built: a record naming another is refused, never imported by name.  A sender that dies
half-way leaves a RUNNING run, which the next one deletes with its models before sending again.

Each family's module returns the stage's own prediction for an input x:

- ``kmnist``: images (batch, 1, 28, 28) in [-1, 1] -> the net's log-probabilities (batch, 10);
- ``checker_mlp``: points (batch, 2) -> the output unit's activation (batch, 1);
- ``seq_srn``, ``seq_lstm``: one-hot inputs (T, batch, classes) -> next-symbol logits
  (T, batch, classes), any T.  The stage's nets run torch's fused recurrent kernels, which
  ``torch.export`` unrolls for the example's length (an exported program that then refuses
  every other T), so the served module runs the same step as the nets' ``unrolled`` loop
  through ``torch._higher_order_ops.scan``, which exports with a symbolic T.  Its logits
  equal the fused kernel's to float rounding (tests/test_served_models.py bounds it).

The signature has -1 for the batch (and, recurrent nets, the time) dimension.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from torch._higher_order_ops.scan import scan

from nnstudies.outputs import Served  # noqa: F401 - what a stage hands over, named here too


class Family(NamedTuple):
    build: Callable[[dict, dict], Any]  # (config, state) -> an eval-mode nn.Module
    variable: tuple[int, ...]           # the input and output dims of any size (-1)


def _kmnist(config: dict, state: dict):
    from nnstudies.kmnist import models

    net = models.build(config["net"], config["sizes"])
    net.load_state_dict(state)
    return net.eval()


def _checker(config: dict, state: dict):
    from nnstudies.checker.model import StackedMLP

    hid = config["hid"]
    shapes = [(1, hid, 2), (1, hid), (1, 1, hid), (1, 1)]
    net = StackedMLP(*(torch.zeros(shape) for shape in shapes), act=config["act"])
    net.load_state_dict(state)
    return _CheckerOutput(net).eval()


def _seq(kind: str):
    def build(config: dict, state: dict):
        from nnstudies.seq import models

        net = models.MODELS[kind](config["num_in"], config["hid"], config["num_out"], 1)
        net.load_state_dict(state)
        return _Recurrent(net, lstm=kind == "lstm").eval()
    return build


REGISTRY: dict[str, Family] = {
    "kmnist": Family(_kmnist, (0,)),
    "checker_mlp": Family(_checker, (0,)),
    "seq_srn": Family(_seq("srn"), (0, 1)),
    "seq_lstm": Family(_seq("lstm"), (0, 1)),
}


class _CheckerOutput(nn.Module):
    """One StackedMLP restart -> its output activations (batch, 1)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x).output[0]


class _Recurrent(nn.Module):
    """One SRN or LSTM restart: (T, batch, in) -> logits (T, batch, out), the steps of its
    ``unrolled`` loop run by ``scan`` (see the module's docstring)."""

    def __init__(self, net, lstm: bool):
        super().__init__()
        self.net, self.lstm = net, lstm

    def forward(self, x):
        net, batch = self.net, x.shape[1]
        if self.lstm:
            # Two tensors: an exported scan given one tensor twice computes wrong values.
            h0, c0 = x.new_zeros(batch, 1, net.hid), x.new_zeros(batch, 1, net.hid)
            _, hidden = scan(self._lstm_step, (h0, c0), x)
        else:
            h0 = torch.tanh(net.H0).expand(batch, -1, -1).contiguous()  # a carry has real strides
            _, hidden = scan(self._srn_step, h0, x)
        return net.readout(hidden)[:, :, 0]

    def _srn_step(self, h, x_t):
        net = self.net
        h = torch.tanh(torch.einsum("bi,rih->brh", x_t, net.W)
                       + torch.einsum("brk,rkh->brh", h, net.U) + net.hid_bias)
        return h, h.clone()  # scan may not return one tensor as both carry and output

    def _lstm_step(self, carry, x_t):
        net, (h, c) = self.net, carry
        gates = (torch.einsum("bi,rig->brg", x_t, net.W)
                 + torch.einsum("brk,rkg->brg", h, net.U) + net.hid_bias)
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return (h, c), h.clone()


@contextlib.contextmanager
def store(uri: str):
    """mlflow's global tracking URI set to ``uri`` for a block, then put back as it was, the
    environment too: ``mlflow.set_tracking_uri`` also writes MLFLOW_TRACKING_URI, and putting
    back "no URI" deletes that variable, which a reader that flushed first (``nnstudies
    compare``) still needs."""
    from mlflow.tracking._tracking_service import utils

    before, variable = utils._tracking_uri, os.environ.get("MLFLOW_TRACKING_URI")
    try:
        utils.set_tracking_uri(uri)
        yield
    finally:
        utils.set_tracking_uri(before)
        if variable is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = variable


def build(family: str, config: dict, state: dict):
    """The eval-mode module of ``family``; a family outside REGISTRY is a ValueError."""
    if family not in REGISTRY:
        raise ValueError(f"family {family!r} is not one of {sorted(REGISTRY)}")
    return REGISTRY[family].build(config, state)


def signature(family: str, module, example: np.ndarray):
    """TensorSpecs of the example's input and the module's output, -1 where any size goes."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    with torch.no_grad():
        output = module(torch.from_numpy(example)).numpy()
    variable = REGISTRY[family].variable

    def spec(array):
        shape = tuple(-1 if i in variable else n for i, n in enumerate(array.shape))
        return Schema([TensorSpec(array.dtype, shape)])

    return ModelSignature(inputs=spec(example), outputs=spec(output))


class Rebuilt(NamedTuple):
    """One record entry made a net again, ready to log."""
    name: str
    family: str
    module: Any           # the eval-mode nn.Module
    example: np.ndarray
    step: int             # the step of the run's metrics linked to the model

    def log(self, client, uri: str, experiment_id: str, run_id: str) -> str:
        """Log it as an MLflow model of run ``run_id``; returns its model id.  The
        LoggedModel is created in the run's experiment first: mlflow's fluent API would
        fall back on the default experiment."""
        import mlflow.pytorch

        model = client.create_logged_model(experiment_id, self.name, source_run_id=run_id,
                                           tags={"nnstudies.family": self.family})
        with store(uri):  # the fluent calls inside log_model use the global URI
            mlflow.pytorch.log_model(
                self.module, name=self.name, model_id=model.model_id, run_id=run_id,
                step=self.step, serialization_format="pt2", input_example=self.example,
                signature=signature(self.family, self.module, self.example),
                # Given, not inferred: inferring loads the model again in a subprocess.
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "numpy"])
        return model.model_id


def rebuild(name: str, family: str, config: dict, state_path: Path, example_path: Path,
            step: int) -> Rebuilt:
    """A record's entry (tracking._models checked the family and the paths): the weights
    read as tensors only, the example as a plain array."""
    state = torch.load(state_path, weights_only=True, map_location="cpu")
    example = np.load(example_path, allow_pickle=False)
    if example.dtype != np.float32:
        raise ValueError(f"its example is {example.dtype}, not float32")
    return Rebuilt(name, family, build(family, config, state), example, step)
