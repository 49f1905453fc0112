"""Stage hand_check: the hand-designed 4-unit net, under the step and scaled under sigmoid.

Reads: hand, tracking.  Writes: metrics/hand_check.json, plots/hand_check/figures/ (check.png;
step/ and sigmoid/, each with hid_4_<i>.png and out_4.png), plots/hand_check/
{activations_step.csv/md, activations_sigmoid.csv/md, lines.md, hand.log}.  The seed report's design (output bias 0) is evaluated beside it.
"""

import argparse
import shutil
from pathlib import Path

from nnstudies import atomic, cli, params, tracking
from nnstudies.checker import analysis, data, plots
from nnstudies.checker.hand import SEED_DESIGN, hand_net


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", default="metrics/hand_check.json")
    parser.add_argument("--plots", default="plots/hand_check")
    args = parser.parse_args()
    p = params.load(["hand", "tracking"])
    cli.torch_threads()
    design, scale = p["hand"], p["hand"]["scale"]
    x, t = data.points()
    variants = {"step": ("step", 1.0), "sigmoid": ("sig", scale)}  # name -> (act, scale)

    with tracking.start("check", "hand_check", p) as run:
        metrics, log, lines_md, tables, figures = {}, [], ["# Dividing lines", ""], {}, {}
        for name, (act, s) in variants.items():
            net = hand_net(design, act, s)
            result = analysis.evaluate(net, x, t)
            metrics[name] = dict(result, scale=s)
            log += [f"--act {act} --hid 4 --set_weights (scale {s:g})", "Initial Weights:",
                    *map(repr, net.weights()),
                    f"Initial Accuracy:  {100.0 * result['correct'] / len(x)}"]
            lines = analysis.dividing_lines(net)
            lines_md += [f"## {name} (scale {s:g})", ""]
            lines_md += [f"- hidden unit {i}: ${eq}$" for i, eq in enumerate(lines)] + [""]
            tables[name] = analysis.activation_table(net, x, t)
            figures.update({f"{name}/{k}": v for k, v in
                            plots.region_maps(net, x, t, lines=lines)})
        metrics["seed_design"] = {name: dict(analysis.evaluate(hand_net(SEED_DESIGN, act, s), x, t),
                                             scale=s) for name, (act, s) in variants.items()}
        for name in variants:
            for design_name, m in (("design", metrics[name]), ("seed", metrics["seed_design"][name])):
                print(f"{name:8s} {design_name:6s} {m['correct']}/9 right, smallest output margin "
                      f"{m['output_margin']:.4g}, smallest hidden margin {m['hidden_margin']:.4g}")
        run.log_metrics({f"{a}.{k}": v for a in variants for k, v in metrics[a].items()})
        run.log_metrics({f"seed_design.{a}.{k}": v for a in variants
                         for k, v in metrics["seed_design"][a].items()})

        out = Path(args.plots)
        shutil.rmtree(out / "figures", ignore_errors=True)
        figures["check"] = plots.data_figure(x, t)
        for name, fig in figures.items():
            atomic.save_figure(fig, out / "figures" / f"{name}.png")
        for name, (header, rows) in tables.items():
            atomic.write_csv(out / f"activations_{name}.csv", header, rows)
            atomic.write_text(out / f"activations_{name}.md", analysis.markdown_table(header, rows))
        atomic.write_text(out / "lines.md", "\n".join(lines_md))
        atomic.write_text(out / "hand.log", "\n".join(log) + "\n")
        atomic.write_json(args.metrics, metrics)
        for f in sorted(out.rglob("*.*")):
            run.log_artifact(f, str(Path("plots") / f.parent.relative_to(out)))


if __name__ == "__main__":
    cli.run(main)
