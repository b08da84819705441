"""The Python API example of docs/guide.md runs as written, and scoring models held in memory gives
the same table as the pipeline's own scoring of the same models read from disk."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import prefsift

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide.md"
pytestmark = pytest.mark.slow


def _example() -> str:
    text = GUIDE.read_text(encoding="utf-8")
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_runs_and_matches_the_pipeline(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(_example(), "docs/guide.md (Python API)", "exec"), scope)
    out = capsys.readouterr().out
    assert "kept" in out and "lossdiff_irm" in out
    in_memory = scope["table"]
    # the run's own scores stage
    from_disk = pd.read_parquet(tmp_path / "runs/api/score/scores.parquet")
    assert list(in_memory["id"]) == list(from_disk["id"]) and len(in_memory) == len(scope["pairs"])
    ok = from_disk["valid"].to_numpy()
    for col in ("irm", "lossdiff", "if", "loss_theta", "loss_theta_val"):
        np.testing.assert_array_equal(in_memory.loc[ok, col].to_numpy(),
                                      from_disk.loc[ok, col].to_numpy())
    sel = pd.read_parquet(tmp_path / "runs/api/selection.parquet")
    assert scope["mask"].tolist() == sel["lossdiff_irm"].tolist()
    written = (tmp_path / "runs/api/selected.jsonl").read_text().splitlines()
    assert len(written) == scope["n"] == int(scope["mask"].sum())


def test_rows_in_memory_behave_as_a_file(tmp_path):
    rows = [{"prompt": "Q?", "chosen": "yes", "rejected": "no"}, {"prompt": "R?", "chosen": "a"},
            "not a dict"]
    pairs = prefsift.load_pairs(rows)
    assert len(pairs) == 3 and [r.valid for r in pairs.rows] == [True, False, False]
    assert pairs.rows[1].code == "missing_field" and pairs.rows[2].code == "malformed"
    path = tmp_path / "p.jsonl"
    path.write_text("".join(__import__("json").dumps(r) + "\n" for r in rows[:2]))
    assert prefsift.load_pairs(path).ids == pairs.ids[:2]  # the same content, the same id
    assert prefsift.write_subset(pairs, [True, True, True], tmp_path / "o.jsonl") == 1


def test_api_documents_every_argument():
    import inspect

    doc = prefsift.score.__doc__
    for name in inspect.signature(prefsift.score).parameters:
        assert f"{name}:" in doc or f"**{name}" in doc, name
