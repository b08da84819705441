"""The audit of a file shaped like UltraFeedback (ratings per side, four sources), built by hand
with known faults planted: every planted fault is found, on exactly its rows, and nothing else is
reported; the same file without the faults reports nothing. Also the CLI on it: its lines, its exit
status and audit.json."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import prefsift

from .files import careful_pairs, ultrafeedback

PLANTED = {  # finding key -> the planted rows it must hold exactly (None: checked otherwise)
    "data.not_usable": None,
    "length.chosen_longer": None,
    "length.chosen_longer.by.source": None,
    "style.chosen_habits": None,
    "duplicates.identical_pairs": "identical_pairs",
    "duplicates.chosen_equals_rejected": "same",
    "duplicates.near_identical_answers": "near",
    "duplicates.prompt_leak.validation": "leak_validation",
    "duplicates.prompt_leak.test": "leak_test",
    "truncation.dropped": "dropped",
    "truncation.cut": "cut_chosen",
    "ratings.chosen_below": "below",
    "ratings.ties": "ties",
    "ratings.out_of_scale": "out_of_scale",
    "ratings.not_numbers": "not_number",
}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    d = tmp_path_factory.mktemp("uf")
    val_prompts = careful_pairs(d / "validation.jsonl")
    test = [f"a test prompt number {i} about something" for i in range(5)]
    (d / "test_prompts.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in test))
    info = ultrafeedback(
        d / "train.jsonl", faults=True, validation_prompts=val_prompts, test_prompts=test
    )
    report = prefsift.audit(
        d / "train.jsonl",
        validation=d / "validation.jsonl",
        test_prompts=d / "test_prompts.jsonl",
        json_out=d / "audit.json",
    )
    return d, info, report


def test_every_planted_fault_is_found_on_its_rows_and_nothing_else(planted):
    d, info, report = planted
    assert sorted(f.key for f in report.reported) == sorted(PLANTED)
    for key, name in PLANTED.items():
        if name is not None:
            assert report.get(key).rows.tolist() == sorted(info[name]), key
    bad = report.get("data.not_usable")
    assert bad.rows.tolist() == sorted(info["identical_reason"] + info["malformed"])
    assert sum(bad.stats["reasons"].values()) == 3 and bad.stats["reasons"]["malformed"] == 1
    by = report.get("length.chosen_longer.by.source")
    assert by.stats["flagged"] == info["length_source"]
    assert not report.get("style.rejected_habits").reported
    features = [s["feature"] for s in report.get("style.chosen_habits").stats["features"]]
    assert (
        set(features) <= {"sure", "!", "sure !", "(opens with) sure", "(opens with) sure !"}
        and "sure" in features
    )
    # the pairs of the habit: the 60 planted, whose chosen has 'Sure!' and rejected not
    assert set(info["sure"]) <= set(report.get("style.chosen_habits").rows.tolist())
    every = set(range(info["n_rows"]))
    assert set(json.loads((d / "audit.json").read_text())["rows"]["id"]) == {
        r.id for r in report.pairs.rows
    }
    assert len(report.pairs) == len(every)


def test_the_clean_file_reports_nothing(tmp_path):
    careful_pairs(tmp_path / "validation.jsonl")
    ultrafeedback(tmp_path / "train.jsonl", faults=False)
    report = prefsift.audit(tmp_path / "train.jsonl", validation=tmp_path / "validation.jsonl")
    assert report.reported == [], [f.line() for f in report.reported]
    assert report.lines()[1] == "nothing above its threshold"


def test_the_cli_prints_one_line_per_finding_and_exits_1(planted, tmp_path):
    d, info, _ = planted
    cli = [
        sys.executable,
        "-m",
        "prefsift",
        "--threads",
        "1",
        "audit",
        str(d / "train.jsonl"),
        "--validation",
        str(d / "validation.jsonl"),
        "--json",
        str(tmp_path / "a.json"),
    ]
    proc = subprocess.run(cli, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    found = [x for x in lines if x.startswith("[")]
    assert len(found) == len(PLANTED) - 1  # no test prompts given: no test leak
    near = next(x for x in found if x.startswith("[duplicates] near-identical answers"))
    first = info["rows"][sorted(info["near"])[0]]["id"]
    assert f"6 of {info['n_rows'] - 3}" in near and f"e.g. {first}" in near and "-> try:" in near
    data = json.loads((tmp_path / "a.json").read_text())
    length = next(f for f in data["findings"] if f["key"] == "length.chosen_longer")
    chosen_longer = [k for k in length["stats"] if "chosen_longer" in k]
    assert "share_chosen_longer" in chosen_longer
    bad = subprocess.run(
        cli[:6] + [str(tmp_path / "missing.jsonl")], capture_output=True, text=True
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error:")
