"""Every number the committed report states comes from the run's own files.

Each number in reports/report.md (outside code blocks, links, colours and hashes) must be a
rendering (rounded, as a percentage, with thousands separators, signed) of
- a value in metrics/*.json, results/*.json, params.yaml or gates.yaml;
- a difference of two values at the same key path of two results or metrics files (the
  report compares the same quantity across nets or tasks), or of such a value and one of the
  seed report's numbers;
- a sum over a list in one file (a total of counts);
- the seed report's own numbers, quoted in the report modules' ``SEED`` constants, and the
  literature's (``beyond.LITERATURE``, ``closing.REFERENCES``: years, volumes, pages).
A number made up in the report (or left from an old run) matches none of these.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import yaml

from nnstudies.report import beyond, closing, kmnist, seq

ROOT = Path(__file__).resolve().parents[1]


def leaves(value, path=()):
    """(key path with list positions, number) for every number, also inside strings."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(v, (*path, str(k)))
    elif isinstance(value, (list, tuple)):
        if value and all(v in (0, 1) and not isinstance(v, float) for v in value):
            yield path, "".join(map(str, value))  # a binary code, shown as its digits
        for i, v in enumerate(value):
            yield from leaves(v, (*path, i))
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, (int, float)):
        yield path, float(value)
    elif isinstance(value, str):
        yield path, value  # kept whole: codes such as "0011"
        for m in re.finditer(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", value):
            yield path, float(m.group())


def seed_numbers() -> set[float]:
    seeds = [kmnist.SEED, kmnist.SEED_TRAIN_IMAGES, seq.SEED, beyond.LITERATURE,
             beyond.WILES_ELMAN, closing.REFERENCES]  # the literature's numbers, quoted
    numbers = {v for _, v in leaves(seeds) if isinstance(v, float)}
    numbers |= {-v for _, v in leaves(closing.REFERENCES) if isinstance(v, float)}  # page ranges
    numbers.add(beyond.WILES_ELMAN["reached_n"] / beyond.WILES_ELMAN["trained_max_n"])
    f = kmnist.SEED_FULL_FORMULA  # the seed's NetFull formula, evaluated as it wrote it
    numbers.add(float(f["input_term"] * f["hidden"] + 10 * f["hidden"] + f["hidden"] + 10))
    numbers |= {100 * kmnist.SEED[n]["correct"] / kmnist.SEED[n]["images"] for n in kmnist.SEED}
    return numbers


def sources(root: Path) -> tuple[set, set[float]]:
    """(strings seen whole, numbers) that the report may state."""
    texts, numbers, by_path = set(), set(), defaultdict(set)
    for folder in ("metrics", "results"):
        for file in sorted((root / folder).glob("*.json")):
            sums = defaultdict(float)  # per list of records: the total of one key
            for path, v in leaves(json.loads(file.read_text())):
                if isinstance(v, str):
                    texts.add(v)
                    continue
                numbers.add(v)
                by_path[path].add(v)
                sums[tuple(p for p in path if not isinstance(p, int))] += v
            numbers |= set(sums.values())
    for name in ("params.yaml", "gates.yaml"):
        for _, v in leaves(yaml.safe_load((root / name).read_text())):
            (texts if isinstance(v, str) else numbers).add(v)
    seeds = seed_numbers()
    numbers |= seeds
    for values in by_path.values():  # the same quantity (same key, same position) of two files
        if 1 < len(values) <= 4:
            numbers |= {a - b for a in values for b in values}
    accuracies = {100 * v for path, values in by_path.items() if "accuracy" in str(path[-1])
                  for v in values}
    numbers |= {a - b for a in accuracies for b in seeds if 1 < b <= 100}
    return texts, numbers


def renderings(v: float) -> set[str]:
    out = set()
    for w in (v, 100 * v):
        for d in range(7):
            out |= {f"{w:.{d}f}", f"{w:,.{d}f}", f"{w:+.{d}f}"}
        for d in range(1, 7):
            out |= {f"{w:.{d}g}", f"{w:.{d}e}"}
    return out


def unexplained(markdown: str, texts: set, numbers: set[float]) -> list[str]:
    known = set(texts)
    for v in numbers:
        known |= renderings(v)
    text = re.sub(r"```.*?```", "", markdown, flags=re.S)  # code blocks: course prints, commands
    text = re.sub(r"^!\[.*\]\([^()]*\)$", "", text, flags=re.M)  # figure links (their captions end in [`stage`])
    text = re.sub(r"#[0-9a-f]{6}\b|`[0-9a-f]{7,40}`|\b[0-9a-f]{32}\b", "", text)  # colours, hashes
    bad = []
    for m in re.finditer(r"(?<![\w.#])[-+]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?", text):
        token = m.group().rstrip(",")
        if token not in known and token.lstrip("+") not in known:
            bad.append(f"{token!r} in ...{text[max(0, m.start() - 50):m.end() + 10]}...".replace("\n", " "))
    return bad


# Small whole numbers the text uses as words of its own ("Part 1", "Q2", "the top three",
# "2 units of 6", "(1, -1)" the nine points' coordinates): integers up to 10 are always allowed.
WORDS = {float(i) for i in range(-1, 11)}


def test_every_number_in_the_committed_report_comes_from_the_run():
    texts, numbers = sources(ROOT)
    markdown = (ROOT / "reports" / "report.md").read_text()
    assert unexplained(markdown, texts, numbers | WORDS) == []


def test_a_number_from_nowhere_is_caught():
    texts, numbers = sources(ROOT)
    markdown = (ROOT / "reports" / "report.md").read_text()
    # Made-up numbers that no file states (with thousands of values in results/, a fixed
    # choice may come true after a rerun): the first candidates that render no known value.
    known = set().union(*(renderings(v) for v in numbers | WORDS))
    percent = next(f"{p / 100:.2f}" for p in range(9731, 9000, -7) if f"{p / 100:.2f}" not in known)
    epochs = next(f"{e:,}" for e in range(4329, 9999, 13) if f"{e:,}" not in known)
    made_up = markdown + f"\nThe net reached {percent}% on the test set after {epochs} epochs.\n"
    found = unexplained(made_up, texts, numbers | WORDS)
    assert [f.split()[0] for f in found] == [repr(percent), repr(epochs)]
