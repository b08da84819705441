"""A small run directory made here: a pairs file (standard and conversational rows, a few that
cannot be used), a scores table over it and a selection table, without any model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

WORDS = ["apple", "river", "quantum", "violet", "engine", "harbor", "saddle", "lantern", "meadow",
         "copper"]
TYPES = ["clean", "flipped", "near_tie"]


def write_pairs(path: Path, n: int = 240, seed: int = 0,
                conversational: bool = False) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        w = rng.choice(WORDS, size=3)
        prompt, chosen, rejected = f"Tell me about {w[0]} number {i}.", (f"A {w[1]} answer "
                                                                         f"<b>{i}</b> & more."), \
            f"A {w[2]} reply {i}."
        if conversational:
            row = {"id": f"c{i:04d}", "prompt": [{"role": "user", "content": prompt}],
                   "chosen": [{"role": "assistant", "content": chosen}],
                   "rejected": [{"role": "assistant", "content": rejected}]}
        else:
            row = {"id": f"p{i:04d}", "prompt": prompt, "chosen": chosen, "rejected": rejected}
        row["pair_type"] = TYPES[i % 3]
        row["score_chosen"], row["score_rejected"] = (float(rng.uniform(5, 9)),
                                                      float(rng.uniform(1, 6)))
        rows.append(row)
    for i in (5, 77):  # rows that cannot be used: an empty answer, the same answer twice
        rows[i]["chosen"] = [] if conversational else ""
    rows[150]["rejected"] = rows[150]["chosen"]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return rows


def make_run(folder: Path, n: int = 240, seed: int = 0, conversational: bool = False) -> dict:
    """folder/lab/train.jsonl, folder/score/scores.parquet, folder/selection.parquet; returns the
    expected values computed here (pandas)."""
    from prefsift.data import load_pairs

    (folder / "lab").mkdir(parents=True, exist_ok=True)
    (folder / "score").mkdir(parents=True, exist_ok=True)
    train = folder / "lab" / "train.jsonl"
    rows = write_pairs(train, n, seed, conversational)
    table = load_pairs(train).to_frame()  # id, valid, reason, and the file's other columns
    rng = np.random.default_rng(seed + 1)
    valid = table["valid"].to_numpy()
    for c, scale in (("if", 3.0), ("lossdiff", 0.1), ("irm", 1.0)):
        v = rng.normal(scale=scale, size=len(table))
        v[~valid] = np.nan
        table[c] = v
    table.to_parquet(folder / "score" / "scores.parquet")
    ranks = table["if"].rank(pct=True)
    sel = table[["id", "valid", "reason"]].copy()
    sel["full"] = valid
    sel["tif"] = valid & ranks.between(0.2, 0.8).to_numpy()
    sel["lossdiff_irm"] = valid & table["lossdiff"].rank(pct=True).between(0.1, 0.9).to_numpy() & \
        table["irm"].rank(pct=True).between(0.1, 0.9).to_numpy()
    sel.to_parquet(folder / "selection.parquet")
    return {"rows": rows, "table": table, "selection": sel, "train": train}
