"""The view's table and its embedded data against the files, read here with json and pandas; the
API's and the CLI's inputs and errors; the round trip ids → `prefsift data subset` → a TRL file."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

import prefsift
from prefsift.core.errors import ConfigError

from .synthetic import make_run


def _embedded(page) -> dict:
    text = page.read_text(encoding="utf-8")
    m = re.search(r'<script type="application/json" id="pv-data">(.*?)</script>', text, re.S)
    return json.loads(m.group(1))


def _column(data, name, role=None):
    return next(c for c in data["columns"]
                if c["name"] == name and (role is None or c["role"] == role))


def _cell(col, i):
    return col["levels"][col["codes"][i]] if "codes" in col else col["values"][i]


@pytest.mark.parametrize("conversational", [False, True])
def test_every_pair_every_score_and_rule_is_in_the_page(tmp_path, conversational):
    exp = make_run(tmp_path, conversational=conversational)
    page = prefsift.view(tmp_path)
    assert page == tmp_path / "view.html"
    text = page.read_text(encoding="utf-8")
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//',
                         text), "the page must not reach the network"
    data = _embedded(page)
    rows, table, sel = exp["rows"], exp["table"], exp["selection"]
    assert data["n"] == len(rows) == len(table)
    assert _column(data, "id")["values"] == [r["id"] for r in rows]
    for name in ("prompt", "rejected"):
        col = _column(data, name)
        for i, r in enumerate(rows):
            shown = _cell(col, i)
            want = (r[name] if isinstance(r[name], str)
                    else [[m["role"], m["content"]] for m in r[name]])
            assert shown == want
    for c in ("if", "lossdiff", "irm"):
        got = np.array([np.nan if v is None else v for v in _column(data, c, "score")["values"]],
                       dtype=float)
        np.testing.assert_allclose(got, table[c].to_numpy(), rtol=1e-5)
        assert np.array_equal(np.isnan(got), table[c].isna().to_numpy())
    for rule in ("full", "tif", "lossdiff_irm"):
        bits = _column(data, rule, "rule")["bits"]
        assert [b == "1" for b in bits] == sel[rule].tolist()
    reason = _column(data, "reason", "category")
    want = np.where(table["valid"], "", table["reason_code"])
    assert [_cell(reason, i) for i in range(len(rows))] == list(want) and (want != "").sum() == 3
    pair_type = _column(data, "pair_type", "category")
    assert [_cell(pair_type, i) for i in range(len(rows))] == [r["pair_type"] for r in rows]


def test_no_text_can_close_the_data_element(tmp_path):
    exp = make_run(tmp_path)
    rows = exp["rows"]
    rows[0]["chosen"] = "</script><script>alert(1)</script>"
    exp["train"].write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    page = prefsift.view(tmp_path, out=tmp_path / "v.html")
    assert "alert(1)</script>" not in page.read_text(encoding="utf-8")
    assert _cell(_column(_embedded(page), "chosen"), 0) == rows[0]["chosen"]


def test_scores_and_train_and_a_rule_of_your_own(tmp_path):
    exp = make_run(tmp_path)
    page = prefsift.view(scores=tmp_path / "score" / "scores.parquet", train=exp["train"],
                         rules=["irm"], keep=0.5, out=tmp_path / "x" / "v.html")
    data = _embedded(page)
    kept = np.array([b == "1" for b in _column(data, "irm", "rule")["bits"]])
    table = exp["table"]
    assert data["keep"] == 0.5 and not kept[~table["valid"].to_numpy()].any()
    ranks = table["irm"].rank(pct=True).to_numpy()
    assert abs(kept.sum() - 0.5 * table["valid"].sum()) <= 2
    assert ranks[kept].min() > 0.2 and ranks[kept].max() < 0.8  # the middle window of IRM


def test_bad_inputs_name_the_flag(tmp_path):
    exp = make_run(tmp_path)
    with pytest.raises(ConfigError, match="scores"):
        prefsift.view()
    with pytest.raises(ConfigError, match="both"):
        prefsift.view(tmp_path, scores=tmp_path / "score" / "scores.parquet")
    with pytest.raises(ConfigError, match="train"):  # no score_config.json next to it
        prefsift.view(scores=tmp_path / "score" / "scores.parquet")
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps(r) + "\n" for r in exp["rows"][:10]), encoding="utf-8")
    with pytest.raises(ConfigError, match="--train|train.*10 rows"):
        prefsift.view(scores=tmp_path / "score" / "scores.parquet", train=other)
    with pytest.raises(ConfigError, match="rule"):
        prefsift.view(tmp_path, rules=["no_such_rule"])
    with pytest.raises(ConfigError, match="run"):
        prefsift.view(tmp_path / "missing")


def test_cli_and_the_round_trip_to_a_file_trl_reads(tmp_path):
    """Ids of a filter (the pairs LossDiff-IRM kept that are flipped, computed here) → `prefsift
    data subset --ids` → a file of exactly those pairs in TRL's format."""
    exp = make_run(tmp_path)
    cli = [sys.executable, "-m", "prefsift", "--threads", "1"]
    proc = subprocess.run(cli + ["view", str(tmp_path), "--out", str(tmp_path / "v.html")],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "v.html" in proc.stdout, proc.stderr
    bad = subprocess.run(cli + ["view"], capture_output=True, text=True)
    assert bad.returncode == 2 and "error: --scores" in bad.stderr
    table, sel = exp["table"], exp["selection"]
    mask = sel["lossdiff_irm"].to_numpy() & (table["pair_type"] == "flipped").to_numpy()
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(table.loc[mask, "id"]) + "\n")
    out = tmp_path / "subset.jsonl"
    proc = subprocess.run(cli + ["data", "subset", str(exp["train"]), "--ids", str(ids), "--out",
                                 str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    written = [json.loads(x) for x in out.read_text().splitlines()]
    assert ([r["id"] for r in written] == table.loc[mask, "id"].tolist()
            and len(written) == mask.sum() > 0)
    from datasets import load_dataset

    ds = load_dataset("json", data_files=str(out), split="train")
    assert {"prompt", "chosen", "rejected"} <= set(ds.column_names) and len(ds) == mask.sum()


def test_a_runs_treatment_weights_and_swaps_are_columns_of_the_view(tmp_path):
    """treatments.parquet (what a run's treatment arms train with): each weight a score column, each
    swap a filter menu, pair by pair as written; a file of other pairs is refused."""
    exp = make_run(tmp_path)
    table = exp["table"]
    rng = np.random.default_rng(1)
    tr = table[["id", "valid"]].copy()
    tr["soft_tif:weight"] = np.where(table["valid"], rng.uniform(0, 1, len(table)), 0.0)
    tr["lossdiff_irm_relabel:swapped"] = np.arange(len(table)) % 7 == 0
    tr.to_parquet(tmp_path / "treatments.parquet")
    data = _embedded(prefsift.view(tmp_path))
    got = np.array(_column(data, "soft_tif:weight", "score")["values"], dtype=float)
    np.testing.assert_allclose(got, tr["soft_tif:weight"].to_numpy(), rtol=1e-5)
    swapped = _column(data, "lossdiff_irm_relabel:swapped", "category")
    assert ([_cell(swapped, i) == "swapped" for i in range(len(table))]
            == tr["lossdiff_irm_relabel:swapped"].tolist())
    tr.iloc[::-1].to_parquet(tmp_path / "treatments.parquet")
    with pytest.raises(ConfigError, match="treatments.parquet is not of the pairs"):
        prefsift.view(tmp_path)
