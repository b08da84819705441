"""The audit's panel in the pairs browser: the page's embedded findings against the audit, and in
headless Chromium (as tests/browser does) a finding's button shows exactly its planted rows, a
second click every pair, and an opened pair lists its findings; `prefsift view --audit` on a scores
table shows the same panel; an audit of other pairs is refused."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import prefsift
from prefsift.core.errors import ConfigError

from ..browser.chromium import needs_chromium, run_harness
from .files import careful_pairs, ultrafeedback

HARNESS = """
var q=function(s){return document.querySelector(s);}, out={};
var count=function(){return +q('#pv-count').getAttribute('data-shown');};
out.total=count();
out.panel=q('#pv-audit').textContent;
q('[data-finding="duplicates.near_identical_answers"]').click();
out.nearIds=prefsiftView.shownIds(); out.chip=q('#pv-active').textContent;
q('#pv-table tbody tr[data-id] td.t').click(); out.detail=q('#pv-dfindings').textContent;
q('#pv-close').click();
q('[data-finding="duplicates.near_identical_answers"]').click(); out.again=count();
q('[data-finding="ratings.ties"]').click(); out.tieIds=prefsiftView.shownIds();
q('#pv-reset').click(); out.reset=count();
done(out);
"""


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    d = tmp_path_factory.mktemp("uf-view")
    val = careful_pairs(d / "validation.jsonl")
    info = ultrafeedback(d / "train.jsonl", faults=True, validation_prompts=val)
    report = prefsift.audit(
        d / "train.jsonl",
        validation=d / "validation.jsonl",
        json_out=d / "audit.json",
        html_out=d / "audit.html",
    )
    return d, info, report


def _embedded(page) -> dict:
    m = re.search(
        r'<script type="application/json" id="pv-data">(.*?)</script>', page.read_text(), re.S
    )
    return json.loads(m.group(1))


def test_the_page_holds_every_pair_and_every_finding(audited):
    d, info, report = audited
    data = _embedded(d / "audit.html")
    ids = [r["id"] for r in info["rows"]]
    assert data["n"] == info["n_rows"]
    assert [f["key"] for f in data["audit"]] == [f.key for f in report.findings]
    col = next(c for c in data["columns"] if c["role"] == "finding" and c["name"] == "ratings.ties")
    assert [i for i, b in enumerate(col["bits"]) if b == "1"] == sorted(info["ties"])
    words = next(c for c in data["columns"] if c["name"] == "chosen_words")
    first = info["rows"][0]["chosen"][1]["content"]
    assert (
        words["values"][0] == len(first.split()) and data["columns"][0]["values"][: len(ids)] == ids
    )


@needs_chromium
def test_a_findings_button_filters_the_table(audited, tmp_path):
    d, info, _ = audited
    out = run_harness(d / "audit.html", HARNESS, tmp_path)
    ids = [r["id"] for r in info["rows"]]
    n = info["n_rows"]
    assert out["total"] == n and out["again"] == n and out["reset"] == n
    assert (
        "[length] chosen is the longer answer" in out["panel"] and "below threshold" in out["panel"]
    )
    assert out["nearIds"] == [ids[i] for i in sorted(info["near"])]
    assert "duplicates.near_identical_answers" in out["chip"]
    assert "duplicates.near_identical_answers" in out["detail"]
    assert out["tieIds"] == [ids[i] for i in sorted(info["ties"])]


def test_view_of_a_scores_table_with_the_audit(audited):
    d, info, report = audited
    pairs = prefsift.load_pairs(d / "train.jsonl")
    table = pairs.to_frame()[["id", "valid", "reason"]].copy()
    table["irm"] = np.where(table["valid"], np.linspace(-1, 1, len(table)), np.nan)
    table.to_parquet(d / "scores.parquet")
    page = prefsift.view(
        scores=d / "scores.parquet",
        train=d / "train.jsonl",
        audit=d / "audit.json",
        out=d / "v.html",
    )
    data = _embedded(page)
    col = next(
        c for c in data["columns"] if c["role"] == "finding" and c["name"] == "ratings.chosen_below"
    )
    assert [i for i, b in enumerate(col["bits"]) if b == "1"] == sorted(info["below"])
    other = d / "other.json"
    other.write_text(json.dumps({"findings": [{"key": "x", "ids": ["not-a-pair"]}]}))
    with pytest.raises(ConfigError, match="not in the view's pairs"):
        prefsift.view(
            scores=d / "scores.parquet", train=d / "train.jsonl", audit=other, out=d / "w.html"
        )
