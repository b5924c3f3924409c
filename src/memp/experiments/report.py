"""What every experiment report shares: package versions, and the self-contained HTML page."""

from __future__ import annotations

import base64
import html
import re
from importlib import metadata
from pathlib import Path

PACKAGES = ("memp", "alfworld", "textworld", "sentence-transformers", "torch", "numpy")


def versions(packages=PACKAGES) -> dict[str, str]:
    """The installed versions of ``packages``; those not installed are left out."""
    out = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def html_page(out: Path, md: str, title: str = "memp paper report") -> str:
    """A self-contained page from a report's Markdown, with its plots inlined as data URIs.

    Only the Markdown the reports write is understood: headings, paragraphs, pipe tables and
    ``![](file.png)`` images found in ``out``.
    """
    body: list[str] = []
    rows: list[str] = []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            if not set(line) <= {"|", "-", " ", ":"}:
                tag = "th" if not rows else "td"
                rows.append("<tr>" + "".join(f"<{tag}>{html.escape(c.strip())}</{tag}>"
                                             for c in line.strip("|").split("|")) + "</tr>")
            continue
        if rows:
            body.append("<table>" + "".join(rows) + "</table>")
            rows = []
        m = re.match(r"!\[\]\((.+\.png)\)", line)
        if m:
            data = base64.b64encode((out / m.group(1)).read_bytes()).decode()
            body.append(f'<img alt="{m.group(1)}" src="data:image/png;base64,{data}">')
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    style = ("body{font-family:sans-serif;max-width:60em;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}")
    return (f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title><style>{style}</style>"
            + "\n".join(body))
