"""Ratings that are not numbers: the pair is still scored, but the score_gap baseline leaves it out
(instead of sorting a NaN or a string to one end), and `prefsift data check` names row and field."""

import csv
import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from prefsift.cli import main
from prefsift.data import load_pairs
from prefsift.selection.rules import apply_rule

GOOD = [(4.5, 2.0), (3, 1), (5.0, 4.75)]  # (score_chosen, score_rejected)


def _rows(bad):
    rows = [{"prompt": f"Q{i}?", "chosen": f"good answer {i}", "rejected": f"bad answer {i}",
             "score_chosen": c, "score_rejected": r} for i, (c, r) in enumerate(GOOD)]
    for i, (field, value) in enumerate(bad):
        row = {"prompt": f"bad Q{i}?", "chosen": "yes", "rejected": "no", "score_chosen": 1.0,
               "score_rejected": 0.0}
        if value == "<missing>":
            del row[field]
        else:
            row[field] = value
        rows.append(row)
    return rows


def _jsonl(path, rows):
    # json.dumps writes NaN/Infinity literals, which Python's (and pandas') JSON readers accept.
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


BAD = [("score_chosen", float("nan")), ("score_rejected", float("inf")), ("score_chosen", "high"),
       ("score_rejected", "<missing>"), ("score_chosen", None), ("score_rejected", True),
       ("score_chosen", [1])]


def test_bad_ratings_are_flagged_kept_and_left_out_of_score_gap_only(tmp_path):
    pairs = load_pairs(_jsonl(tmp_path / "p.jsonl", _rows(BAD)))
    # every pair still usable
    assert len(pairs) == len(GOOD) + len(BAD) and all(r.valid for r in pairs.rows)
    flagged = pairs.bad_rating_rows
    assert [r.index for r in flagged] == list(range(len(GOOD), len(GOOD) + len(BAD)))
    assert [r.rating_field for r in flagged] == [f for f, _ in BAD]
    assert all(f"'{r.rating_field}'" in r.rating_problem for r in flagged)
    gaps = pairs.rating_gaps()
    np.testing.assert_array_equal(gaps[: len(GOOD)], [c - r for c, r in GOOD])  # computed by hand
    assert np.isnan(gaps[len(GOOD):]).all()
    frame = pairs.to_frame()
    assert (frame["rating_problem"] != "").tolist() == [False] * len(GOOD) + [True] * len(BAD)

    # The baseline keeps the largest gaps among the rated pairs only; a bad-rating row is never
    # kept, whatever the kept fraction.
    table = frame.assign(score_gap=gaps)
    for keep in (0.2, 0.5, 1.0):
        mask = apply_rule(table, "score_gap", keep)
        assert not mask[len(GOOD):].any()
    assert apply_rule(table, "score_gap", 1.0)[: len(GOOD)].all()
    top = apply_rule(table, "score_gap", 1 / 3)
    assert top.tolist()[: len(GOOD)] == [True, False, False]  # gap 2.5 > 2 > 0.25


def test_csv_numbers_are_text_but_still_numbers(tmp_path):
    path = tmp_path / "p.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["prompt", "chosen", "rejected", "score_chosen", "score_rejected"])
        w.writerow(["Q?", "a", "b", "4.5", "2"])
        w.writerow(["R?", "a", "b", "", "2"])
        w.writerow(["S?", "a", "b", "n/a", "2"])
    pairs = load_pairs(path)
    assert pairs.rating_gaps()[0] == 2.5 and math.isnan(pairs.rating_gaps()[1])
    assert ([(r.index, r.rating_field) for r in pairs.bad_rating_rows]
            == [(1, "score_chosen"), (2, "score_chosen")])


def test_parquet_nan_rating(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist([{"prompt": "Q?", "chosen": "a", "rejected": "b",
                                          "score_chosen": 1.0, "score_rejected": float("nan")},
                                         {"prompt": "R?", "chosen": "a", "rejected": "b",
                                          "score_chosen": 1.0, "score_rejected": 0.5}]), path)
    pairs = load_pairs(path)
    assert [r.rating_field for r in pairs.bad_rating_rows] == ["score_rejected"]
    assert pairs.rating_gaps()[1] == 0.5


def test_data_check_names_row_and_field_and_exits_1(tmp_path, capsys):
    path = _jsonl(tmp_path / "p.jsonl", _rows([("score_chosen", float("nan"))]))
    assert main(["data", "check", str(path)]) == 1
    out = capsys.readouterr().out
    pairs = load_pairs(path)
    bad = pairs.rows[len(GOOD)]
    line = next(l for l in out.splitlines() if "[bad_rating]" in l)
    assert (f"line {len(GOOD) + 1}" in line and f"id={bad.id}" in line
            and "'score_chosen' is NaN" in line)
    ok = _jsonl(tmp_path / "ok.jsonl", _rows([]))
    assert main(["data", "check", str(ok)]) == 0
