"""The bad-input corpus: every reason the data layer gives, in strict and lenient mode."""

import json

import pytest

from prefsift.data import ColumnMap, DataError, check_lengths, load_pairs

# file -> (line of the first bad row, reason code, field named)
CASES = {
    "missing_field.jsonl": (2, "missing_field", "rejected"),
    "empty_response.jsonl": (3, "empty_response", "rejected"),
    "identical.jsonl": (1, "identical", "chosen"),
    "wrong_type.jsonl": (2, "wrong_type", "chosen"),
    "malformed.jsonl": (2, "malformed", None),
    "duplicate_id.jsonl": (3, "duplicate_id", "id"),
    "duplicate_content.jsonl": (3, "duplicate_id", None),
    "no_final_assistant.jsonl": (2, "no_final_assistant", "chosen"),
    "implicit_prompt_mismatch.jsonl": (2, "prompt_mismatch", "chosen"),
    "implicit_text_no_prefix.jsonl": (2, "prompt_mismatch", "chosen"),
    "bad_message.jsonl": (2, "bad_message", "chosen"),
    "mixed_format.jsonl": (3, "mixed_format", "chosen"),
    "not_utf8.jsonl": (2, "malformed", None),
}


def _n_lines(path):
    return sum(1 for line in path.read_bytes().splitlines() if line.strip())


@pytest.mark.parametrize("name", sorted(CASES))
def test_lenient_reports_the_bad_row_and_keeps_every_row(data_dir, name):
    line, code, field = CASES[name]
    path = data_dir / "bad" / name
    pairs = load_pairs(path)
    assert len(pairs) == _n_lines(path)  # rows in = rows out
    bad = pairs.invalid_rows
    assert [r.where for r in bad] == [f"line {line}"]
    assert bad[0].code == code and bad[0].field == field
    assert bad[0].reason  # a sentence for a person
    frame = pairs.to_frame()
    assert len(frame) == len(pairs) and frame["id"].notna().all()
    assert frame.loc[frame["where"] == f"line {line}", "reason_code"].item() == code


@pytest.mark.parametrize("name", sorted(CASES))
def test_strict_names_file_line_and_field(data_dir, name):
    line, code, field = CASES[name]
    path = data_dir / "bad" / name
    with pytest.raises(DataError) as err:
        load_pairs(path, strict=True)
    msg = str(err.value)
    assert str(path) in msg and f"line {line}" in msg
    if field:
        assert f"'{field}'" in msg


def test_corpus_lenient_lists_every_bad_row(data_dir):
    pairs = load_pairs(data_dir / "bad" / "corpus.jsonl")
    got = {r.where: r.code for r in pairs.invalid_rows}
    assert got == {
        "line 2": "missing_field", "line 3": "empty_response", "line 4": "identical",
        "line 5": "bad_message", "line 6": "malformed", "line 7": "duplicate_id",
        "line 8": "missing_field", "line 9": "wrong_type",
    }
    assert len(pairs) == 10 and len(pairs.valid_rows) == 2
    assert "rows in: 10" in pairs.summary() and "rows out: 10" in pairs.summary()
    with pytest.raises(DataError, match="line 2, field 'rejected'"):
        load_pairs(data_dir / "bad" / "corpus.jsonl", strict=True)


def test_empty_file_is_an_error(data_dir):
    with pytest.raises(DataError, match="holds no rows"):
        load_pairs(data_dir / "bad" / "empty.jsonl")


def test_non_utf8_csv_names_the_byte_and_the_fix(data_dir):
    with pytest.raises(DataError, match=r"not UTF-8 \(byte 0xe9 .*iconv"):
        load_pairs(data_dir / "bad" / "not_utf8.csv")


def test_ten_thousand_rows_with_three_bad(tmp_path):
    path = tmp_path / "big.jsonl"
    bad_lines = {1234: '{"prompt": "x", "chosen": " a"', 5000: None, 9999: None}
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(1, 10_001):
            if i == 1234:
                fh.write(bad_lines[i] + "\n")
            elif i == 5000:
                fh.write(json.dumps({"prompt": f"p{i}", "chosen": " same", "rejected": " same"})
                         + "\n")
            elif i == 9999:
                fh.write(json.dumps({"prompt": f"p{i}", "chosen": " a"}) + "\n")
            else:
                fh.write(json.dumps({"prompt": f"p{i}", "chosen": f" a{i}", "rejected": f" b{i}"})
                         + "\n")
    pairs = load_pairs(path)
    assert len(pairs) == 10_000 and len(pairs.to_frame()) == 10_000
    assert {r.where: r.code for r in pairs.invalid_rows} == {
        "line 1234": "malformed", "line 5000": "identical", "line 9999": "missing_field"}
    with pytest.raises(DataError, match="line 1234"):
        load_pairs(path, strict=True)


def test_over_length_truncate_or_drop(data_dir, word_tokenizer):
    # Row 2: prompt 2 tokens (<bos> Q?) + 40 words + <eos> = 43 > 20. Row 3: prompt alone 62 tokens.
    path = data_dir / "bad" / "over_length.jsonl"
    kept = check_lengths(load_pairs(path), word_tokenizer, max_length=20, policy="truncate")
    assert [r.valid for r in kept.rows] == [True, True, False]
    assert kept.rows[1].n_tokens == 43 and "truncated" in kept.rows[1].notes[0]
    assert kept.rows[2].code == "over_length" and "prompt alone is 62 tokens" in kept.rows[2].reason
    dropped = check_lengths(load_pairs(path), word_tokenizer, max_length=20, policy="drop")
    assert [r.code for r in dropped.rows] == [None, "over_length", "over_length"]
    with pytest.raises(DataError, match="line 2"):
        check_lengths(load_pairs(path), word_tokenizer, max_length=20, policy="drop", strict=True)


def test_column_mapping_and_id_column(data_dir):
    pairs = load_pairs(data_dir / "good" / "renamed_columns.jsonl",
                       columns=ColumnMap(prompt="question", chosen="good", rejected="bad",
                                         id="uid"))
    assert not pairs.invalid_rows
    assert pairs.ids == ["q0", "q1", "q2"]
    assert pairs.rows[0].prompt == "Q0?" and pairs.rows[0].chosen == " right"
    # Without the mapping, the missing column is named along with the flag that fixes it.
    plain = load_pairs(data_dir / "good" / "renamed_columns.jsonl")
    assert plain.rows[0].code == "missing_field" and "--chosen-key" in plain.rows[0].reason
