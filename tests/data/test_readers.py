"""Every file format x every TRL layout: load, write back, compare with an independent reader."""

import csv
import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Dataset, load_from_disk

from prefsift.data import extract_implicit_prompt_text, load_pairs, write_pairs

LAYOUTS = ["standard_explicit", "standard_implicit", "conversational_explicit",
           "conversational_implicit", "ultrafeedback"]
FORMATS = ["jsonl", "json", "json_columns", "parquet", "csv", "hf"]


def _records(data_dir, layout):
    path = data_dir / "good" / f"{layout}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _csv_cell(v):
    return json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else str(v)


def _write_independently(records, fmt, path):
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                        encoding="utf-8")
    elif fmt == "json":
        path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    elif fmt == "json_columns":
        cols = list(records[0])
        path.write_text(json.dumps({c: [r[c] for r in records] for c in cols}), encoding="utf-8")
    elif fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(records), path)
    elif fmt == "csv":
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(list(records[0]))
            for r in records:
                w.writerow([_csv_cell(v) for v in r.values()])
    elif fmt == "hf":
        Dataset.from_list(records).save_to_disk(str(path))


def _read_independently(fmt, path):
    if fmt == "jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if fmt == "json":
        return json.loads(path.read_text(encoding="utf-8"))
    if fmt == "json_columns":
        obj = json.loads(path.read_text(encoding="utf-8"))
        return [dict(zip(obj, vals)) for vals in zip(*obj.values())]
    if fmt == "parquet":
        return pq.read_table(path).to_pylist()
    if fmt == "csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False).to_dict("records")
    if fmt == "hf":
        return load_from_disk(str(path)).to_list()


SUFFIX = {"jsonl": ".jsonl", "json": ".json", "json_columns": ".json", "parquet": ".parquet",
          "csv": ".csv", "hf": ""}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_round_trip_reproduces_content(data_dir, tmp_path, layout, fmt):
    records = _records(data_dir, layout)
    src = tmp_path / f"in{SUFFIX[fmt]}"
    _write_independently(records, fmt, src)
    pairs = load_pairs(src)
    assert not pairs.invalid_rows, pairs.bad_rows_report()
    assert pairs.kind == ("conversational" if layout.startswith(("conv", "ultra")) else "standard")
    assert pairs.implicit_prompt == layout.endswith("implicit")
    out = tmp_path / f"out{SUFFIX[fmt]}"
    assert write_pairs(pairs, out) == len(records)
    assert _read_independently(fmt, out) == _read_independently(fmt, src)
    # A subset comes back in the same format with the same columns.
    sub = tmp_path / f"sub{SUFFIX[fmt]}"
    write_pairs(pairs, sub, ids=pairs.ids[1:3])
    assert _read_independently(fmt, sub) == _read_independently(fmt, src)[1:3]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_ids_are_the_same_in_every_format(data_dir, tmp_path, layout):
    records = _records(data_dir, layout)
    ids = set()
    for fmt in FORMATS:
        src = tmp_path / f"{fmt}{SUFFIX[fmt]}"
        _write_independently(records, fmt, src)
        ids.add(tuple(load_pairs(src).ids))
    assert len(ids) == 1


def test_jsonl_rows_come_back_byte_for_byte(data_dir, tmp_path):
    src = data_dir / "bad" / "corpus.jsonl"
    out = tmp_path / "all.jsonl"
    write_pairs(load_pairs(src), out, include_invalid=True)
    assert out.read_bytes() == src.read_bytes()


@pytest.mark.parametrize("layout", ["standard_implicit", "conversational_implicit"])
def test_implicit_prompt_matches_trl(data_dir, layout):
    from trl.data_utils import extract_prompt

    pairs = load_pairs(data_dir / "good" / f"{layout}.jsonl")
    for row, rec in zip(pairs.rows, _records(data_dir, layout)):
        expected = extract_prompt(rec)
        assert ((row.prompt, row.chosen, row.rejected)
                == (expected["prompt"], expected["chosen"], expected["rejected"]))


@pytest.mark.parametrize("chosen,rejected", [
    ("Q: x? A: yes", "Q: x? A: no"), ("abc", "abcd"), ("abc d", "abc e"),
("same start x", "same start y"), ])
def test_text_prompt_extraction_matches_trl(chosen, rejected):
    from trl.data_utils import extract_prompt

    e = extract_prompt({"chosen": chosen, "rejected": rejected})
    assert (extract_implicit_prompt_text(chosen, rejected)
            == (e["prompt"], e["chosen"], e["rejected"]))


def test_extra_columns_are_kept_through(data_dir):
    frame = load_pairs(data_dir / "good" / "standard_explicit.jsonl").to_frame()
    assert list(frame["score_chosen"]) == [8.5] * 5 and list(frame["source"]) == ["hand"] * 5


def test_ultrafeedback_prompt_taken_from_the_messages(data_dir):
    row = load_pairs(data_dir / "good" / "ultrafeedback.jsonl").rows[0]
    assert row.prompt == [{"role": "user", "content": "What is 0+1?"}]
    assert row.chosen == [{"role": "assistant", "content": "1."}]
