"""Stage validate_params: check all of params.yaml before any other stage runs.

Every other stage depends on its output, so a bad value stops `dvc repro` / `dvc exp run`
here, before DVC removes any other stage's outputs (DVC deletes a stage's outputs just before
running it): the last good results stay in place.  The output's content never changes, so a
valid edit reruns only the stages whose own params changed.

`dvc exp run -S key=value` in the workspace writes its values into params.yaml before any
stage runs (rewriting the whole file: flow lists become block lists) and leaves them there
when the run fails, so the error line says so and how to get good values back without
losing the user's own uncommitted edits of params.yaml.  `--temp` and `--queue` runs apply
-S to a copy in .dvc/tmp/exps and leave the workspace file alone.

Reads: all of params.yaml.  Writes: data/params.ok.
"""

import argparse
import os
import re
import subprocess
from pathlib import Path

from nnstudies import atomic, cli, gitrepo, params, yamlfile
from nnstudies.errors import UserError
from nnstudies.kmnist.data import OFFICIAL
from nnstudies.kmnist.sizes import check_memory
from nnstudies.seq.languages import LANGUAGES
from nnstudies.seq.languages import check_memory as check_seq_memory

NOTHING_RAN = "no other stage ran and no result was removed"


def restore_hint(keys: tuple[str, ...]) -> str:
    """What the failed check left behind and how to get good params back (``keys``: the dotted
    keys of the bad value, or of the values that do not fit together)."""
    root = os.environ.get("DVC_ROOT")
    exp = bool(os.environ.get("DVC_EXP_NAME"))  # set by DVC for `dvc exp run` only
    if exp and root and Path(root).resolve() != Path.cwd().resolve():
        return (f"{NOTHING_RAN}; this experiment ran in a temporary copy (--temp or --queue): "
                "your params.yaml is unchanged, run it again with an allowed value")
    said = NOTHING_RAN + (", but `dvc exp run -S` has written its values into params.yaml"
                          if exp else "")
    if exp:
        gitrepo.make_edit_visible("params.yaml")
    committed = _committed()
    try:
        current = params.flatten(params.read("params.yaml"))
    except UserError:
        current = None  # unreadable, empty, not a mapping: no key-by-key comparison
    if committed is None:
        return f"{said}; fix params.yaml"
    if current is None:
        return (f"{said}; `git checkout params.yaml` puts the committed file back (and drops any "
                "other uncommitted change in it)")
    flat = params.flatten(committed)
    changed = [k for k in {**flat, **current} if k not in flat or k not in current
               or yamlfile.show(flat[k]) != yamlfile.show(current[k])]  # 1 == true in Python
    def under(k: str, key: str) -> bool:
        return k == key or k.startswith(key + ".") or key.startswith(k + ".")

    others = [k for k in changed if not any(under(k, key) for key in keys)]
    blamed = [key for key in keys if any(under(k, key) for k in changed)]
    if not changed or (keys and not blamed):  # no bad value is an uncommitted one
        return f"{said}; the committed params.yaml holds this too: fix it there"
    key = blamed[0] if blamed else None  # an uncommitted value among those that do not fit
    if not others:
        return f"{said}; `git checkout params.yaml` puts the committed file back (it holds no other change)"
    listed = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
    value = _lookup(committed, key) if key else _ABSENT
    if value is _ABSENT or isinstance(value, dict):
        return (f"{said}; fix params.yaml, or `git checkout params.yaml` for the committed file, "
                f"which also drops your other uncommitted changes ({listed})")
    word = yamlfile.show(value)
    fix = (f"`dvc exp run -S {key}={word}`" if exp and re.fullmatch(r"[\w.+-]+", word)
           else f"setting {key} back to {word}")
    return (f"{said}; {fix} (the committed value) keeps your other uncommitted changes ({listed}), "
            "`git checkout params.yaml` would drop them")


def _committed() -> dict | None:
    """params.yaml as last committed (git's HEAD), or None: no git, no commit, not tracked."""
    try:
        proc = subprocess.run(["git", "show", "HEAD:./params.yaml"], capture_output=True,
                              text=True, timeout=30)
        data = yamlfile.parse(proc.stdout, "HEAD:params.yaml") if proc.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, UserError):
        return None
    return data if isinstance(data, dict) else None


_ABSENT = object()


def _lookup(tree: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return _ABSENT
        tree = tree[part]
    return tree


def check_across_keys(p: dict) -> None:
    """What one value alone cannot tell: sizes that do not fit, data that does not exist."""
    source = p["kmnist"]["source"]
    if source != OFFICIAL and not source.startswith(("http://", "https://")) \
            and not Path(source).is_dir():
        raise params.ParamError(f"params.yaml: kmnist.source = {yamlfile.show(source)}: no such "
                                "directory (allowed: 'official', a directory or an http(s) URL "
                                "with the four gz files and MD5SUMS)", "kmnist.source")
    train = p["kmnist"]["train"]
    for net in ("lin", "full", "conv", "wide"):
        sizes = {k: v for k, v in p["kmnist"][net].items() if k not in ("lr", "momentum")}
        check_memory(net, sizes, train["batch_size"], train["test_batch_size"])
    g = p["seq"]["grammar"]
    held_out = g["validation_sequences"] + g["test_sequences"]
    for lang in LANGUAGES:
        check_seq_memory(lang, g["train_sequences"], held_out, g["max_n"], g["reber_min_length"])
    for task in p["sweep"]["seq"]:  # sweep_seq makes epochs + 1 sequences
        epochs = p["seq"][task]["epochs"]
        try:
            check_seq_memory(task, epochs + 1, g["validation_sequences"] + 1, g["max_n"],
                             g["reber_min_length"])
        except UserError as exc:
            raise params.ParamError(f"params.yaml: seq.{task}.epochs = {epochs} is too many for "
                                    f"the sweep's sequences: {exc}", f"seq.{task}.epochs") from None
    available = g["train_sequences"]
    beyond = p["seq"]["beyond"]
    nets = {f"seq.{task}": p["seq"][task] for task in LANGUAGES}  # a train_seq task: its language
    nets.update({f"seq.beyond.{name}": beyond[name] for name in params.BEYOND_NETS})
    for where, net in nets.items():
        epochs = net["epochs"]
        if epochs + 1 > available:
            raise params.ParamError(f"params.yaml: {where}.epochs = {epochs} needs {epochs + 1} "
                                    f"training sequences, seq.grammar.train_sequences is "
                                    f"{available} (raise it)", f"{where}.epochs",
                                    "seq.grammar.train_sequences")
    for name in params.BEYOND_NETS:  # train_beyond generates its net's sequences at its max_n
        net = beyond[name]
        check_seq_memory(net["language"], available, held_out, net["max_n"], 0)
        widest = max(g["max_n"], net["max_n"])
        if beyond["probe_max_n"] <= widest:
            raise params.ParamError(f"params.yaml: seq.beyond.probe_max_n = {beyond['probe_max_n']} "
                                    f"must exceed every trained max_n ({widest}: the probe "
                                    "measures n beyond it)", "seq.beyond.probe_max_n")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="data/params.ok")
    args = parser.parse_args()
    try:
        p = params.load(list(params.SCHEMA))
        check_across_keys(p)
    except UserError as exc:
        raise UserError(f"{exc} ({restore_hint(getattr(exc, 'keys', ()))})") from None
    atomic.write_text(args.out, "params.yaml passed the schema of src/nnstudies/params.py\n")


if __name__ == "__main__":
    cli.run(main, removes_outputs=False)
