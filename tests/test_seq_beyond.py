"""Past the trained n (nnstudies.seq.beyond): the probe's determined positions, the measurement
on hand-built counters whose bound is known, the report's sentence, and the stages through DVC."""

import json

import numpy as np
import pytest
import torch

from conftest import run, set_params, tiny_seq
from nnstudies.report import beyond as report_beyond
from nnstudies.seq import beyond, languages, models

AB, ABC = "AB", "ABC"


def spelled(symbols, alphabet):
    return "".join(alphabet[s] for s in symbols)


def determined(lang, symbols):
    """The next symbols as letters, '.' where the language leaves them open."""
    alphabet = languages.TABLE[lang].alphabet
    return "".join("." if s < 0 else alphabet[s]
                   for s in beyond.next_symbols(lang, np.asarray(symbols)))


def test_the_probe_and_its_determined_positions_by_hand():
    symbols, block = beyond.probe("anbn", 1)
    assert spelled(symbols, AB) == "AABB" + "AB" + "AAABBB" + "A"
    # after each symbol: an A leaves A or B open; once a B is read, the count fixes the rest
    #                           A A B B A B A A A B B B
    assert determined("anbn", symbols) == "..BA.A...BBA"
    assert (block.start, block.stop) == (4, 6)  # reading the n-block's A and B
    symbols, block = beyond.probe("anbncn", 2)
    assert spelled(symbols, ABC) == "AABBCC" + "AABBCC" + "AAABBBCCC" + "A"
    assert determined("anbncn", symbols)[block] == ".." + "BC" + "CA"
    assert determined("anbncn", np.zeros(5, np.int64)) == "...."  # A's only: nothing fixed


def test_a_string_outside_the_language_is_refused():
    with pytest.raises(ValueError, match="not a string of anbncn"):
        beyond.next_symbols("anbncn", np.array([0, 1, 2, 2, 0]))  # a b c c: one C too many


def counter_lstm(saturate_at: int | None = None) -> models.LSTM:
    """One LSTM cell that counts exactly: +1 per A, -1 per B (gates saturated: i = f = o = 1,
    g = +-1), B predicted while the count is >= 1.  With ``saturate_at`` = k the input gate
    closes on an A once the count is k (it reads h = tanh(count)): exact for n <= k only."""
    net = models.LSTM(2, 1, 2, restarts=1)
    big = 100.0
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        i, f, g, o = range(4)  # gate columns of W, U, hid_bias (one unit)
        net.hid_bias[0, [i, f, o]] = big
        net.W[0, 0, g], net.W[0, 1, g] = big, -big
        if saturate_at is not None:
            k = saturate_at
            mid = (np.tanh(k - 1) + np.tanh(k)) / 2  # between h at counts k - 1 and k
            scale = 40.0 / (np.tanh(k) - np.tanh(k - 1))  # +-20 on either side: saturated
            net.hid_bias[0, i] = 0.0
            net.U[0, 0, i] = -scale
            net.W[0, 0, i] = scale * mid  # A: open below count k, shut at k
            net.W[0, 1, i] = scale * np.tanh(k) + big  # B: always open
        net.V[0, 0, 1] = 10.0  # logit B - logit A = 10 (h - tanh(1/2))
        net.out_bias[0, 1] = -10.0 * np.tanh(0.5)
    return net


def test_an_exact_counter_is_right_at_every_n_probed():
    m = beyond.measure(counter_lstm(), "anbn", 40)
    assert m.correct.all() and m.largest.tolist() == [40] and m.breaks == [None]


@pytest.mark.parametrize("k", [3, 5])
def test_a_counter_exact_up_to_k_fails_at_k_plus_1_and_says_how(k):
    m = beyond.measure(counter_lstm(saturate_at=k), "anbn", 16)
    assert m.largest.tolist() == [k]
    assert m.correct[:k].all() and not m.correct[k:].any()
    # n = k + 1: after k B's the count is spent, so it calls the block's end one B early
    assert m.breaks[0] == {"n": k + 1, "position": k, "of": k + 1, "expected": "B",
                           "predicted": "A", "when": "early"}
    assert m.accuracy[k, 0] == pytest.approx(k / (k + 1))


def results_of(nets, probe_max_n=16):
    return beyond.study(nets, probe_max_n)


def one_net(net, name="anbn"):
    return beyond.Net(name, "anbn", "lstm", 2, 1000, net, 0)


def test_the_reports_sentence_follows_the_measured_bound():
    exact = results_of([one_net(counter_lstm())]).results["nets"]["anbn"]
    bounded = results_of([one_net(counter_lstm(saturate_at=3))]).results["nets"]["anbn"]
    exact_text = report_beyond.net_sentence("anbn", exact)
    bounded_text = report_beyond.net_sentence("anbn", bounded)
    assert "every n probed (up to 16)" in exact_text
    assert "up to n = 3" in bounded_text and "one B early" in bounded_text
    assert "beyond its trained range" in bounded_text  # 3 > max_n = 2
    assert exact_text != bounded_text


def test_the_comparison_claims_a_difference_only_where_the_intervals_part():
    from nnstudies.stats import wilson

    def net(right_beyond, restarts=16):
        return {"language": "anbn", "restarts": restarts, "beyond": right_beyond,
                "beyond_interval": list(wilson(right_beyond, restarts)), "kept": {"largest_n": 9}}

    far, none, few = net(14), net(0), net(2)
    assert "the LSTM is right past its range more often" in report_beyond.compare(
        {"anbn": none, "anbn_lstm": far})[0]
    assert "the LSTM is right past its range less often" in report_beyond.compare(
        {"anbn": far, "anbn_lstm": none})[0]
    assert "do not tell the two apart" in report_beyond.compare({"anbn": none, "anbn_lstm": few})[0]


def test_study_writes_a_figure_per_net_and_counts_restarts():
    stacked = models.LSTM(2, 1, 2, restarts=2)
    with torch.no_grad():
        for dst, src in zip(stacked.parameters(), counter_lstm(saturate_at=3).parameters()):
            dst[0] = src[0]
        for dst, src in zip(stacked.parameters(), counter_lstm(saturate_at=1).parameters()):
            dst[1] = src[0]
    out = beyond.study([beyond.Net("anbn_lstm", "anbn", "lstm", 2, 1000, stacked, 0)], 8)
    r = out.results["nets"]["anbn_lstm"]
    assert r["largest_n"] == [3, 1] and r["in_range"] == 1 and r["beyond"] == 1
    assert out.metrics == {"anbn_lstm": {"largest_n": 3, "furthest_n": 3, "in_range": 1,
                                         "beyond": 1}}
    assert [name for name, _ in out.files] == ["anbn_lstm.png"]


def test_a_probe_no_longer_than_the_trained_range_is_refused():
    from nnstudies.errors import UserError

    with pytest.raises(UserError, match="probe_max_n = 8 must exceed"):
        beyond.study([beyond.Net("anbn", "anbn", "lstm", 8, 1000, counter_lstm(), 0)], 8)


def test_at_seq_grammars_max_n_a_beyond_net_trains_on_the_data_files_sequences():
    g = {"seed": 0, "train_sequences": 301, "validation_sequences": 20, "test_sequences": 20,
         "max_n": 8, "reber_min_length": 0}
    made, _ = languages.make("anbncn", g)  # what make_seq writes to data/seq/anbncn.npz
    same, _ = languages.make("anbncn", dict(g, max_n=8))  # what train_beyond generates
    wide, _ = languages.make("anbncn", dict(g, max_n=16))
    assert languages.fingerprint(same, 301) == languages.fingerprint(made, 301)
    assert np.array_equal(same.test.symbols, made.test.symbols)
    assert wide.train.states.max() == 16 > made.train.states.max()


@pytest.mark.pipeline
def test_the_beyond_stages_through_dvc(repo):
    set_params(repo, **tiny_seq(401, 400, 200, **{"seq.beyond.probe_max_n": 20}))
    out = run(["dvc", "repro", "beyond"], repo, timeout=900)
    ran = {line.split("'")[1] for line in out.stdout.splitlines() if line.startswith("Running")}
    assert {f"train_beyond@{net}" for net in beyond.NETS} | {"beyond"} <= ran
    results = json.loads((repo / "results/beyond.json").read_text())
    assert list(results["nets"]) == ["anbn", "anbncn", *beyond.NETS]
    for name, r in results["nets"].items():
        assert len(r["largest_n"]) == 2 and len(r["accuracy"][0]) == 20
        assert (repo / f"plots/beyond/{name}.png").exists()
    wide = json.loads((repo / "results/train_beyond_anbn_wide.json").read_text())
    assert wide["language"] == "anbn" and wide["max_n"] == 16 and wide["model"] == "srn"
    lstm = json.loads((repo / "results/train_beyond_anbncn_lstm.json").read_text())
    assert lstm["model"] == "lstm" and lstm["max_n"] == 8
