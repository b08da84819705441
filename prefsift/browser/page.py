"""The view as HTML: a whole page (`prefsift view`) or a section of another page (the report), with
its data, script and style inline, so it opens from disk with no server and no network."""

from __future__ import annotations

import html
from functools import lru_cache
from pathlib import Path

from .encode import encode, to_json
from .frame import ViewTable

STATIC = Path(__file__).parent / "static"


@lru_cache(maxsize=None)
def _asset(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def section(table: ViewTable, intro: str = "", per_page: int = 50) -> str:
    """The browser as a fragment: a root element, its style, its data and its script (one per
    page)."""
    data = to_json({**encode(table), "per": per_page})
    return (f"<style>{_asset('view.css')}</style>{intro}"
            '<div id="pv" class="pv"><noscript>The pairs browser needs JavaScript.</noscript></div>'
            f'<script type="application/json" id="pv-data">{data}</script>'
            f"<script>{_asset('view.js')}</script>")


def page(table: ViewTable, title: str = "prefsift view", subtitle: str = "") -> str:
    """A whole self-contained HTML page with the browser."""
    head = (f"<h1>{html.escape(title)}</h1>"
            + (f'<p class="pv-sub">{html.escape(subtitle)}</p>' if subtitle else "")
            + '<p class="pv-sub">Click a row for its full texts and where its scores sit; click a '
              'column to sort; click a histogram bar or a table cell to filter. "Export ids" '
              'writes the ids of the pairs shown, for <code>prefsift data subset FILE --ids '
              'IDS.txt --out OUT</code>.</p>')
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>body{{margin:1em "
            f"1.5em;font-family:system-ui,sans-serif}}"
            "h1{font-size:1.4em;margin:.2em 0}.pv-sub{color:#555;margin:.2em 0 "
            ".5em;font-size:.92em}</style></head>"
            f"<body>{head}{section(table)}</body></html>\n")
