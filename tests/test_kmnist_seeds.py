"""Part 1 over seeds: the summary and the report's sentence follow the per-seed data; a point's
cache key holds what decides it and nothing of where it runs."""

from __future__ import annotations

import statistics

import pytest

from nnstudies.kmnist import seeds
from nnstudies.report import kmnist as report
from nnstudies.sweep import cache

ACC = {"lin": [0.68, 0.69, 0.70], "full": [0.76, 0.75, 0.77], "wide": [0.75, 0.76, 0.74],
       "conv": [0.86, 0.87, 0.74]}


def _results(acc=ACC) -> list[dict]:
    return [{"net": net, "seed": s, "test_accuracy": a} for net, values in acc.items()
            for s, a in enumerate(values)]


def test_the_summary_is_mean_sd_range_and_who_is_ahead_per_seed():
    summary = seeds.summarize(_results())
    conv = summary["nets"]["conv"]
    assert conv["mean"] == pytest.approx(statistics.fmean(ACC["conv"]))
    assert conv["sd"] == pytest.approx(statistics.stdev(ACC["conv"]))
    assert (conv["min"], conv["max"], conv["seeds"]) == (0.74, 0.87, 3)
    assert conv["per_seed"] == {"0": 0.86, "1": 0.87, "2": 0.74}
    # seed 2: NetConv 0.74 is behind NetFull (0.77) and level with NetFull-wide: not ahead
    assert summary["ahead"]["conv_vs_full"] == {"seeds": 3, "ahead": 2}
    assert summary["ahead"]["conv_vs_wide"] == {"seeds": 3, "ahead": 2}
    assert summary["ahead"]["full_vs_lin"] == {"seeds": 3, "ahead": 3}

    text = report.seeds_sentence({"seeds": 3, "varies": "initialisation and batch order",
                                  **summary})
    assert "Over 3 seeds (`seeds_kmnist`; a seed sets the initialisation and batch order)" in text
    assert "NetConv 82.3% +- 7.2 points (sd; 74.0%-87.0%)" in text
    assert "NetConv is ahead of NetFull in 2 of 3" in text
    changed = {**ACC, "conv": [0.86, 0.87, 0.88]}  # the data change, so does the sentence
    text = report.seeds_sentence({"seeds": 3, "varies": "x", **seeds.summarize(_results(changed))})
    assert "NetConv is ahead of NetFull in 3 of 3" in text


def test_a_points_key_holds_the_data_and_settings_not_the_path():
    p = {"kmnist": {"seeds": 2, "train": {"epochs": 10, "batch_size": 64, "test_batch_size": 1000,
                                          "cpu_path": "strict", "shuffle": False},
                    **{net: {"lr": 0.01, "momentum": 0.5} for net in seeds.NETS}}}
    here = seeds.Study("/data/here", {"train": "abc"}).points(p)
    there = seeds.Study("/elsewhere", {"train": "abc"}).points(p)
    other = seeds.Study("/data/here", {"train": "abd"}).points(p)
    assert len(here) == 2 * len(seeds.NETS) and here[0]["net"] == "conv"  # the longest first
    code = "c0de"
    assert [cache.key(pt, code) for pt in here] == [cache.key(pt, code) for pt in there]
    assert all(cache.key(a, code) != cache.key(b, code) for a, b in zip(here, other))
