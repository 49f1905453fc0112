"""The self-contained page template for ``dvc plots show`` / ``dvc plots diff``.

dvc-render's default page loads vega, vega-lite and vega-embed from a CDN (its
``{scripts}`` placeholder), so the HTML is blank offline.  This template has no
``{scripts}`` placeholder; it inlines the three minified builds from the npm packages
instead, and keeps ``{plot_divs}`` (where dvc-render puts each chart) and ``{refresh_tag}``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from nnstudies.errors import UserError

BUILDS = (("vega", "build/vega.min.js"), ("vega-lite", "build/vega-lite.min.js"),
          ("vega-embed", "build/vega-embed.min.js"))
# dvc-render fills these by plain string replacement: inlined code must not contain them.
PLACEHOLDERS = ("{plot_divs}", "{scripts}", "{refresh_tag}")

PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <!-- Self-contained: vega, vega-lite and vega-embed are inlined below, so the page
         renders with no network.  Rebuild: see docs/compare.md. -->
@SCRIPTS@
    <style>
        table { border-spacing: 15px; }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def build(node_modules: str | Path) -> str:
    """The template text, from an npm ``node_modules`` holding vega, vega-lite, vega-embed."""
    scripts = []
    for package, build_file in BUILDS:
        folder = Path(node_modules) / package
        try:
            meta = json.loads((folder / "package.json").read_text())
            code = (folder / build_file).read_text(encoding="utf8")
        except FileNotFoundError as exc:
            raise UserError(f"{exc.filename}: missing (npm install --prefix DIR vega@5 "
                            "vega-lite@5 vega-embed@6, then pass DIR/node_modules)") from None
        code = re.sub(r"\s*//# sourceMappingURL=\S*\s*$", "", code)  # no map file to fetch
        if "</script" in code.lower() or any(p in code for p in PLACEHOLDERS):
            raise UserError(f"{folder / build_file}: cannot be inlined (holds </script> or a "
                            "dvc-render placeholder)")
        license_file = folder / "LICENSE"  # BSD-3 asks for the notice to travel with the code
        notice = license_file.read_text().replace("--", "- -").strip() if license_file.exists() else ""
        scripts.append(f"    <!-- {package} {meta['version']} ({meta.get('license', '')})"
                       + (f"\n{notice}\n" if notice else " ") + "-->\n"
                       f"    <script>{code}</script>")
    return PAGE.replace("@SCRIPTS@", "\n".join(scripts))
