"""The pairs browser in a real browser (headless Chromium): sort, filter by a rule, search a word,
click a histogram bar, filter by a reason, open a row, export ids and JSONL; every count and id
shown is checked against the scores and selection tables and the pairs file, computed here with
pandas."""

from __future__ import annotations

import json

import numpy as np
import pytest

import prefsift

from .chromium import chromium, needs_chromium, run_harness
from .synthetic import make_run

WORD = "quantum"
HARNESS = """
var q=function(s){return document.querySelector(s);}, out={}, saved=[];
var ids=function(){return Array.from(document.querySelectorAll('#pv-table tbody tr[data-id]')).map(function(t){return t.getAttribute('data-id');});};
var count=function(){return +q('#pv-count').getAttribute('data-shown');};
var change=function(sel,v){var s=q(sel);s.value=v;s.dispatchEvent(new Event('change',{bubbles:true}));};
prefsiftView.save=function(name,text){saved.push({name:name,text:text});};
out.total=q('#pv-count').textContent;
q('#pv-table th[data-col="if"]').click(); out.sortAsc=ids();
q('#pv-table th[data-col="if"]').click(); out.sortDesc=ids();
change('#pv-rule-lossdiff_irm','kept'); out.ruleCount=count(); out.ruleText=q('#pv-count').textContent;
q('#pv-export-ids').click(); out.ruleExport=saved[saved.length-1];
var s=q('#pv-search'); s.value='%WORD%'; s.dispatchEvent(new KeyboardEvent('keydown',{key:'Enter'}));
out.searchCount=count(); q('#pv-export-ids').click(); out.searchExport=saved[saved.length-1];
q('#pv-export-jsonl').click(); out.jsonl=saved[saved.length-1];
var tr=q('#pv-table tbody tr[data-id]'); out.opened=tr.getAttribute('data-id'); tr.querySelector('td.t').click();
var d=q('#pv-detail'); out.detail={id:d.querySelector('h3').textContent,
  boxes:Array.from(d.querySelectorAll('.pv-box')).map(function(b){return b.textContent;}),
  scores:Array.from(d.querySelectorAll('.pv-score')).map(function(b){return b.textContent;})};
q('#pv-close').click(); out.closed=q('#pv-overlay').hidden;
q('#pv-reset').click(); out.resetCount=count();
q('#pv-hist-if rect.hit[data-bin="0"]').dispatchEvent(new MouseEvent('click',{bubbles:true}));
out.binCount=count(); out.binRange=prefsiftView.state.ranges['if'];
q('#pv-reset').click(); change('#pv-cat-reason','identical'); out.reasonIds=prefsiftView.shownIds();
done(out);
""".replace("%WORD%", WORD)  # noqa: E501  (a script, as the page runs it)


def _if_order(table, mask, descending):
    """Row positions of `mask` sorted by IF (NaN last, ties in file order), as pandas does it
    here."""
    sub = table[mask]
    return sub.sort_values("if", ascending=not descending, na_position="last",
                           kind="stable")["id"].tolist()


@needs_chromium
@pytest.mark.parametrize("conversational", [False, True])
def test_the_view_in_chromium_matches_pandas(tmp_path, conversational):
    exp = make_run(tmp_path / "run", conversational=conversational)
    page = prefsift.view(tmp_path / "run")
    out = run_harness(page, HARNESS, tmp_path)
    table, sel, rows = exp["table"], exp["selection"], exp["rows"]
    n = len(table)
    assert out["total"].startswith(f"{n} of {n} pairs")
    every = np.ones(n, bool)
    # sort: the first page by IF, ascending then descending
    assert out["sortAsc"] == _if_order(table, every, False)[:50]
    assert out["sortDesc"] == _if_order(table, every, True)[:50]
    # filter by a rule: the count, its share, and the exported ids (in the order shown)
    kept = sel["lossdiff_irm"].to_numpy()
    assert out["ruleCount"] == kept.sum()
    assert f"({100 * kept.sum() / n:.1f}%)" in out["ruleText"]
    assert out["ruleExport"]["text"].split() == _if_order(table, kept, True)
    # search a word, on top of the rule filter: in any text or the id, case-insensitive
    def texts(r):
        return " ".join(json.dumps(r[k]) if not isinstance(r[k], str) else r[k]
                        for k in ("prompt", "chosen", "rejected"))
    has = np.array([WORD in texts(r).lower() or WORD in r["id"].lower() for r in rows])
    assert 0 < out["searchCount"] == (kept & has).sum() < n
    assert out["searchExport"]["text"].split() == _if_order(table, kept & has, True)
    lines = [json.loads(x) for x in out["jsonl"]["text"].splitlines()]
    assert [x["id"] for x in lines] == _if_order(table, kept & has, True)
    by_id = {r["id"]: r for r in rows}
    for x in lines:
        assert (x["prompt"] == by_id[x["id"]]["prompt"]
                and x["rejected"] == by_id[x["id"]]["rejected"])
        assert (x["kept:lossdiff_irm"] is True
                and np.isclose(x["if"], table.set_index("id").at[x["id"], "if"], rtol=1e-5))
    # open a row: its full texts and where its IF sits
    opened = out["opened"]
    assert out["detail"]["id"] == opened
    r = by_id[opened]
    if conversational:
        assert r["prompt"][0]["content"] in out["detail"]["boxes"][0]
    else:
        assert (out["detail"]["boxes"]
                == [f"prompt{r['prompt']}", f"chosen{r['chosen']}", f"rejected{r['rejected']}"])
    v = table.set_index("id").at[opened, "if"]
    finite = table["if"].dropna().to_numpy()
    assert f"percentile {100 * (finite < v).mean():.1f}" in out["detail"]["scores"][0]
    assert out["closed"] is True and out["resetCount"] == n
    # a histogram bar: the pairs with IF in its range
    hi = out["binRange"][1]
    assert out["binCount"] == (table["if"] <= hi).sum() > 0
    # a reason
    assert out["reasonIds"] == table.loc[table["reason_code"] == "identical", "id"].tolist()


@needs_chromium
def test_the_view_paints(tmp_path):
    import matplotlib.image as mpimg

    make_run(tmp_path / "run")
    page = prefsift.view(tmp_path / "run")
    shot = tmp_path / "shot.png"
    proc = chromium(f"--screenshot={shot}", "--window-size=1300,900", "--hide-scrollbars",
                    page.resolve().as_uri())
    assert shot.exists(), proc.stderr[-2000:]
    img = mpimg.imread(shot)[..., :3]
    assert len(np.unique((img.reshape(-1, 3) * 255).astype(np.uint8), axis=0)) > 20
    assert (img < 0.5).mean() > 0.001


@needs_chromium
def test_the_report_shows_pairs_and_its_links_filter_the_browser(tmp_path):
    """report.html with the pairs: the examples of IF's bottom and top, and the flipped pairs each
    rule kept; clicking a rule's link shows exactly those pairs (pandas), clicking a card opens that
    pair."""
    from prefsift.browser.report import report_extras
    from prefsift.data import load_pairs
    from prefsift.eval.report import write_report

    exp = make_run(tmp_path / "run")
    table, sel = exp["table"], exp["selection"]
    masks = {r: sel[r].to_numpy() for r in ("full", "tif", "lossdiff_irm")}
    page = write_report(tmp_path / "rep", table, selections=masks,
                        extras=report_extras(table, load_pairs(exp["train"]), masks, keep=0.6))
    text = page.read_text(encoding="utf-8")
    assert '<section id="pairs">' in text and "Pairs at the bottom, middle and top of if" in text
    order = table.sort_values("if", kind="stable")["id"].dropna()
    bottom = table.loc[table["if"].notna()].sort_values("if", kind="stable")["id"].tolist()[:3]
    assert all(f'data-pv-open="{i}"' in text for i in bottom)
    assert len(order)
    out = run_harness(page, """
      var q=function(s){return document.querySelector(s);}, o={};
      var link=Array.from(document.querySelectorAll('#lab [data-pv-filter]')).filter(function(a){return a.getAttribute('data-pv-filter').indexOf('lossdiff_irm')>=0;})[0];
      link.click(); o.shown=prefsiftView.shownIds();
      var card=q('#histograms [data-pv-open]'); o.card=card.getAttribute('data-pv-open'); card.click();
      o.detail=q('#pv-detail h3').textContent; done(o);""", tmp_path)  # noqa: E501
    want = table.loc[sel["lossdiff_irm"].to_numpy() & (table["pair_type"] == "flipped").to_numpy(),
                     "id"].tolist()
    assert out["shown"] == want and len(want) > 0
    assert out["detail"] == out["card"] == bottom[0]
