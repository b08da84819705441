"""Show the pairs: a browser of every input pair with its texts, its scores, what each selection
rule kept or dropped, and why a row could not be used; as its own page (`prefsift view`) or a
section of report.html. Everything inline: one file, no server, no network."""

from .examples import examples_html, flipped_kept_html
from .frame import ViewTable, build_table, check_same_pairs, masks_from_selection
from .page import page, section

__all__ = ["ViewTable", "build_table", "check_same_pairs", "examples_html", "flipped_kept_html",
           "masks_from_selection", "page", "section"]
