"""Pairs next to the report's plots: the bottom, middle and top of a score, and, on the lab, the
flipped pairs each rule kept. Each card opens the pair in the browser; each heading's link filters
the browser to the pairs it speaks of."""

from __future__ import annotations

import html
import json

import numpy as np

from .frame import ViewTable

PER_PLACE = 3
SHORT = 160


def _short(value) -> str:
    if isinstance(value, list):
        value = " | ".join(f"{m.get('role', '')}: {m.get('content', '')}" if isinstance(m, dict)
                           else str(m) for m in value)
    text = "" if value is None else str(value)
    return html.escape(text[:SHORT] + ("…" if len(text) > SHORT else ""))


def _card(table: ViewTable, i: int, score: str | None) -> str:
    f = table.frame
    rid = str(f["id"].iat[i])
    value = f"{score} = {f[score].iat[i]:.4g}<br>" if score else ""
    return (f'<div class="card"><a href="#pv" '
            f'data-pv-open="{html.escape(rid)}"><b>{html.escape(rid)}</b></a><br>'
            f"{value}<i>prompt</i> <div>{_short(f['prompt'].iat[i])}</div><i>chosen</i> "
            f"<div>{_short(f['chosen'].iat[i])}</div><i>rejected</i> "
            f"<div>{_short(f['rejected'].iat[i])}</div></div>")


def _link(text: str, spec: dict) -> str:
    return f'<a href="#pv" data-pv-filter="{html.escape(json.dumps(spec))}">{html.escape(text)}</a>'


def example_score(table: ViewTable) -> str | None:
    """The score the examples are drawn on: IF, else LossDiff, else IRM, the first one with
    values."""
    for c in ("if", "lossdiff", "irm"):
        if c in table.scores and np.isfinite(table.frame[c].to_numpy(dtype=float)).any():
            return c
    return None


def places(values: np.ndarray, k: int = PER_PLACE) -> dict[str, np.ndarray]:
    """Row positions of the k smallest, the k around the median and the k largest finite values."""
    ok = np.flatnonzero(np.isfinite(values))
    order = ok[np.argsort(values[ok], kind="stable")]
    mid = max(0, len(order) // 2 - k // 2)
    return {"bottom": order[:k], "middle": order[mid:mid + k], "top": order[::-1][:k]}


def examples_html(table: ViewTable) -> str:
    """The pairs at the bottom, middle and top of IF (or LossDiff, or IRM)."""
    score = example_score(table)
    if score is None:
        return ""
    v = table.frame[score].to_numpy(dtype=float)
    out = [f"<h3>Pairs at the bottom, middle and top of {html.escape(score)}</h3>"]
    for place, rows in places(v).items():
        ids = [str(table.frame["id"].iat[i]) for i in rows]
        out.append(f"<p><b>{place}</b> "
                   f"({_link(f'show these {len(ids)} in the pairs browser', {'ids': ids})})</p>"
                   f'<div class="pv-ex">{"".join(_card(table, i, score) for i in rows)}</div>')
    return "".join(out)


def flipped_kept_html(table: ViewTable, column: str = "pair_type", kind: str = "flipped") -> str:
    """On the lab: for each rule, how many flipped pairs it kept, and a few of them."""
    f = table.frame
    if column not in f or not table.rules or not (f[column] == kind).any():
        return ""
    flipped = (f[column] == kind).to_numpy()
    out = [f"<h3>The {kind} pairs each rule kept (of {int(flipped.sum())})</h3>"]
    for rule in table.rules:
        kept = np.flatnonzero(flipped & f[table.rule_column(rule)].to_numpy(dtype=bool))
        spec = {"rules": {rule: "kept"}, "cats": {column: kind}}
        out.append(f"<p><b>{html.escape(rule)}</b> kept {len(kept)} "
                   f"({_link('show them in the pairs browser', spec)})</p>")
        if len(kept):
            cards = "".join(_card(table, i, example_score(table)) for i in kept[:PER_PLACE])
            out.append(f'<div class="pv-ex">{cards}</div>')
    return "".join(out)
