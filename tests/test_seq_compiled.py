"""Study 3's compiled kernel (seq/compiled.py) against torch, and what it promises exactly.

Bit for bit: a resumed run equals an uninterrupted one; a restart trains alike alone or
among others; the optimiser update equals torch's for the same gradients.  Float32-close
(TOL): the whole training against the ``loop`` kernel (docs/seq.md says why).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nnstudies.seq import checkpoints, compiled, languages, models, train

# Measured for these cases after 200 updates: at most 1.4e-6 apart (every task and both
# optimisers: 2.7e-6; after 1,000 updates 1.1e-5).  Adam divides by sqrt(v), so a gradient
# near zero turns a rounding difference into a visible one.
TOL = 1e-5
NETS = [("srn", "reber", 3, 0.3), ("lstm", "ereber", 4, 0.0)]
OPTIMS = [dict(optim="adam", lr=0.01, weight_decay=1e-3),
          dict(optim="sgd", lr=0.02, momentum=0.9, weight_decay=1e-3)]


def _net(kind, g, hid, std, restarts=3, first=0):
    net = models.build(kind, g.classes, hid, restarts)
    net.init_restarts(7, std, first=first)
    return net


@pytest.mark.parametrize("opt", OPTIMS, ids=["adam", "sgd"])
@pytest.mark.parametrize("kind,lang,hid,std", NETS)
def test_training_matches_the_loop_kernel(kind, lang, hid, std, opt):
    g = languages.generate(lang, 2, 201, 5, 5)
    s = train.Settings(200, **opt)
    ref, net = _net(kind, g, hid, std), _net(kind, g, hid, std)
    ref_opt, net_opt = train.make_optimizer(ref, s), train.make_optimizer(net, s)
    ref_loss, loss = torch.zeros(3), torch.zeros(3)
    symbols = torch.from_numpy(g.train.symbols.astype(np.int64))
    train._torch_epochs(ref, ref_opt, symbols, g.train.starts, 0, 200, "loop", ref_loss)
    for first, last in ((0, 1), (1, 120), (120, 200)):  # spans join exactly
        compiled.train_span(net, net_opt, g.train.symbols, g.train.starts, first, last,
                            loss.numpy())
    for (name, a), b in zip(ref.named_parameters(), net.parameters()):
        assert float((a - b).detach().abs().max()) <= TOL, name
    assert not any(torch.equal(a, b) for a, b in zip(ref.parameters(), net.parameters()))
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=0)  # sums of 200 mean NLLs
    want, got = ref_opt.state_dict()["state"], net_opt.state_dict()["state"]
    assert want.keys() == got.keys()
    for i in want:  # torch's own state: same entries, dtypes and shapes; values close
        assert want[i].keys() == got[i].keys()
        for key in want[i]:
            assert want[i][key].dtype == got[i][key].dtype
            if key == "step":
                assert torch.equal(want[i][key], got[i][key])
            else:
                torch.testing.assert_close(got[i][key], want[i][key], rtol=0, atol=TOL)


@pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"),
                    reason="torch's scalar kernels need not fuse multiply-adds")
@pytest.mark.parametrize("opt", OPTIMS, ids=["adam", "sgd"])
def test_the_update_is_torchs_bit_for_bit(opt):
    """The same gradients into torch's optimiser and into the compiled update: equal bits
    (37 values: torch's vector kernels and their scalar tail both)."""
    torch.manual_seed(0)
    start = torch.randn(37) * 3
    grads = [torch.randn(37) * 10 ** torch.empty(37).uniform_(-6, 0) for _ in range(30)]
    a, b = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    s = train.Settings(1, **opt)
    make = train.make_optimizer
    opt_a, opt_b = make(torch.nn.ParameterList([a]), s), make(torch.nn.ParameterList([b]), s)
    for grad in grads:
        a.grad = grad.clone()
        opt_a.step()
    first, second, _, update = compiled._optimizer_side(opt_b, [b], len(grads))
    p, m, v = b.detach().numpy(), first[0].detach().numpy(), second[0].detach().numpy()
    for i, grad in enumerate(grads):
        compiled._step(p, m, v, grad.numpy(), update, i)
    assert torch.equal(a, b)
    for key, value in opt_a.state[a].items():
        if key != "step":
            assert torch.equal(value, opt_b.state[b][key]), key


class Stop(Exception):
    pass


@pytest.mark.parametrize("opt", OPTIMS, ids=["adam", "sgd"])
@pytest.mark.parametrize("kind,lang,hid,std", NETS)
def test_resume_is_bit_for_bit(tmp_path, kind, lang, hid, std, opt):
    g = languages.generate(lang, 0, 301, 8, 8)
    s = train.Settings(300, log_every=70, checkpoint_every=100, kernel="compiled", **opt)
    identity = {"task": {"model": kind, "hid": hid}}
    whole = _net(kind, g, hid, std)
    full = train.train(whole, g, s, log=lambda text: None)

    def stop_at_200(epoch, state):
        checkpoints.save(tmp_path, identity, g, stopped, epoch, state)
        if epoch == 200:
            raise Stop

    stopped = _net(kind, g, hid, std)
    with pytest.raises(Stop):
        train.train(stopped, g, s, log=lambda text: None, checkpoint=stop_at_200)
    saved, _ = checkpoints.resumable(tmp_path, identity, g, 300)
    resumed = _net(kind, g, hid, 0.5)  # overwritten by the checkpoint
    again = train.train(resumed, g, s, log=lambda text: None, resume=saved)
    for a, b in zip(whole.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    assert again.curve == full.curve and again.log == full.log and again.metrics == full.metrics


@pytest.mark.parametrize("opt", OPTIMS, ids=["adam", "sgd"])
@pytest.mark.parametrize("kind,lang,hid,std", NETS)
def test_a_restart_trains_alike_alone_or_among_four(kind, lang, hid, std, opt):
    """Restart r's weights, losses and eval metrics, bit for bit, whatever runs beside it."""
    g = languages.generate(lang, 1, 151, 8, 8)
    s = train.Settings(150, log_every=50, kernel="compiled", **opt)
    four = _net(kind, g, hid, std, restarts=4)
    together = train.train(four, g, s, log=lambda text: None)
    for r in (0, 3):
        one = _net(kind, g, hid, std, restarts=1, first=r)
        alone = train.train(one, g, s, log=lambda text: None)
        for a, b in zip(four.select(r).parameters(), one.parameters()):
            assert torch.equal(a, b)
        mine = [{**row, "restart": 0} for row in together.curve if row["restart"] == r]
        assert mine == alone.curve  # the loss and every eval metric at every evaluation


@pytest.mark.parametrize("before,after", [("fused", "compiled"), ("compiled", "loop")])
def test_a_checkpoint_resumes_under_another_kernel(tmp_path, before, after):
    g = languages.generate("anbn", 0, 201, 8, 8)
    identity = {"task": {"model": "srn", "hid": 2}}
    s = train.Settings(200, log_every=50, checkpoint_every=100, kernel=before)
    whole = _net("srn", g, 2, 0.3)
    train.train(whole, g, s, log=lambda text: None)

    def stop_at_100(epoch, state):
        checkpoints.save(tmp_path, identity, g, stopped, epoch, state)
        if epoch == 100:
            raise Stop

    stopped = _net("srn", g, 2, 0.3)
    with pytest.raises(Stop):
        train.train(stopped, g, s, log=lambda text: None, checkpoint=stop_at_100)
    saved, _ = checkpoints.resumable(tmp_path, identity, g, 200)
    resumed = _net("srn", g, 2, 0.3)
    s.kernel = after
    train.train(resumed, g, s, log=lambda text: None, resume=saved)
    for a, b in zip(whole.parameters(), resumed.parameters()):
        assert float((a - b).detach().abs().max()) <= TOL


def test_spans_end_where_training_evaluates_or_checkpoints():
    s = train.Settings(25, log_every=10, checkpoint_every=15)
    assert list(train.spans(0, s, True)) == [(0, 0), (1, 10), (11, 15), (16, 20), (21, 25)]
    assert list(train.spans(0, s, False)) == [(0, 0), (1, 10), (11, 20), (21, 25)]
    assert list(train.spans(12, s, True)) == [(12, 15), (16, 20), (21, 25)]
    assert list(train.spans(26, s, True)) == []


@pytest.mark.parametrize("kind,lang,hid,std", NETS)
def test_the_compiled_forward_matches_the_loop(kind, lang, hid, std):
    g = languages.generate(lang, 0, 5, 12, 12)
    batch = train.eval_batch(g)  # padded: all-zero rows after each sequence
    net = _net(kind, g, hid, std or 0.3)
    with torch.no_grad():
        want, got = net.run(batch.x, "loop"), net.run(batch.x, "compiled")
    for a, b in zip(want, got):
        assert a.shape == b.shape
        torch.testing.assert_close(b, a, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="one-hot"):
        net.run(batch.x * 0.5, "compiled")


def test_the_machine_code_cache_is_shared_by_every_copy_of_the_repo(tmp_path, monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    main = tmp_path / "main"
    (main / "pyproject.toml").parent.mkdir()
    (main / "pyproject.toml").write_text("")
    copy = main / ".dvc" / "tmp" / "exps" / "tmp1234"  # a DVC queue's temp copy
    for root, where in ((main, main), (copy, main)):
        monkeypatch.setattr(compiled, "PACKAGE", root / "src" / "nnstudies")
        assert compiled.cache_root(root / "src/nnstudies/seq/compiled.py") == where / ".numba_cache"
        assert compiled.cache_root(tmp_path / "elsewhere.py") is None
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    source = copy / "src/nnstudies/seq/compiled.py"
    assert compiled.cache_root(source) == tmp_path / "numba" / "nnstudies"
    monkeypatch.undo()
    locator = compiled._srn_span._cache._impl.locator
    assert isinstance(locator, compiled.SharedCacheLocator)
    assert locator.get_cache_path().startswith(str(compiled.cache_root(compiled.__file__)))
