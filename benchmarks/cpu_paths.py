"""How far the training stages' metrics move between CPU paths on one machine (issue 26).

    python benchmarks/cpu_paths.py                 # the CPU paths, then benchmarks/cpu_paths.json
    python benchmarks/cpu_paths.py --strict        # also: does a pinned path make NetConv identical?
    python benchmarks/cpu_paths.py --sweep         # also: sweep_checker under two paths

A *CPU path* is what picks the float kernels: torch's capability (ATEN_CPU_CAPABILITY), MKL's
code branch (MKL_ENABLE_INSTRUCTIONS, MKL_CBWR), oneDNN's ISA (ONEDNN_MAX_CPU_ISA), numba's
target (NUMBA_CPU_NAME) and the thread count.  Another machine runs another path by default
(an AVX2-only CPU is ``ATEN_CPU_CAPABILITY=avx2`` + ``MKL_ENABLE_INSTRUCTIONS=AVX2`` +
``ONEDNN_MAX_CPU_ISA=AVX2`` here), so the spread between the variants below, one variable each,
is what a commit's metrics may move between machines: gates.yaml's ``tolerance`` comes from it.

Each variant is a fresh clone of the working tree (``git ls-files`` copy, ``git init``, commit,
as tests/conftest.py's ``copy_repo``; ``--rev REV`` clones a commit instead), tracking off,
sharing one DVC cache (so validate_params, fetch_kmnist and make_seq come from the run-cache
after the first clone) and one numba cache; each stage runs alone (``dvc repro -f -s``,
timed), the variants one after another.  Printed per metric: min, max, max-min and, where
the metric has one, its natural unit (images of the 1,000-image test set, epochs); plus the
test images whose predicted class differs between two variants and the largest weight
difference.  Not a test: it takes ~30 min on 2 cores.

``--strict``: the strict settings pin torch's capability, MKL's branch (conditional numerical
reproducibility) and oneDNN's ISA (or switch oneDNN off: then conv runs on ATen + MKL), with
threads from params.  Variants that set a pinned variable are identical by construction;
the meaningful ones add what the pins leave free (MKL_ENABLE_INSTRUCTIONS under MKL_CBWR: an
AVX2-only machine; OMP_NUM_THREADS; ONEDNN_MAX_CPU_ISA with oneDNN off: is it really off?).
NUMBA_CPU_NAME is left out: NetConv runs no numba code.  The real stage runs under the
oneDNN-pinned settings (``--strict-variants``); every setting, oneDNN off included, also runs
a short check of NetConv's training steps in a fresh process (weights hashed, seconds per
step, the settings taking turns).  Time over the host's is the cost of strict mode.  Never run
two of these at once on 2 cores: two 2-thread OpenMP pools on 2 cores slow each other ~10x.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = Path(sys.executable)
TRAINING = ["train_kmnist@lin", "train_kmnist@full", "train_kmnist@conv", "train_checker",
            "hand_checker", "train_seq@reber", "train_seq@anbn", "train_seq@anbncn",
            "train_seq@ereber"]
PLOTS = [f"plot_seq@{t}" for t in ("reber", "anbn", "anbncn", "ereber")]  # gated, cheap
UPSTREAM = ["validate_params", "fetch_kmnist", "make_seq"]
# Every variable that changes a CPU path: cleared for every variant, then one set per variant.
PATH_VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA",
                  "DNNL_MAX_CPU_ISA", "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES", "OMP_NUM_THREADS",
                  "MKL_NUM_THREADS", "CPU_PATHS_ONEDNN")
VARIANTS = {
    "host": {},
    "aten_default": {"ATEN_CPU_CAPABILITY": "default"},
    "aten_avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "mkl_avx2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "numba_generic": {"NUMBA_CPU_NAME": "generic"},
    "omp_1": {"OMP_NUM_THREADS": "1"},
}
# Stages a variable cannot touch are not rerun under it: numba compiles only Study 3's kernel,
# and only the KMNIST and checkerboard stages run more than one thread (params' threads).
# MKL_ENABLE_INSTRUCTIONS is left off Study 3 and OMP_NUM_THREADS off NetConv for time (2 cores,
# ~5 min a NetConv run): Study 3's weights come from numba, its evaluation moves with
# ATen's capability already; the other 2-thread stages show whether params' threads hold.
ONLY = {"numba_generic": ("train_seq", "plot_seq"),
        "mkl_avx2": ("train_kmnist", "train_checker", "hand_checker"),
        "omp_1": ("train_kmnist@lin", "train_kmnist@full", "train_checker", "hand_checker")}
STRICT = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
NO_ONEDNN = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "CPU_PATHS_ONEDNN": "off"}
STRICT_VARIANTS = {  # the real stage under strict mode (oneDNN off: only the short check, for time)
    "strict": STRICT,
    "strict+mkl_avx2": {**STRICT, "MKL_ENABLE_INSTRUCTIONS": "AVX2"},  # an AVX2-only machine
    "strict+omp_1": {**STRICT, "OMP_NUM_THREADS": "1"},
}
STEP_SETTINGS = {  # the short check: NetConv's training steps, weights hashed, per setting
    "host": {}, "aten_avx2": VARIANTS["aten_avx2"], "mkl_avx2": VARIANTS["mkl_avx2"],
    "onednn_avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "strict": STRICT, "strict+mkl_avx2": STRICT_VARIANTS["strict+mkl_avx2"],
    "strict_no_onednn": NO_ONEDNN,
    "strict_no_onednn+mkl_avx2": {**NO_ONEDNN, "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "strict_no_onednn+onednn_avx2": {**NO_ONEDNN, "ONEDNN_MAX_CPU_ISA": "AVX2"},  # is it off?
}
STRICT_STAGES = ["train_kmnist@conv"]
SWEEP_VARIANTS = ("host", "mkl_avx2")  # MKL's branch moved the checkerboard's weights most here
TEST_IMAGES = 1000  # the bundled sample's test set: one image is 0.001 of accuracy

# torch.backends.mkldnn.enabled is no environment variable: this sitecustomize (put on
# PYTHONPATH for the no-oneDNN variants) switches it off as soon as torch is imported.
HOOK = '''
import importlib.abc, importlib.machinery, os, sys
class _OneDnnOff(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "torch":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        run = spec.loader.exec_module
        def exec_module(module):
            run(module)
            import torch.backends.mkldnn
            torch.backends.mkldnn.enabled = False
        spec.loader.exec_module = exec_module
        return spec
if os.environ.get("CPU_PATHS_ONEDNN") == "off":
    sys.meta_path.insert(0, _OneDnnOff())
'''


# The short check: NetConv's training steps (batches of 64 random images, SGD as the stage) in
# a fresh process per setting, 2 threads as params; prints the seconds per step (the first,
# warm-up, left out) and a hash of the weights.  Any kernel that runs another path changes
# the weights' bits within a step, so equal hashes say the settings run the same path; the
# settings take turns, so a shared machine's load weighs on each alike.
STEPS = """
import hashlib, sys, time
import numpy as np, torch
from nnstudies.kmnist import models
torch.set_num_threads(2)
torch.manual_seed(0)
net = models.build("conv")
opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.5)
rng = np.random.default_rng(0)
steps = int(sys.argv[1])
x = torch.from_numpy(rng.random((steps, 64, 1, 28, 28), dtype=np.float32))
y = torch.from_numpy(rng.integers(0, 10, (steps, 64)))
for i, (xb, yb) in enumerate(zip(x, y)):
    if i == 1:
        started = time.perf_counter()
    opt.zero_grad()
    torch.nn.functional.nll_loss(net(xb), yb).backward()
    opt.step()
per_step = (time.perf_counter() - started) / (steps - 1)
md5 = hashlib.md5(b"".join(p.detach().numpy().tobytes() for p in net.parameters())).hexdigest()
print(per_step, md5[:12], torch.backends.cpu.get_cpu_capability(), torch.backends.mkldnn.enabled)
"""


def step_check(settings: dict[str, dict], work: Path, steps: int = 30, repeats: int = 4) -> dict:
    """Per setting: the fastest repeat's seconds per step, the weights' hash (the same in every
    repeat, or says it differs)."""
    seen: dict[str, list] = {name: [] for name in settings}
    for _ in range(repeats):
        for name, extra in settings.items():
            out = sh([str(PYTHON), "-c", STEPS, str(steps)], work / "src", environment(extra, work)).split()
            seen[name].append(out)
            print(f"  steps {name:<30} {float(out[0]):.3f} s/step  weights {out[1]}  {out[2]} "
                  f"oneDNN {out[3]}", flush=True)
    result = {}
    for name, outs in seen.items():
        hashes = {o[1] for o in outs}
        # the fastest repeat: the one other jobs on the shared cores disturbed least
        result[name] = {"s_per_step": min(float(o[0]) for o in outs),
                        "weights": outs[0][1] if len(hashes) == 1 else "differs between repeats",
                        "capability": outs[0][2], "onednn": outs[0][3] == "True", "env": settings[name]}
    host = result["host"]["s_per_step"]
    for name, r in result.items():
        r["time_vs_host"] = round(r["s_per_step"] / host, 2)
        r["same_weights_as"] = [n for n, o in result.items() if o["weights"] == r["weights"] and n != name]
    return result


def sh(cmd: list[str], cwd: Path, env: dict | None = None, timeout: int = 3600) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} in {cwd} exited {proc.returncode}:\n"
                         f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def snapshot(dest: Path, rev: str | None) -> str:
    """The files to clone, taken once (helpers may edit the checkout meanwhile)."""
    dest.mkdir(parents=True)
    if rev:
        archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        return sh(["git", "rev-parse", rev], ROOT).strip()
    files = sh(["git", "ls-files", "-co", "--exclude-standard", "-z"], ROOT).split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    dirty = bool(sh(["git", "status", "--porcelain", "--untracked-files=no"], ROOT).strip())
    return sh(["git", "rev-parse", "HEAD"], ROOT).strip() + ("+working-tree" if dirty else "")


def clone(src: Path, dest: Path, cache: Path) -> Path:
    shutil.copytree(src, dest)
    text = (dest / "params.yaml").read_text()
    # tracking off: no MLflow store to write (and nothing it does shapes a metric)
    text, n = re.subn(r"(?m)^(tracking:\n(?:[ \t]+#.*\n)*[ \t]+enabled:)\s*true", r"\1 false", text)
    assert n == 1, "params.yaml: no `tracking: enabled: true` to switch off"
    (dest / "params.yaml").write_text(text)
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@b"]
    sh(["git", "init", "-q", "-b", "main"], dest)
    sh(["git", "add", "-A"], dest)
    sh([*git, "commit", "-qm", "clone"], dest)
    sh(["dvc", "config", "--local", "cache.dir", str(cache)], dest)
    return dest


def environment(extra: dict, work: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in PATH_VARIABLES}
    env.update(VIRTUAL_ENV=str(PYTHON.parent.parent), NUMBA_CACHE_DIR=str(work / "numba"),
               MLFLOW_DISABLE_TELEMETRY="true")
    if extra.get("CPU_PATHS_ONEDNN"):
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(work / "hook"), env.get("PYTHONPATH")]))
    return {**env, **extra}


def flatten(data, prefix: str = "") -> dict:
    out = {}
    for key, value in (data.items() if isinstance(data, dict) else []):
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = value
    return out


def slug(stage: str) -> str:
    return stage.replace("@", "_")


def run_variant(name: str, extra: dict, stages: list[str], src: Path, work: Path) -> dict:
    """Clone, run ``stages`` one by one under ``extra``; the metrics, timings and facts.
    Saved as ``work/<name>.json``: a rerun with ``--work`` reuses it."""
    saved = work / f"{name}.json"
    if saved.exists():
        print(f"  {name:<28} (measured before: {saved})", flush=True)
        return json.loads(saved.read_text())
    shutil.rmtree(work / name, ignore_errors=True)  # a run cut short
    repo = clone(src, work / name, work / "cache")
    env = environment(extra, work)
    sh(["dvc", "repro", "-q", *UPSTREAM], repo, env)  # from the shared run-cache after the first
    seconds = {}
    for stage in stages:
        started = time.perf_counter()
        sh(["dvc", "repro", "-q", "-f", "-s", stage], repo, env)
        seconds[stage] = round(time.perf_counter() - started, 1)
        print(f"  {name:<28} {stage:<20} {seconds[stage]:7.1f} s", flush=True)
    out = collect(repo, name, extra, stages, seconds, work)
    saved.write_text(json.dumps(out))
    return out


def collect(repo: Path, name: str, extra: dict, stages: list[str], seconds: dict, work: Path) -> dict:
    out = {"env": extra, "seconds": seconds, "metrics": {}, "paths": {}, "extra": {}}
    for stage in stages:
        s = slug(stage)
        out["metrics"][stage] = flatten(json.loads((repo / "metrics" / f"{s}.json").read_text()))
        results = json.loads((repo / "results" / f"{s}.json").read_text())
        cpu = results.get("environment", {})
        cpu = {**cpu, **cpu.get("cpu_path", {})}  # where the CPU path facts are recorded
        out["paths"][stage] = {k: cpu[k] for k in ("torch_capability", "threads", "onednn_enabled",
                                                    "variables") if k in cpu}
        if stage == "train_checker":  # the other restarts' first epoch at 100% (not in metrics)
            out["extra"][stage] = {f"restart_{r['restart']}.first_epoch_at_100": r["first_epoch_at_100"]
                                   for r in results["restarts"] if r["first_epoch_at_100"] is not None}
        points = repo / "plots" / s / "points.csv"
        if points.exists():  # a sweep: every point's epochs (the metrics hold quartiles)
            rows = list(csv.DictReader(points.open()))
            out["extra"][stage] = {f"hid_{r['hid']}.seed_{r['seed']}.{k}": float(r[k])
                                   for r in rows for k in ("epochs_to_success", "epochs_to_100") if r[k]}
        confusion = repo / "plots" / s / "confusion.csv"
        if confusion.exists():  # the predicted class of every test image
            out["extra"][stage] = {"predicted": [line.split(",")[1] for line in
                                                 confusion.read_text().splitlines()[1:]]}
    # weights: kept in the work folder for the pairwise comparison below
    if (repo / "models").exists():
        shutil.copytree(repo / "models", work / "models" / name, dirs_exist_ok=True)
    return out


def tensors(data, prefix: str = "") -> dict:
    """Every tensor of a checkpoint (nested dicts and lists), by its dotted path."""
    if isinstance(data, dict):
        return {k: v for key, value in data.items() for k, v in tensors(value, f"{prefix}{key}.").items()}
    if isinstance(data, (list, tuple)):
        return {k: v for i, value in enumerate(data) for k, v in tensors(value, f"{prefix}{i}.").items()}
    return {prefix: data} if hasattr(data, "is_floating_point") else {}


def weights_diff(work: Path, a: str, b: str) -> dict[str, float]:
    """Largest absolute difference of any weight, per model file, between variants a and b."""
    import torch

    diffs = {}
    for path in sorted((work / "models" / a).rglob("*.pt")):
        rel = path.relative_to(work / "models" / a)
        other = work / "models" / b / rel
        if not other.exists():
            continue
        x, y = (tensors(torch.load(p, map_location="cpu", weights_only=True)) for p in (path, other))
        worst = 0.0
        for key in x.keys() & y.keys():
            if torch.is_tensor(x[key]) and torch.is_tensor(y[key]) and x[key].shape == y[key].shape \
                    and x[key].is_floating_point():
                worst = max(worst, (x[key].double() - y[key].double()).abs().max().item())
        diffs[str(rel)] = worst
    return diffs


def unit(metric: str) -> tuple[str, float] | None:
    """The natural unit of a metric's change: (name, value of one unit)."""
    last = metric.rsplit(".", 1)[-1]
    if last == "test_accuracy":
        return "images", 1 / TEST_IMAGES
    if "epoch" in metric or last in ("q1", "median", "q3"):
        return "epochs", 1
    return None


def spread(runs: dict[str, dict]) -> list[dict]:
    """Per metric: its value in each variant, min, max, max-min (and in its natural unit)."""
    rows = []
    stages = sorted({s for r in runs.values() for s in r["metrics"]})
    for stage in stages:
        for source in ("metrics", "extra"):
            keys = sorted({k for r in runs.values() for k, v in r[source].get(stage, {}).items()
                           if not isinstance(v, list)})
            for key in keys:
                values = {n: r[source].get(stage, {}).get(key) for n, r in runs.items()
                          if stage in r["metrics"]}  # the variants that ran the stage
                numbers = [v for v in values.values() if v is not None]
                row = {"stage": stage, "metric": key, "source": source, "values": values,
                       "min": min(numbers), "max": max(numbers), "range": max(numbers) - min(numbers)}
                if any(v is None for v in values.values()):
                    row["missing_in"] = [n for n, v in values.items() if v is None]
                if (u := unit(key)) is not None:
                    row["unit"], row["range_in_unit"] = u[0], round(row["range"] / u[1], 6)
                rows.append(row)
    return rows


def predictions(runs: dict[str, dict]) -> dict[str, dict]:
    """Per KMNIST stage: the most test images whose predicted class differs between two variants."""
    out = {}
    for stage in sorted({s for r in runs.values() for s in r["extra"]}):
        preds = {n: r["extra"][stage]["predicted"] for n, r in runs.items()
                 if "predicted" in r["extra"].get(stage, {})}
        if len(preds) < 2:
            continue
        pairs = {f"{a} vs {b}": sum(x != y for x, y in zip(preds[a], preds[b]))
                 for a, b in itertools.combinations(preds, 2)}
        worst = max(pairs, key=pairs.get)
        out[stage] = {"max_images_changed": pairs[worst], "pair": worst, "pairs": pairs}
    return out


def report(title: str, runs: dict[str, dict], work: Path, base: str) -> dict:
    rows = spread(runs)
    print(f"\n## {title}: {', '.join(runs)}\n")
    print(f"{'stage':<20} {'metric':<44} {'min':>12} {'max':>12} {'max-min':>10}  natural")
    for row in rows:
        if row["range"] == 0 and "missing_in" not in row:
            continue
        natural = f"{row['range_in_unit']:g} {row['unit']}" if "unit" in row else ""
        print(f"{row['stage']:<20} {row['metric']:<44} {row['min']:>12.6g} {row['max']:>12.6g} "
              f"{row['range']:>10.3g}  {natural}")
    same = sum(1 for r in rows if r["range"] == 0)
    print(f"({same} of {len(rows)} metrics identical in every variant: not listed)")
    changed = predictions(runs)
    for stage, p in changed.items():
        print(f"{stage}: up to {p['max_images_changed']} of {TEST_IMAGES} test images change class ({p['pair']})")
    weights = {n: weights_diff(work, base, n) for n in runs if n != base}
    for name, files in weights.items():
        moved = {f: d for f, d in files.items() if d > 0}
        print(f"weights {name} vs {base}: " + (", ".join(f"{f} {d:.3g}" for f, d in moved.items())
                                                 or "all identical"))
    return {"spread": rows, "predictions_changed": changed, "max_weight_diff_vs_" + base: weights}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rev", help="clone this commit instead of the working tree")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated (default: all)")
    parser.add_argument("--strict", action="store_true", help="also the strict-mode variants (NetConv)")
    parser.add_argument("--strict-only", action="store_true", help="only host + the strict variants")
    parser.add_argument("--strict-variants", default=",".join(STRICT_VARIANTS), help="comma-separated")
    parser.add_argument("--sweep", action="store_true", help=f"also sweep_checker under {SWEEP_VARIANTS}")
    parser.add_argument("--no-plots", action="store_true", help="skip plot_seq@*")
    parser.add_argument("--stages", help="comma-separated stages instead of the training stages (a quick check)")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "cpu_paths.json"))
    parser.add_argument("--keep", action="store_true", help="keep the clones (printed)")
    parser.add_argument("--work", help="work folder to (re)use: variants measured there are not rerun")
    args = parser.parse_args()

    os.environ["PATH"] = f"{PYTHON.parent}{os.pathsep}{os.environ.get('PATH', '')}"  # dvc, python
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="cpu_paths-"))
    (work / "hook").mkdir(parents=True, exist_ok=True)
    (work / "hook" / "sitecustomize.py").write_text(HOOK)
    started = time.perf_counter()
    if (work / "src").exists():
        source = (work / "source.txt").read_text()
    else:
        source = snapshot(work / "src", args.rev)
        (work / "source.txt").write_text(source)
    load = os.getloadavg()[0]
    print(f"source {source}; work {work}; load {load:.1f}", flush=True)
    stages = args.stages.split(",") if args.stages else TRAINING + ([] if args.no_plots else PLOTS)
    names = ["host"] if args.strict_only else args.variants.split(",")
    for option, chosen, known in (("--variants", names, VARIANTS),
                                  ("--strict-variants", args.strict_variants.split(","), STRICT_VARIANTS)):
        if set(chosen) - set(known):
            raise SystemExit(f"{option}: unknown {sorted(set(chosen) - set(known))} (known: {', '.join(known)})")
    result = {"source": source, "cpu": _cpu_model(), "cores": os.cpu_count(), "load_at_start": load}

    def save() -> None:  # after every phase: a run cut short still leaves what it measured
        result["wall_s"] = round(time.perf_counter() - started)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")

    runs = {name: run_variant(name, VARIANTS[name], [s for s in stages if s.startswith(ONLY.get(name, ""))],
                              work / "src", work) for name in names}
    result["variants"] = {n: {"env": r["env"], "seconds": r["seconds"], "paths": r["paths"]}
                          for n, r in runs.items()}
    if len(runs) > 1:
        result["paths"] = report("CPU paths", runs, work, names[0])
    save()
    if args.strict or args.strict_only:
        strict = {"host": runs["host"]}
        for name in args.strict_variants.split(","):
            strict[name] = run_variant(name, STRICT_VARIANTS[name], STRICT_STAGES, work / "src", work)
        only = {n: {**r, "metrics": {s: r["metrics"][s] for s in STRICT_STAGES},
                    "extra": {s: r["extra"][s] for s in STRICT_STAGES}} for n, r in strict.items()}
        out = report("Strict mode (NetConv, the stage)", only, work, "strict")
        host_s = runs["host"]["seconds"]["train_kmnist@conv"]
        out["stage_time_vs_host"] = {n: round(r["seconds"]["train_kmnist@conv"] / host_s, 2)
                                     for n, r in strict.items() if n != "host"}
        out["variants"] = {n: {"env": r["env"], "seconds": r["seconds"], "paths": r["paths"]}
                           for n, r in strict.items() if n != "host"}
        print("NetConv stage time / host's (one run each, shared machine): "
              + ", ".join(f"{n} {x:g}" for n, x in out["stage_time_vs_host"].items()))
        print("\n## Strict mode (NetConv's training steps: weights hash and time per step)\n")
        out["steps"] = step_check(STEP_SETTINGS, work)
        for name, r in out["steps"].items():
            print(f"{name:<30} x{r['time_vs_host']:<5} weights {r['weights']}  same as: "
                  f"{', '.join(r['same_weights_as']) or 'none'}")
        result["strict"] = out
        save()
    if args.sweep:
        sweeps = {f"sweep_{n}": run_variant(f"sweep_{n}", VARIANTS[n], ["sweep_checker"], work / "src", work)
                  for n in SWEEP_VARIANTS}
        result["sweep"] = report("sweep_checker", sweeps, work, f"sweep_{SWEEP_VARIANTS[0]}")
        result["sweep"]["seconds"] = {n: r["seconds"] for n, r in sweeps.items()}
    save()
    print(f"\nwrote {args.json} after {result['wall_s']} s")
    if args.keep or args.work:
        print(f"clones kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


def _cpu_model() -> str:
    try:
        return re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text()).group(1).strip()
    except (OSError, AttributeError):
        return ""


if __name__ == "__main__":
    main()
