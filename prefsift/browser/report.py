"""The pairs in report.html: the browser over the run's training pairs as a section of its own, and
example pairs next to the score plots (the bottom, middle and top of IF; on the lab, the flipped
pairs each rule kept), whose links filter the browser."""

from __future__ import annotations

from .examples import examples_html, flipped_kept_html
from .frame import build_table
from .page import section

INTRO = ("<p>Every training pair of the run, with its scores and what each arm's selection kept "
         "(●) or dropped (·). Click a row for its full texts and where its scores sit; click a "
         "column to sort; click a histogram bar or a cell of the kept-by-type table to filter; "
         "export the ids shown for <code>prefsift data subset --ids</code>.</p>")


def report_extras(scores, pairs, masks: dict, keep: float | None = None) -> dict[str, str]:
    """{section id: HTML} for `eval.report.write_report(extras=...)`: "pairs" (the browser), and the
    examples for the "histograms" and "lab" sections."""
    table = build_table(scores, pairs, masks, keep=keep)
    return {"pairs": section(table, INTRO, per_page=25), "histograms": examples_html(table),
            "lab": flipped_kept_html(table)}
