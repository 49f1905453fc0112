"""Study 1 of the report: the three KMNIST classifiers, from their results and metrics files.

Every sentence is computed from ``results/`` and ``metrics/`` (and shows figures under
``plots/``); the seed report's own answers, quoted in :data:`SEED`, are what the sentences
check against.
"""

from __future__ import annotations

from pathlib import Path

from nnstudies.report import inputs
from nnstudies.report.document import Code, Figure, Figures, Heading, Lead, Para, Table
from nnstudies.report.targets import Targets, verdict

NETS = ("lin", "full", "conv")  # the course's nets: Questions 1-3
CONTROL = "wide"  # NetFull widened to about NetConv's size: the control of Question 4
KINDS = {"lin": "linear", "full": "one tanh hidden layer", "conv": "two conv layers"}

# The seed report's answers (reference/seed-report.txt, Part 1), on the official data (60,000
# training, 10,000 test images).  ``confusions``: the pairs its question 4 names, read as
# (true, predicted) class indices mapped to names ("the digit 4 being mistaken for the digit 9"
# = na taken for wo); ``largest``: the largest off-diagonal cell of the matrix it printed.
SEED = {
    "lin": {"correct": 6965, "images": 10000, "parameters": 7840,
            "confusions": [("na", "wo"), ("ya", "su"), ("re", "tsu")], "largest": ("ma", "su", 144)},
    "full": {"correct": 8466, "images": 10000, "parameters": 159010,
             "confusions": [("su", "o"), ("ha", "tsu")], "largest": ("ha", "su", 81)},
    "conv": {"correct": 9390, "images": 10000, "parameters": 421642,
             "confusions": [("ha", "tsu"), ("wo", "na")], "largest": ("ki", "ma", 42)},
}
SEED_TRAIN_IMAGES = 60000
# The seed's NetFull formula, T = (794*H) + (10*H) + H + 10 with H = 200: it wrote 794 for 784.
SEED_FULL_FORMULA = {"input_term": 794, "hidden": 200}


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def points(x: float) -> str:
    return f"{100 * x:+.1f} points"


def read(folder: Path, stem: str) -> dict:
    return inputs.read_json(Path(folder) / f"{stem}.json")


# ---------------------------------------------------------------------------
# Sentences, each from data.


def data_sentence(fetch: dict, runs: dict) -> str:
    """Which data the nets were trained on, checked by md5 against what fetch_kmnist wrote."""
    fetched = {f["name"]: f["md5"] for f in fetch["files"]}
    same = [net for net, r in runs.items() if r["data"]["md5"] == fetched]
    text = (f"Data: KMNIST from `{fetch['source']}`, {fetch['train_images']:,} training and "
            f"{fetch['test_images']:,} test images (md5-verified).")
    if len(same) == len(runs):
        text += " All three nets were trained and tested on exactly these files (same md5s)."
    else:
        other = ", ".join(runs[n]["title"] for n in runs if n not in same)
        text += f" **{other} read files with other md5s than the fetched ones** (stale results)."
    if fetch["test_images"] != SEED["lin"]["images"] or fetch["train_images"] != SEED_TRAIN_IMAGES:
        text += (f" The seed report used the official {SEED_TRAIN_IMAGES:,} + "
                 f"{SEED['lin']['images']:,} images, so its accuracies are not directly comparable "
                 "with this run's.")
    return text


def interval(a: dict) -> str:
    """'83.9-88.2%': a 95% Wilson interval of an accuracy in compare_kmnist's results."""
    low, high = a["interval"]
    return f"{100 * low:.1f}-{100 * high:.1f}%"


def accuracy_sentence(r: dict, m: dict, met: str, compared: dict) -> str:
    last, seed = r["last_epoch"], SEED[r["net"]]
    text = (f"After {r['settings']['epochs']} epochs on {r['data']['train_images']:,} training "
            f"images: **test accuracy {pct(m['test_accuracy'])}** ({last['correct']}/"
            f"{last['images']}; 95% interval {interval(compared['nets'][r['net']])}), average "
            f"test loss {m['test_loss']:.4f}. {met} (a bound for the official data).")
    seed_accuracy = seed["correct"] / seed["images"]
    diff = m["test_accuracy"] - seed_accuracy
    comparable = r["data"]["test_images"] == seed["images"]
    if comparable and abs(diff) < 0.01:
        text += f" The seed report got {pct(seed_accuracy)}: the same within a point."
    else:
        text += (f" The seed report got {pct(seed_accuracy)} ({seed['correct']}/{seed['images']}); "
                 f"this run is {points(diff)}"
                 + ("." if comparable else f", on {r['data']['test_images']:,} test images instead "
                    f"of {seed['images']:,}."))
    history = r["history"]
    if len(history) >= 2:
        step = history[-1]["test_accuracy"] - history[-2]["test_accuracy"]
        text += (f" The last epoch changed the test accuracy by {points(step)}"
                 + (": still improving." if step > 0 else ": no longer improving."))
    return text


def parameter_sentence(r: dict) -> str:
    s, seed = r["settings"], SEED[r["net"]]
    agree = "agree" if s["parameters"] == s["formula_count"] else "**disagree**"
    text = (f"Independent parameters: **{s['parameters']:,}** counted from the model; by hand "
            f"`{s['formula']}` = {s['formula_count']:,}: they {agree}.")
    if s["parameters"] == seed["parameters"]:
        text += f" The seed report's count, {seed['parameters']:,}, is right."
    else:
        text += (f" The seed report's count, {seed['parameters']:,}, is **wrong**"
                 + (" (it holds for the seed's own sizes, not this run's)."
                    if _seed_sizes(r) is False else f" (off by {s['parameters'] - seed['parameters']:+,})."))
    if r["net"] == "full":
        h = SEED_FULL_FORMULA["hidden"]
        as_written = SEED_FULL_FORMULA["input_term"] * h + 10 * h + h + 10
        text += (f" Its formula `({SEED_FULL_FORMULA['input_term']}*H) + (10*H) + H + 10` gives "
                 f"{as_written:,} at H = {h}, not the {seed['parameters']:,} it states: "
                 f"{SEED_FULL_FORMULA['input_term']} should be 784.")
    return text


def _seed_sizes(r: dict) -> bool | None:
    """Whether the run used the seed's layer sizes (None for NetLin, which has none)."""
    sizes = r["settings"]["sizes"]
    course = {"full": {"hidden": 200}, "conv": {"channels1": 32, "channels2": 64, "kernel": 3, "fc": 128}}
    return None if r["net"] == "lin" else sizes == course[r["net"]]


def course_log(r: dict) -> str:
    """The last epoch's console output, in the course's format, from the recorded lines."""
    last = r["last_epoch"]
    lines = [f"Train Epoch: {x['epoch']} [{x['images']}/{x['of']} ({x['percent']}%)]\tLoss: "
             f"{x['loss']:.6f}" for x in last["lines"]]
    lines.append(f"Test set: Average loss: {last['test_loss']:.4f}, Accuracy: {last['correct']}/"
                 f"{last['images']} ({100 * last['correct'] / last['images']:.0f}%)")
    return "\n".join(lines)


def settings_table(r: dict) -> Table:
    s = r["settings"]
    rows = [["architecture", s["architecture"]]]
    rows += [[f"layer `{layer['layer']}`", f"{layer['module']}: {layer['parameters']:,} parameters"]
             for layer in s["layers"]]
    rows += [["parameters", f"{s['parameters']:,}"],
             ["optimiser", f"{s['optimiser']}, lr {s['lr']}, momentum {s['momentum']}"],
             ["loss", s["loss"]],
             ["initialisation", f"{s['init']}; seed {s['seed']}"],
             ["epochs, batch size", f"{s['epochs']}, {s['batch_size']} "
                                    f"({'shuffled' if s['shuffle'] else 'fixed file order'})"],
             ["data", f"{r['data']['train_images']:,} training, {r['data']['test_images']:,} test images"],
             ["device", s["device"]]]
    return Table(["setting", "value"], rows, caption=f"{r['title']}: the settings of this run.")


def ordering_sentence(runs: dict, metrics: dict) -> str:
    """The accuracy ordering, against the seed's and against the parameter counts."""
    by_accuracy = sorted(NETS, key=lambda n: -metrics[n]["test_accuracy"])
    by_seed = sorted(NETS, key=lambda n: -SEED[n]["correct"] / SEED[n]["images"])
    by_size = sorted(NETS, key=lambda n: -runs[n]["settings"]["parameters"])
    order = " > ".join(f"{runs[n]['title']} ({pct(metrics[n]['test_accuracy'])})" for n in by_accuracy)
    text = f"Test accuracy orders the nets {order}"
    text += (", as in the seed report." if by_accuracy == by_seed else
             f"; the seed report had {' > '.join(runs[n]['title'] for n in by_seed)}: "
             "**this run disagrees**.")
    text += (" The parameter count rises in the same order; the nets differ in architecture as "
             "well as in size, so the order alone does not show that the parameter count is what "
             "raises the accuracy (the size control below holds the count)."
             if by_accuracy == by_size else " Accuracy does **not** follow the parameter count here.")
    steps = []
    for small, big in zip(by_size[::-1], by_size[::-1][1:]):
        factor = runs[big]["settings"]["parameters"] / runs[small]["settings"]["parameters"]
        gain = metrics[big]["test_accuracy"] - metrics[small]["test_accuracy"]
        steps.append(f"{runs[small]['title']} -> {runs[big]['title']}: {factor:.1f}x the "
                     f"parameters, {points(gain)}")
    return text + " Per step up in size: " + "; ".join(steps) + "."


def pairs_test_sentence(compared: dict) -> str:
    """McNemar's exact test between each step up, on the paired test predictions."""
    nets = compared["nets"]
    images = next(iter(nets.values()))["images"]
    parts, ahead = [], []
    for pair in (p for p in compared["pairs"] if CONTROL not in (p["a"], p["b"])):
        a, b = nets[pair["a"]]["title"], nets[pair["b"]]["title"]
        images_word = "image" if pair["only_a"] == 1 else "images"
        parts.append(f"{a} is right where {b} is wrong on {pair['only_a']} {images_word}, the "
                     f"reverse on {pair['only_b']} (p = {pair['p']:.1e})")
        if pair["p"] < compared["alpha"]:
            ahead.append(f"{a} {'ahead of' if pair['only_a'] > pair['only_b'] else 'behind'} {b}")
    verdict = (f"at p < {compared['alpha']}: {', '.join(ahead)}" if ahead else
               f"no pair differs at p < {compared['alpha']}: these {images:,} images do not tell the nets apart")
    return (f"On the same {images:,} test images, McNemar's exact test on the paired predictions "
            f"(only the images one net gets right and the other wrong count): "
            f"{'; '.join(parts)}; {verdict}.")


def control_sentence(compared: dict, wide: dict | None, conv: dict) -> str:
    """The size control: NetFull widened to about NetConv's parameter count, against NetConv
    (does size alone give NetConv's accuracy?) and against NetFull (does widening help?)."""
    nets, pairs = compared["nets"], {(p["a"], p["b"]): p for p in compared["pairs"]}
    if wide is None or ("conv", CONTROL) not in pairs or (CONTROL, "full") not in pairs:
        return ("No size control was run: nothing here separates the parameter count from the "
                "architecture.")
    w, alpha = nets[CONTROL], compared["alpha"]
    against_conv, against_full = pairs[("conv", CONTROL)], pairs[(CONTROL, "full")]

    def told(p: dict, a: str, b: str) -> str:
        return (f"{a} right where {b} is wrong on {p['only_a']} images, the reverse on "
                f"{p['only_b']} (p = {p['p']:.1e})")

    text = (f"**The size control.** NetFull widened to {wide['settings']['sizes']['hidden']} hidden "
            f"units (`kmnist.wide`) has {wide['settings']['parameters']:,} parameters, NetConv "
            f"{conv['settings']['parameters']:,}; it reaches {pct(w['accuracy'])} "
            f"({interval(w)}). Against NetConv: {told(against_conv, 'NetConv', w['title'])}; "
            f"against NetFull: {told(against_full, w['title'], 'NetFull')}. So ")
    if against_conv["p"] < alpha and against_conv["only_a"] > against_conv["only_b"]:
        text += ("at about NetConv's parameter count the fully connected net stays behind: the "
                 "parameter count alone does not give NetConv its lead")
    elif against_conv["p"] < alpha:
        text += "at about NetConv's parameter count the fully connected net is ahead of NetConv"
    else:
        text += ("at about NetConv's parameter count the two nets are not told apart: this "
                 "control cannot separate size from architecture")
    widened = against_full["p"] < alpha
    text += ("; widening NetFull " + ("raises" if against_full["only_a"] > against_full["only_b"]
                                       else "lowers") + " its accuracy beyond chance."
             if widened else "; widening NetFull does not change its accuracy detectably.")
    return text


def class_table(runs: dict, compared: dict) -> Table:
    classes = runs["lin"]["classes"]
    acc = {n: {c["class"]: c for c in compared["nets"][n]["per_class"]} for n in NETS}
    supported = {(step["from"], step["to"], row["class"]): row["supported"]
                 for step in compared["per_class"]["steps"] for row in step["classes"]}

    def change(low: str, high: str, c: str) -> str:
        mark = " **(supported)**" if supported[(low, high, c)] else ""
        return points(acc[high][c]["accuracy"] - acc[low][c]["accuracy"]) + mark

    rows = [[c, acc["lin"][c]["images"],
             *(f"{pct(acc[n][c]['accuracy'])} ({interval(acc[n][c])})" for n in NETS),
             change("lin", "full", c), change("full", "conv", c)] for c in classes]
    family = compared["per_class"]
    return Table(["class", "test images", *(runs[n]["title"] for n in NETS),
                  "hidden units (full - lin)", "convolution (conv - full)"], rows,
                 caption=f"Test accuracy per class (95% Wilson intervals), and what the hidden "
                         f"layer and the convolutions change; **supported**: McNemar's exact "
                         f"test within the class, Holm-corrected over all {family['tests']} "
                         f"changes, p < {compared['alpha']}.")


def gain_sentence(compared: dict) -> str:
    """Which per-class changes the paired tests support, and that the rest are not told apart."""
    nets, family = compared["nets"], compared["per_class"]
    found, unsupported = [], []
    for step in family["steps"]:
        what = f"{nets[step['from']]['title']} -> {nets[step['to']]['title']}"
        rows = sorted(step["classes"], key=lambda r: r["p_holm"])
        good = [f"{r['class']} ({points(r['to_accuracy'] - r['from_accuracy'])}, adjusted "
                f"p = {r['p_holm']:.1e})" for r in rows if r["supported"]]
        found.append(f"{what}: {', '.join(good)}" if good else f"{what}: none")
        unsupported += [r for r in rows if not r["supported"]]
    text = (f"Per class (the test images of one class), McNemar's exact test with Holm's "
            f"correction over all {family['tests']} changes (family-wise error {compared['alpha']}) "
            f"supports these changes: {'; '.join(found)}.")
    if unsupported:
        sizes = sorted(r["to_accuracy"] - r["from_accuracy"] for r in unsupported)
        text += (f" The other {len(unsupported)} changes ({points(sizes[0])} to "
                 f"{points(sizes[-1])}) are not told apart from chance on "
                 f"{min(r['images'] for r in unsupported)}-"
                 f"{max(r['images'] for r in unsupported)} test images per class.")
    return text


def hardest_sentence(compared: dict) -> str:
    parts = []
    for n in NETS:
        net = compared["nets"][n]
        worst = min(net["per_class"], key=lambda c: c["accuracy"])
        parts.append(f"{net['title']}: {worst['class']} ({pct(worst['accuracy'])}, 95% interval "
                     f"{interval(worst)})")
    return "Lowest class accuracy per net: " + "; ".join(parts) + "."


def pairs_sentence(r: dict) -> str:
    """The most confused pairs, ties named, and how alike the two characters look on average."""
    pairs, like = r["confused_pairs"], r["likeness"]
    if not pairs:
        return f"{r['title']} confused no pair of classes."
    listed = "; ".join(f"{p['true']} taken for {p['predicted']} {p['count']}x "
                       f"({pct(p['share'])} of the {p['true']} test images)" for p in pairs)
    text = f"{r['title']}: {listed}."
    cut = pairs[-1]["count"]
    tied = [p for p in pairs if p["count"] == cut]
    if len(tied) > 1:
        text += f" {len(tied)} pairs tie at {cut}: all are kept."
    alike = [p for p in pairs if p["likeness"] > like["median"]]
    correlations = ", ".join(f"{p['likeness']:.2f}" for p in pairs)
    text += (f" Mean test images correlate at {correlations} "
             f"for these pairs (median over all {like['class_pairs']} class pairs "
             f"{like['median']:.2f}): {len(alike)} of {len(pairs)} look more alike than the "
             "median pair (a likeness of mean images; nothing here changes the strokes, so it "
             "does not show that shared strokes cause the confusion).")
    return text


def seed_pairs_sentence(r: dict) -> str:
    """The seed's named confusions, looked up in this run's matrix."""
    seed = SEED[r["net"]]
    classes, matrix = r["classes"], r["confusion"]
    off = sorted((matrix[i][j] for i in range(len(classes)) for j in range(len(classes)) if i != j),
                 reverse=True)
    top = {(p["true"], p["predicted"]) for p in r["confused_pairs"]}
    found = []
    for true, predicted in seed["confusions"]:
        count = matrix[classes.index(true)][classes.index(predicted)]
        found.append(f"{true} taken for {predicted} {count}x (rank {off.index(count) + 1} of "
                     f"{len(off)} cells)")
    hits = sum(pair in top for pair in seed["confusions"])
    among = "among this run's most confused pairs"
    found_text = (f"all of them are {among}" if hits == len(seed["confusions"])
                  else f"none of them is {among}" if hits == 0
                  else f"{hits} of them {'is' if hits == 1 else 'are'} {among}")
    t, p, n = seed["largest"]
    named = (t, p) in seed["confusions"]
    return (f"The seed report named for {r['title']}: "
            f"{', '.join(f'{a} taken for {b}' for a, b in seed['confusions'])}. Here: "
            f"{'; '.join(found)}: {found_text}. (The seed's own printed matrix had {t} taken "
            f"for {p}, {n}x, as its largest confusion, "
            f"{'one it named' if named else 'not one it named'}.)")


# ---------------------------------------------------------------------------


def seeds_sentence(seeds: dict) -> str:
    """Part 1 over seeds: each net's mean, sd and range, and how often the orderings held."""
    nets, ahead = seeds["nets"], seeds["ahead"]
    n = seeds["seeds"]
    text = (f"Over {n} seeds (`seeds_kmnist`; a seed sets the {seeds['varies']}), the test "
            "accuracy is " + "; ".join(
                f"{v['title']} {pct(v['mean'])} +- {100 * v['sd']:.1f} points (sd; "
                f"{pct(v['min'])}-{pct(v['max'])})" for k, v in nets.items()) + ".")
    order = []
    for key, (a, b) in (("full_vs_lin", ("full", "lin")), ("conv_vs_full", ("conv", "full")),
                        ("conv_vs_wide", ("conv", "wide"))):
        if key in ahead:
            c = ahead[key]
            order.append(f"{nets[a]['title']} is ahead of {nets[b]['title']} in {c['ahead']} of "
                         f"{c['seeds']}")
    if order:
        text += " " + "; ".join(order) + " seeds."
    return text


def section(metrics_dir: Path, results_dir: Path, plots_dir: Path, targets: Targets) -> list:
    """``targets``: metric file -> metric -> (bound text, met) from the course gates."""
    runs = {n: read(results_dir, f"train_kmnist_{n}") for n in NETS}
    metrics = {n: read(metrics_dir, f"train_kmnist_{n}") for n in NETS}
    fetch = read(results_dir, "fetch_kmnist")
    compared = read(results_dir, "compare_kmnist")
    wide_path = Path(results_dir) / f"train_kmnist_{CONTROL}.json"
    wide = read(results_dir, f"train_kmnist_{CONTROL}") if wide_path.exists() else None
    seeds_path = Path(results_dir) / "seeds_kmnist.json"
    seeds = read(results_dir, "seeds_kmnist") if seeds_path.exists() else None
    blocks: list = [Heading(2, "Part 1: Japanese character recognition (KMNIST)"),
                    Lead(Para(data_sentence(fetch, runs))),
                    Figure(plots_dir / "fetch_kmnist" / fetch["figures"]["classes"],
                           "The ten Hiragana classes: the first training images of each")]
    summary = []
    for q, n in enumerate(NETS, 1):
        r, m = runs[n], metrics[n]
        plots = plots_dir / f"train_kmnist_{n}"
        met = verdict(targets, f"metrics/train_kmnist_{n}.json", "test_accuracy")
        classes = r["classes"]
        blocks += [
            Heading(3, f"Question {q}: {r['title']} ({KINDS[n]})"),
            Lead(Para(accuracy_sentence(r, m, met, compared))),
            Lead(Para(parameter_sentence(r))),
            Lead(Figure(plots / r["figures"]["confusion"], f"{r['title']}: confusion matrix")),
            settings_table(r),
            Para("The last epoch's console output, in the course format:"),
            Code(course_log(r)),
            Table(["true \\ predicted", *classes], [[c, *row] for c, row in zip(classes, r["confusion"])],
                  caption="Confusion matrix of the last epoch: rows are the true class, columns "
                          "the predicted class."),
        ]
        seed = SEED[n]
        summary.append([r["title"], f"{r['settings']['parameters']:,}",
                        f"{pct(m['test_accuracy'])} ({interval(compared['nets'][n])})",
                        f"{m['test_loss']:.4f}", met, pct(seed["correct"] / seed["images"])])
    blocks += [
        Heading(3, "Question 4: the three nets compared"),
        Lead(Table(["net", "parameters", "test accuracy (95% interval)", "test loss",
                    "bound (official data)", "seed report (official data)"], summary)),
        Lead(Para(ordering_sentence(runs, metrics) + " " + pairs_test_sentence(compared))),
        Lead(Para(control_sentence(compared, wide, runs["conv"]))),
        *([Lead(Para(seeds_sentence(seeds))),
           Figure(plots_dir / "seeds_kmnist" / "seeds.png",
                  "Each net's test accuracy from every seed (dots), mean +- 1 sd (black)")]
          if seeds else []),
        Lead(Figure(plots_dir / "compare_kmnist" / compared["figures"]["accuracy"],
               "The three nets on the same test images: accuracy with its 95% interval, and the "
               "change per class of each step up (filled: supported by the Holm-corrected "
               "McNemar test)")),
        class_table(runs, compared),
        Para(gain_sentence(compared) + " " + hardest_sentence(compared)),
        Heading(3, "Most confused characters"),
        Table(["net", "true class", "taken for", "count", "share of the true class",
               "mean-image correlation"],
              [[runs[n]["title"], p["true"], p["predicted"], p["count"], pct(p["share"]),
                f"{p['likeness']:.2f}"] for n in NETS for p in runs[n]["confused_pairs"]],
              caption="The most confused (true, predicted) pairs of each net, the top three with "
                      "ties kept."),
        *[(Lead if n == "conv" else lambda b: b)(Para(pairs_sentence(runs[n]))) for n in NETS],
        *[Para(seed_pairs_sentence(runs[n])) for n in NETS],
        Figures([Figure(plots_dir / f"train_kmnist_{n}" / runs[n]["figures"]["confused_pairs"],
                        f"{runs[n]['title']}: each confused pair: test images of the true class "
                        "read as the other, test images of the class it was taken for, both "
                        "mean images and their difference (red: ink of the true class only, "
                        "blue: of the other)") for n in NETS]),
    ]
    return blocks
