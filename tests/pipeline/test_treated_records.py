"""A treatment arm's training rows: its pairs in file order, chosen and rejected swapped exactly
where it says (compared with the file as written), its weights attached, and a data key that
changes with the swaps and the weights."""

import json

import numpy as np

import prefsift
from prefsift.selection.rows import treated_records
from prefsift.selection.treatments import ArmData


def test_rows_swaps_weights_and_key(tmp_path):
    rows = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(5)]
    rows[2]["chosen"] = ""  # not usable: never in an arm's data
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs = prefsift.load_pairs(str(path))
    mask = np.array([True, True, False, True, False])
    flip = np.array([False, True, False, False, False])
    weight = np.array([0.5, 1.0, 0.0, 0.25, 0.0])
    ids = ["a", "b", "d"]
    records, key = treated_records(pairs, mask, ArmData(mask=mask, flip=flip, weight=weight), ids)
    got = [(r["prompt"], r["chosen"], r["rejected"], r["pair_weight"]) for r in records]
    assert [g[0] for g in got] == ["q0", "q1", "q3"]
    assert got[1][1:3] == ("bad 1", "good 1") and got[0][1:3] == ("good 0", "bad 0")
    assert [g[3] for g in got] == [0.5, 1.0, 0.25]
    _, key_no_flip = treated_records(pairs, mask, ArmData(mask=mask, weight=weight), ids)
    _, key_other_weight = treated_records(pairs, mask,
                                          ArmData(mask=mask, flip=flip, weight=weight * 2), ids)
    assert len({key, key_no_flip, key_other_weight}) == 3


def test_an_ordered_arm_trains_in_ascending_order_ties_in_file_order(tmp_path):
    rows = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(5)]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs = prefsift.load_pairs(str(path))
    mask = np.array([True, True, True, False, True])
    order = np.array([0.7, 0.2, 0.7, 0.0, 0.1])
    records, key = treated_records(pairs, mask, ArmData(mask=mask, order=order),
                                   ["a", "b", "c", "e"])
    assert [r["prompt"] for r in records] == ["q4", "q1", "q0", "q2"]
    _, unordered = treated_records(pairs, mask, ArmData(mask=mask), ["a", "b", "c", "e"])
    assert key != unordered


def test_an_ordered_arm_is_shuffled_only_within_blocks_by_its_seed(tmp_path):
    rows = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(12)]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs = prefsift.load_pairs(str(path))
    mask = np.ones(12, dtype=bool)
    # pair i is the order[i]-th easiest
    order = np.array([11, 3, 7, 0, 5, 9, 1, 10, 2, 8, 4, 6], dtype=float)
    ids = [f"i{i}" for i in range(12)]
    got = {}
    for seed in (0, 1):
        records, _ = treated_records(pairs, mask, ArmData(mask=mask, order=order), ids, seed=seed,
                                     block=4)
        rank = [int(order[int(r["prompt"][1:])]) for r in records]
        # block by block: the 4 easiest first, then the next 4, then the hardest 4
        assert ([sorted(rank[b:b + 4]) for b in (0, 4, 8)]
                == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]])
        got[seed] = rank
    assert got[0] != got[1]
