"""What opens the report: one line per question with its number (and interval, where the
results hold one), then the contents.  Every line is computed from the committed files."""

from __future__ import annotations

from pathlib import Path

from nnstudies.report import inputs
from nnstudies.report.document import Contents, Heading, Items
from nnstudies.report.kmnist import CONTROL
from nnstudies.report.targets import Targets, verdict

LANGUAGE = {"reber": "Reber", "anbn": "a^n b^n", "anbncn": "a^n b^n c^n",
            "ereber": "embedded Reber (LSTM)"}


def _read(folder: Path, name: str) -> dict:
    return inputs.read_json(Path(folder) / f"{name}.json")


def kmnist_line(compared: dict, fetch: dict, targets: Targets, seeds: dict | None = None) -> str:
    nets, alpha = compared["nets"], compared["alpha"]
    course = [n for n in nets if n != CONTROL]
    order = sorted(course, key=lambda n: -nets[n]["accuracy"])

    def shown(n: str) -> str:
        a = nets[n]
        return f"{a['title']} {100 * a['accuracy']:.1f}% ({100 * a['interval'][0]:.1f}-{100 * a['interval'][1]:.1f}%)"

    pairs = [p for p in compared["pairs"] if CONTROL not in (p["a"], p["b"])
             and (p["a"], p["b"]) != ("conv", "lin")]
    tests = "; ".join(f"{nets[p['a']]['title']} vs {nets[p['b']]['title']} p = {p['p']:.1e}" for p in pairs)
    apart = all(p["p"] < alpha for p in pairs)
    met = sum(verdict(targets, f"metrics/train_kmnist_{n}.json", "test_accuracy").endswith("**met**")
              for n in course)
    text = (f"**Part 1, KMNIST** ({fetch['test_images']:,} held-out test images of "
            f"`{fetch['source']}`, 95% intervals): {' > '.join(shown(n) for n in order)}; "
            + ("each step told apart" if apart else "not every step told apart")
            + f" by McNemar's exact test ({tests}); {met} of {len(course)} "
              f"{'meets its' if met == 1 else 'meet their'} official-data accuracy target.")
    if seeds:
        text += (f" Over {seeds['seeds']} seeds: " + ", ".join(
            f"{v['title']} {100 * v['mean']:.1f}% +- {100 * v['sd']:.1f}" for k, v in
            seeds["nets"].items() if k != CONTROL) + " (mean +- sd).")
    control = next((p for p in compared["pairs"] if (p["a"], p["b"]) == ("conv", CONTROL)), None)
    if control:
        place = ("behind NetConv" if control["p"] < alpha and control["only_a"] > control["only_b"]
                 else "not told apart from NetConv" if control["p"] >= alpha else "ahead of NetConv")
        text += (f" The size control, NetFull at NetConv's parameter count: {shown(CONTROL)}, "
                 f"{place} (p = {control['p']:.1e}).")
    return text


def checker_lines(trained: dict, hand: dict, settings: dict) -> list[str]:
    act = {"sig": "sigmoid", "step": "step"}.get(settings["act"], settings["act"])
    return [f"**Part 2, Q1**: the trained {settings['hid']}-unit {act} net classifies "
            f"{trained['correct']} of 9 points (first at epoch {trained['epochs_to_100']:,}).",
            f"**Part 2, Q2-Q3**: the hand-designed 4-unit step net classifies "
            f"{hand['step']['correct']} of 9; rescaled for the sigmoid, {hand['sigmoid']['correct']} "
            f"of 9, from a scale of k = {hand['smallest_scale']:.3g} up."]


def seq_line(task: str, metrics: dict, targets: Targets) -> str:
    key = "final" if "final" in metrics["test"] else "error"
    bound = verdict(targets, f"metrics/train_seq_{task}.json", f"test.{key}")
    return (f"**Part 3, {LANGUAGE[task]}**: {metrics['success_count']} of {metrics['restarts']} "
            f"restarts held their bounds; the kept one's test {key} "
            f"{metrics['test'][key]:.4f}; {bound[0].lower() + bound[1:]}.")


def beyond_line(nets: dict) -> str:
    parts = []
    for name in ("anbn_lstm", "anbncn_lstm", "anbn"):
        if name in nets:
            r = nets[name]
            low, high = r["beyond_interval"]
            parts.append(f"{name} {r['beyond']} of {r['restarts']} ({100 * low:.0f}-{100 * high:.0f}%)")
    return ("**Past the trained n**: restarts right beyond their trained range: " + ", ".join(parts)
            + ".")


def section(metrics_dir: Path, results_dir: Path, targets: Targets, headings: list) -> list:
    """``headings``: the report's level-2 headings after the summary, for the contents."""
    seeds = _read(results_dir, "seeds_kmnist") if (Path(results_dir) / "seeds_kmnist.json").exists() \
        else None
    items = [kmnist_line(_read(results_dir, "compare_kmnist"), _read(results_dir, "fetch_kmnist"),
                         targets, seeds)]
    items += checker_lines(_read(metrics_dir, "train_checker"), _read(metrics_dir, "hand_checker"),
                           _read(results_dir, "train_checker")["settings"])
    items += [seq_line(t, _read(metrics_dir, f"train_seq_{t}"), targets) for t in LANGUAGE]
    items.append(beyond_line(_read(results_dir, "beyond")["nets"]))
    return [Heading(2, "Summary"), Items(items), Heading(2, "Contents"), Contents(headings)]
