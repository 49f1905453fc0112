"""Part 3 of the report, past the trained n: does each counter net count further than the n
it was trained on?  Every sentence is computed from ``results/beyond.json`` (stage beyond) and
``results/train_*`` of the nets; the literature's numbers are quoted from their sources (in
:data:`LITERATURE`, with the address of the copy they were read from), never computed.
"""

from __future__ import annotations

from pathlib import Path

from nnstudies.report import inputs
from nnstudies.report.document import Figure, Figures, Heading, Lead, Para, Table

LANGUAGE = {"anbn": "a^n b^n", "anbncn": "a^n b^n c^n"}
WORDS = {1: "one", 2: "two", 3: "three"}
# What the literature reports, as its stored copies state it (searched for issue 27); where a
# copy gives no number, the text says so.
LITERATURE = [
    ("Wiles & Elman (1995), an SRN on a^n b^n",
     "\"A RN was trained to predict the deterministic elements in sequences of the form ... "
     "where n=1 to 12. After training, it generalized to n=18.\"",
     "http://crl.ucsd.edu/~elman/Papers/wiles_elman/wiles_elman.html (abstract)"),
    ("Rodriguez, Wiles & Elman (1999), a 2-unit SRN on a^n b^n",
     "the stored copy (abstract and introduction) gives no trained range and no generalisation "
     "numbers", "https://deploy.paperzz.com/doc/8412183/a-recurrent-neural-network-that-learns-to-count"),
    ("Gers & Schmidhuber (2001), LSTM on a^n b^n and a^n b^n c^n",
     "\"LSTM variants are also the first RNNs to learn a simple context-sensitive language, "
     "namely a^n b^n c^n\"; the stored abstract gives no ranges",
     "https://www.semanticscholar.org/paper/f828b401c86e0f8fddd8e77774e332dfd226cb05"),
    ("Gers, Pérez-Ortiz & Schmidhuber (2002), LSTM trained by a Kalman filter (not gradient "
     "descent, as here)",
     "\"requiring only the 10 shortest exemplars n <= 10 of the context sensitive language "
     "a^nb^nc^n to deal correctly with values of n up to 1000 and more\"",
     "http://research.google/pubs/learning-context-sensitive-languages-with-lstm-trained-with-"
     "kalman-filters"),
    ("Suzgun, Belinkov & Shieber (2019), LSTMs with 1-36 units on a^n b^n, a^n b^n c^n",
     "\"We find striking differences in model performances under different training "
     "settings\"; the stored copy's tables of ranges were not available",
     "https://ar5iv.labs.arxiv.org/html/1811.01001"),
]


# The one pair of numbers the stored copies give (Wiles & Elman 1995, quoted above): the largest
# trained n and the largest n generalised to.
WILES_ELMAN = {"trained_max_n": 12, "reached_n": 18}


def label(r: dict) -> str:
    return f"{r['model'].upper()} ({r['hid']} units) on {LANGUAGE[r['language']]}, trained n <= {r['max_n']}"


def rate(r: dict, key: str) -> str:
    """``key`` (in_range, beyond) of the net's restarts, with its 95% Wilson interval."""
    low, high = r[f"{key}_interval"]
    return f"{r[key]} of {r['restarts']} (95% interval {100 * low:.0f}-{100 * high:.0f}%)"


def broke(b: dict) -> str:
    """How the first wrong n goes wrong, in words."""
    if b["expected"] == "B" and b["when"] == "early":
        left = b["n"] - b["position"]
        return (f"after {b['position']} of its {b['n']} B's it predicts {b['predicted']}: "
                f"{WORDS.get(left, str(left))} B{'s' if left > 1 else ''} early")
    return (f"its determined prediction {b['position']} of {b['of']} is {b['predicted']} where "
            f"{b['expected']} follows ({'too early' if b['when'] == 'early' else 'too late'})")


def net_sentence(name: str, r: dict) -> str:
    k, probed, max_n = r["kept"]["largest_n"], len(r["kept"]["accuracy"]), r["max_n"]
    head = f"**{name}** ({label(r)}), kept restart {r['kept_restart']}: "
    if k == probed:
        text = f"right at every n probed (up to {probed})"
    elif k == 0:
        text = "wrong already at n = 1"
    else:
        text = f"right up to n = {k}"
    if 0 < k < probed:
        text += (f", {k - max_n} beyond its trained range" if k > max_n else
                 ", exactly its trained range and not one n beyond" if k == max_n else
                 f", {max_n - k} short of its trained range")
    elif k == probed:
        text += ", beyond its trained range"
    if r["kept"]["break"] is not None:
        text += f"; at n = {r['kept']['break']['n']} {broke(r['kept']['break'])}"
    return head + text + "."


def state_sentence(name: str, r: dict) -> str:
    """The kept restart's state past the trained n: the step one more A makes at the end of
    the A's, and how far the block's states leave the box of those seen for n <= max_n."""
    step, outside, max_n = r["kept"]["a_step"], r["kept"]["outside"], r["max_n"]
    beyond = range(max_n, len(step))  # index i: n = i + 1
    still = next((i + 1 for i in beyond if step[i] < 1e-3), None)
    text = (f"{name}: one more A moves the state at the end of the A's by {step[1]:.3f} at "
            f"n = 2, {step[max_n - 1]:.3f} at n = {max_n} and {step[max_n]:.3f} at n = "
            f"{max_n + 1}; ")
    text += (f"from n = {still} on by less than 0.001 (the A's no longer change the state)"
             if still else "it still moves by 0.001 or more at every n probed")
    far = max(outside[max_n:])
    text += (f"; the n-block's states reach {far:.3f} outside the box of the states seen "
             f"for n <= {max_n}" if far > 0 else
             f"; the n-block's states stay inside the box of those seen for n <= {max_n}")
    return text


def compare(nets: dict) -> list[str]:
    """SRN against LSTM on each language, and the SRN against its wider-range variant: how
    often each net's restarts are right past their trained range, judged by the intervals (16
    restarts tell apart only large differences)."""
    out = []
    for srn, other, what in (("anbn", "anbn_lstm", "the LSTM"), ("anbncn", "anbncn_lstm", "the LSTM"),
                             ("anbn", "anbn_wide", "the SRN trained on n <= "
                              f"{nets.get('anbn_wide', {}).get('max_n')}")):
        if srn not in nets or other not in nets:
            continue
        (a_low, a_high), (b_low, b_high) = nets[srn]["beyond_interval"], nets[other]["beyond_interval"]
        if b_low > a_high or b_high < a_low:
            verdict = (f"{what} is right past its range {'more' if b_low > a_high else 'less'} "
                       f"often (the intervals do not overlap)")
        else:
            verdict = (f"{nets[other]['restarts']} restarts each do not tell the two apart "
                       f"(the intervals overlap)")
        out.append(f"on {LANGUAGE[nets[srn]['language']]}, restarts right past their trained "
                   f"range: {what} ({other}) {rate(nets[other], 'beyond')}, the SRN ({srn}) "
                   f"{rate(nets[srn], 'beyond')}: {verdict}; kept restarts right up to "
                   f"n = {nets[other]['kept']['largest_n']} and n = {nets[srn]['kept']['largest_n']}")
    return out


def section(results_dir: Path, plots_dir: Path) -> list:
    nets = inputs.read_json(Path(results_dir) / "beyond.json")["nets"]
    first = next(iter(nets.values()))
    probed = len(first["kept"]["accuracy"])
    blocks: list = [
        Heading(3, "Past the trained n: do the nets count?"),
        Para(f"A net that counts should predict a^n b^n (c^n) for n it never saw. Each restart of "
             f"every counter net reads a probe a^2 b^2 (c^2), a^n b^n (c^n), a^3 b^3 (c^3), A for "
             f"n = 1..{probed}; of the middle block, every prediction the language determines "
             f"(the B's after the first, the C's, the A after the block) must be the net's "
             f"argmax, and a net is right up to n = k when every block n <= k is. The nets: "
             f"train_seq's SRNs, an LSTM beside each (the same sequences, units, epochs and "
             f"restarts) and the a^n b^n SRN trained on a wider range of n (`seq.beyond`)."),
    ]
    blocks += [Para(net_sentence(name, r)) for name, r in nets.items()]
    rows = [[name, f"{r['model'].upper()}, {r['hid']}", LANGUAGE[r["language"]], f"1..{r['max_n']}",
             f"{r['epochs']:,}", rate(r, "in_range"), rate(r, "beyond"),
             r["kept"]["largest_n"], r["furthest_n"],
             ", ".join(map(str, r["largest_n"]))] for name, r in nets.items()]
    blocks.append(Table(
        ["net", "model, units", "language", "trained n", "epochs",
         "restarts right at every trained n", "restarts right beyond it",
         "kept: right up to n", "any restart: up to n", "every restart: right up to n"],
        rows, caption=f"Each net's restarts on the probe (n = 1..{probed}); intervals: 95% "
                      "Wilson, over the restarts of one training run."))
    comparisons = compare(nets)
    if comparisons:
        blocks.append(Lead(Para("**Compared**: " + "; ".join(comparisons) + ".")))
    blocks.append(Para("**The state past the trained n** (kept restarts): "
                       + "; ".join(state_sentence(name, r) for name, r in nets.items()) + "."))
    trained, reached = WILES_ELMAN["trained_max_n"], WILES_ELMAN["reached_n"]
    reach = ", ".join(f"{name} {r['reach']:.2f}x ({r['furthest_n']} of {r['max_n']})"
                      for name, r in nets.items())
    blocks.append(Para(f"Measured against the one quoted range: Wiles & Elman's SRN reached "
                       f"{reached / trained:.2f} times its largest trained n ({reached} of "
                       f"{trained}); the furthest restart of each net here reaches {reach}."))
    blocks.append(Para("**The literature**, quoted from the stored copies it was read from (the "
                       "settings differ from ours: other training ranges, other training methods, "
                       "and success counted by other rules): "
                       + "; ".join(f"{who}: {said} ({where})" for who, said, where in LITERATURE)
                       + "."))
    figures = [Figure(Path(plots_dir) / "beyond" / f"{name}.png",
                      f"{name}: determined predictions right per n, each restart (kept bold), "
                      f"trained range shaded") for name in nets]
    blocks += [Figures(figures[i:i + 2]) for i in range(0, len(figures), 2)]
    return blocks
