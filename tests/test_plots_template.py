"""The offline `dvc plots` page template (.dvc/plots/offline.html, set in .dvc/config):
`dvc plots show` / `dvc plots diff` write HTML that loads nothing from the network."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from conftest import ROOT, run
from nnstudies import plots_template
from nnstudies.errors import UserError

TEMPLATE = ROOT / ".dvc" / "plots" / "offline.html"


def inlined_versions(html: str) -> dict:
    return dict(re.findall(r"<!-- (vega(?:-lite|-embed)?) (\d+\.\d+\.\d+) \(", html))


def test_template_inlines_the_majors_dvc_render_expects():
    from dvc_render.html import HTML
    from dvc_render.vega import VegaRenderer

    html = TEMPLATE.read_text(encoding="utf8")
    cdn = dict(re.findall(r"npm/(vega(?:-lite|-embed)?)@(\d+\.\d+\.\d+)", VegaRenderer.SCRIPTS))
    inlined = inlined_versions(html)
    assert set(inlined) == set(cdn) == {"vega", "vega-lite", "vega-embed"}
    assert {k: v.split(".")[0] for k, v in inlined.items()} == {k: v.split(".")[0] for k, v in cdn.items()}
    assert html.count("{plot_divs}") == 1 and "{scripts}" not in html
    assert "<script src" not in html
    page = HTML(html).with_scripts(VegaRenderer.SCRIPTS).with_element("<div id='p'></div>").embed()
    assert "<div id='p'></div>" in page and "cdn.jsdelivr" not in page


def fake_node_modules(tmp_path, code: str):
    for package, build in plots_template.BUILDS:
        (tmp_path / package / build).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / package / "package.json").write_text('{"version": "5.0.0", "license": "BSD-3-Clause"}')
        (tmp_path / package / build).write_text(code + "\n//# sourceMappingURL=x.min.js.map\n")
    return tmp_path


def test_build_inlines_and_refuses_code_that_would_break_the_page(tmp_path):
    page = plots_template.build(fake_node_modules(tmp_path / "ok", "var a=1;"))
    assert page.count("<script>var a=1;</script>") == 3 and "sourceMappingURL" not in page
    for bad in ("document.write('</script>')", "var s='{plot_divs}'"):
        with pytest.raises(UserError, match="cannot be inlined"):
            plots_template.build(fake_node_modules(tmp_path / str(len(bad)), bad))
    with pytest.raises(UserError, match="missing"):
        plots_template.build(tmp_path / "nowhere")


CURVE = "epoch,accuracy\n1,0.50\n2,0.70\n3,0.80\n4,0.85\n"


@pytest.mark.pipeline
def test_dvc_plots_show_and_diff_write_self_contained_html(repo, tmp_path):
    assert run(["dvc", "config", "plots.html_template"], repo).stdout.strip() == "plots/offline.html"
    curve = repo / "plots" / "demo" / "curve.csv"
    curve.parent.mkdir(parents=True, exist_ok=True)
    curve.write_text(CURVE)
    run("git add -A && git -c user.name=t -c user.email=t@t commit -qm curve", repo)
    curve.write_text(CURVE.replace("0.85", "0.90"))
    run(["dvc", "plots", "show", "plots/demo/curve.csv", "-x", "epoch", "-y", "accuracy",
         "-o", "shown"], repo)
    run(["dvc", "plots", "diff", "HEAD", "--targets", "plots/demo/curve.csv", "-x", "epoch",
         "-y", "accuracy", "-o", "diffed"], repo)
    versions = inlined_versions(TEMPLATE.read_text(encoding="utf8"))
    for out in ("shown", "diffed"):
        html = (repo / out / "index.html").read_text(encoding="utf8")
        assert not re.search(r"<script[^>]+src=", html) and "cdn." not in html
        assert inlined_versions(html) == versions
        assert "vegaEmbed('#plots_demo_curve_csv'" in html
    assert '"rev": "HEAD"' in (repo / "diffed" / "index.html").read_text()

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium to draw the page (apt-get install chromium)")
    blank, drawn = tmp_path / "blank.png", tmp_path / "drawn.png"
    (tmp_path / "blank.html").write_text("<html><body></body></html>")
    for page, png in ((tmp_path / "blank.html", blank), (repo / "shown" / "index.html", drawn)):
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", "--window-size=900,500",
                        "--virtual-time-budget=10000", f"--screenshot={png}", page.as_uri()],
                       capture_output=True, timeout=120, check=True)
    from matplotlib.image import imread

    def inked(png):  # pixels that are not white
        return int((imread(png)[..., :3].min(axis=-1) < 0.9).sum())

    assert inked(blank) == 0
    assert inked(drawn) > 2000  # axes, ticks, labels and the line
