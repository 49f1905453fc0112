"""A tiny document model with two renderers: Markdown (figures linked) and a
self-contained HTML page (figures embedded as data URIs, inline CSS, no external URL).

Building the report as blocks, rather than writing Markdown and converting it, keeps the
two outputs identical in content without a Markdown dependency.
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path

from nnstudies import mdtable
from nnstudies.report import inputs


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Para:
    text: str


@dataclass
class Code:
    text: str


@dataclass
class Table:
    header: list
    rows: list
    caption: str = ""


@dataclass
class Figure:
    path: Path
    caption: str


@dataclass
class Figures:
    """Several figures side by side (a gallery row)."""
    items: list = field(default_factory=list)  # of Figure


@dataclass
class Items:
    """A bulleted list of inline-marked-up lines."""
    lines: list[str]


@dataclass
class Lead:
    """A block of the main body: the answer, or its one figure or table.  A part's other
    blocks go to its appendix (``split``), so the body reads as a short paper."""
    block: object


def split(blocks: list, appendix: str) -> tuple[list, list]:
    """A part's blocks -> (its main body: headings and Lead blocks, in order; its appendix:
    the heading ``appendix`` and every other block under a "Details:" copy of the heading it
    followed, headings with nothing under them left out)."""
    body, details, pending = [], [Heading(2, appendix)], None
    for block in blocks:
        if isinstance(block, Heading):
            body.append(block)
            pending = None if block.level <= 2 else Heading(3, f"Details: {block.text}")
        elif isinstance(block, Lead):
            body.append(block.block)
        else:
            if pending is not None:
                details.append(pending)
                pending = None
            details.append(block)
    return body, details if len(details) > 1 else []


@dataclass
class Contents:
    """Links to the given headings' anchors (the same in report.md and report.html)."""
    headings: list[str]


def anchor(text: str) -> str:
    """A heading's anchor as GitHub names it: lower case, spaces to '-', other punctuation
    dropped; report.html gives its headings the same ids."""
    kept = "".join(c for c in text.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def _unlead(block):
    """A section rendered whole, not through ``split``: a Lead is its block."""
    return block.block if isinstance(block, Lead) else block


def markdown(blocks: list, out_dir: Path) -> str:
    """Markdown with figure links relative to ``out_dir`` (where report.md is written)."""
    lines: list[str] = []
    for block in map(_unlead, blocks):
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Para):
            lines += [block.text, ""]
        elif isinstance(block, Items):
            lines += [f"- {line}" for line in block.lines] + [""]
        elif isinstance(block, Contents):
            lines += [" · ".join(f"[{h}](#{anchor(h)})" for h in block.headings), ""]
        elif isinstance(block, Code):
            lines += ["```", block.text.rstrip("\n"), "```", ""]
        elif isinstance(block, Table):
            if block.caption:
                lines += [f"*{block.caption}*", ""]
            lines += [mdtable.render(block.header, [[_cell(c) for c in row] for row in block.rows]), ""]
        elif isinstance(block, (Figure, Figures)):
            for fig in _figures(block):
                rel = os.path.relpath(fig.path, out_dir)
                lines += [f"![{fig.caption}]({rel})", f"*{fig.caption}*", ""]
    return "\n".join(lines)


def page(blocks: list, title: str) -> str:
    """A self-contained HTML page: every image is embedded, nothing is fetched."""
    body: list[str] = []
    for block in map(_unlead, blocks):
        if isinstance(block, Heading):
            level = min(max(block.level, 1), 6)
            body.append(f'<h{level} id="{html.escape(anchor(block.text))}">{_inline(block.text)}</h{level}>')
        elif isinstance(block, Items):
            body.append("<ul>" + "".join(f"<li>{_inline(line)}</li>" for line in block.lines) + "</ul>")
        elif isinstance(block, Contents):
            # one line of links, not a list: the summary and the contents fit the first screen
            body.append('<p class="toc">' + " · ".join(
                f'<a href="#{html.escape(anchor(h))}">{_inline(h)}</a>' for h in block.headings)
                + "</p>")
        elif isinstance(block, Para):
            body.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Code):
            body.append(f"<pre>{html.escape(block.text)}</pre>")
        elif isinstance(block, Table):
            cap = f"<caption>{_inline(block.caption)}</caption>" if block.caption else ""
            head = "".join(f"<th>{_inline(str(h))}</th>" for h in block.header)
            rows = "".join("<tr>" + "".join(f"<td>{_inline(_cell(c))}</td>" for c in row) + "</tr>"
                           for row in block.rows)
            body.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(block, (Figure, Figures)):
            items = "".join(
                f'<figure><img alt="{html.escape(f.caption)}" src="{_data_uri(f.path)}">'
                f"<figcaption>{_inline(f.caption)}</figcaption></figure>" for f in _figures(block))
            body.append(f'<div class="figures">{items}</div>')
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _figures(block) -> list:
    return block.items if isinstance(block, Figures) else [block]


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() and abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def _inline(text: str) -> str:
    """Escape, then render **bold** and `code` spans (all the inline markup we use)."""
    out, bold = [], False
    for i, part in enumerate(html.escape(text).replace("\\|", "|").split("`")):
        if i % 2:
            out.append(f"<code>{part}</code>")
            continue
        pieces = part.split("**")
        for j, piece in enumerate(pieces):
            if j:
                out.append("</b>" if bold else "<b>")
                bold = not bold
            out.append(piece)
    if bold:
        out.append("</b>")
    return "".join(out)


def _data_uri(path: Path) -> str:
    mime = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
            ".svg": "image/svg+xml"}.get(Path(path).suffix.lower(), "application/octet-stream")
    return f"data:{mime};base64," + base64.b64encode(inputs.read_bytes(path)).decode("ascii")


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#1d1d1f;line-height:1.45}
h1{border-bottom:2px solid #ddd;padding-bottom:.3em}h2{border-bottom:1px solid #eee;margin-top:2em}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}th,td{border:1px solid #ccc;padding:.25em .6em;
text-align:right}th{background:#f4f4f6}td:first-child,th:first-child{text-align:left}
caption{caption-side:top;text-align:left;font-style:italic;padding-bottom:.3em}
pre{background:#f6f8fa;padding:.8em;overflow-x:auto;font-size:.82em;line-height:1.3}
code{background:#f1f1f4;padding:0 .2em}
.figures{display:flex;flex-wrap:wrap;gap:1em}figure{margin:.5em 0;max-width:100%}
.toc{font-size:.9em}
figure img{max-width:520px;width:100%;border:1px solid #eee}figcaption{font-size:.85em;color:#555}
"""
