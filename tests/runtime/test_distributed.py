"""Several processes (torchrun, gloo on the CPU) give what one process gives: the sharded scores
table, and a training stage under DDP with the same global batch."""

import json
import subprocess
import sys

import pandas as pd
import pytest
from safetensors.torch import load_file

from prefsift.core.errors import ConfigError
from prefsift.runtime.distributed import World, check_processes, mine, shares
from tests.tiny import (
    STAGE_WORKER,
    assert_same_table,
    lab_score_args,
    lab_with_theta,
    one_thread_env,
    prefsift_cli,
    torchrun,
)


def test_shares_balance_the_cost_and_cover_every_item_once():
    costs = [9, 1, 1, 1, 5, 4, 3, 3, 2, 7]
    owner = shares(costs, 3)
    loads = [sum(c for c, o in zip(costs, owner) if o == r) for r in range(3)]
    assert sorted(loads) == [12, 12, 12]  # 36 split exactly in three
    per_rank = [mine(costs, World(r, 3)) for r in range(3)]
    assert all(sum(col) == 1 for col in zip(*per_rank))  # each item is exactly one rank's
    assert mine(costs, World()) == [True] * len(costs)


def test_processes_is_refused_inside_a_launcher():
    with pytest.raises(ConfigError, match="already one of 2"):
        check_processes(2, World(1, 2))
    with pytest.raises(ConfigError, match=">= 1"):
        check_processes(0, World())
    assert check_processes(4, World()) == 4


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = lab_with_theta(tmp_path_factory.mktemp("sharded"))
    # A bad row stays in the merged table, in its place, with its reason.
    lines = (root / "lab" / "train.jsonl").read_text().splitlines()
    lines.insert(7, '{"prompt": "sort : 1 2 =", "chosen": " 1 2"}')
    (root / "train.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_sharded_scores_equal_one_process(lab):
    one = prefsift_cli(*lab_score_args(lab, "one"))
    assert one.returncode == 0, one.stderr[-3000:]
    two = torchrun(2, "-m", "prefsift", *lab_score_args(lab, "two"))
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = (pd.read_parquet(lab / "one" / "scores.parquet"),
            pd.read_parquet(lab / "two" / "scores.parquet"))
    assert len(a) == 161 and (~a["valid"]).sum() == 1
    # Log-probs, IRM and ℓ(θ) are computed in the same batches: equal. IF reads the validation
    # gradient, a sum over the ranks' shares (order ~1e-7); θ_val trains under DDP (gradients
    # averaged over the ranks), and LossDiff is a small difference of two losses, so ~1e-7 of a loss
    # is ~1e-6 of LossDiff.
    assert_same_table(a, b, {"if": 1e-5, "lossdiff": 1e-4, "loss_theta_val": 1e-6})
    assert two.stdout.count("scores table:") == 1  # rank 0 speaks
    assert (sorted(p.name for p in (lab / "two" / "cache").glob("rank-*"))
            == ["rank-0-of-2", "rank-1-of-2"])


def test_processes_flag_shards_the_forward_mode_route(lab):
    from prefsift.scoring.table import ScoreConfig, compute_scores

    one = compute_scores(ScoreConfig(policy=str(lab / "theta" / "model"),
                                     reference=str(lab / "lab" / "sft_model"),
                                     train=str(lab / "train.jsonl"),
                                     validation=str(lab / "lab" / "validation.jsonl"),
                                     out=str(lab / "jvp_one"), scores="irm,if", if_method="jvp"),
                         progress=False, log=lambda *a: None)
    two = prefsift_cli(*lab_score_args(lab, "jvp_two", "--scores", "irm,if", "--if-method", "jvp",
                                       "--processes", "2"))
    assert two.returncode == 0, two.stderr[-3000:]
    assert_same_table(one, pd.read_parquet(lab / "jvp_two" / "scores.parquet"), {"if": 1e-5})


def test_processes_that_cannot_share_the_batch_are_refused_before_starting(lab):
    r = prefsift_cli(*lab_score_args(lab, "bad", "--processes", "3", "--val-batch-size", "8"))
    assert (r.returncode == 2
            and "--val-batch-size is 8, which 3 processes cannot share evenly" in r.stderr)
    assert not (lab / "bad").exists()


def test_a_training_stage_under_ddp_equals_one_process_with_the_same_global_batch(word_tokenizer,
        tmp_path):
    from tests.tiny import word_model

    tok = word_tokenizer
    model = word_model(tok, seed=0)
    model.save_pretrained(tmp_path / "start")
    tok.save_pretrained(tmp_path / "start")
    runs = {"one": [sys.executable, STAGE_WORKER, str(tmp_path / "start"), str(tmp_path / "one"),
                    "8", "sgd"],
            "half": [sys.executable, STAGE_WORKER, str(tmp_path / "start"), str(tmp_path / "half"),
                     "4", "sgd"]}
    for name, cmd in runs.items():
        r = subprocess.run(cmd, capture_output=True, text=True, env=one_thread_env(), timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
    r = torchrun(2, STAGE_WORKER, str(tmp_path / "start"), str(tmp_path / "two"), "8", "sgd")
    assert r.returncode == 0, r.stderr[-3000:]
    start = load_file(tmp_path / "start" / "model.safetensors")
    got = {n: load_file(tmp_path / n / "model" / "model.safetensors")
           for n in ("one", "two", "half")}

    def gap(a, b):  # the largest difference between two runs, as a fraction of the step they took
        return max(((got[a][k] - got[b][k]).abs().max() / (got[a][k] - start[k]).abs().max()).item()
                   for k in start if (got[a][k] - start[k]).abs().max() > 0)

    # 2 processes x 4 pairs = one process x 8 pairs, the same pairs in the same order: equal up to
    # the order of the gradient sum (fp32); batch 4 in one process is another training, far off.
    assert gap("one", "two") < 1e-3
    assert gap("one", "half") > 0.05
    assert (tmp_path / "two" / "stage.json").exists()


def test_fewer_pairs_than_one_chunk_shard_without_hanging(lab):
    """40 pairs are one IF chunk, which one rank computes alone: the others still join the merge."""
    small = lab / "small.jsonl"
    small.write_text("\n".join((lab / "train.jsonl").read_text().splitlines()[:40]) + "\n")
    args = lab_score_args(lab, "small_one", "--scores", "irm,if")
    args[args.index("--train") + 1] = str(small)
    one = prefsift_cli(*args)
    assert one.returncode == 0, one.stderr[-3000:]
    args[args.index("--out") + 1] = str(lab / "small_two")
    two = subprocess.run([sys.executable, "-m", "prefsift", *args, "--processes", "2"],
                         capture_output=True, text=True, env=one_thread_env(), timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert_same_table(pd.read_parquet(lab / "small_one" / "scores.parquet"),
                       pd.read_parquet(lab / "small_two" / "scores.parquet"), {"if": 1e-5})


def test_a_plan_for_two_processes_is_made_in_one(lab):
    r = prefsift_cli(*lab_score_args(lab, "planned", "--processes", "2", "--plan"))
    assert r.returncode == 0, r.stderr[-3000:]
    plan = json.loads((lab / "planned" / "plan.json").read_text())
    assert (plan["processes"] == 2
            and [s["stage"] for s in plan["stages"]] == ["load", "logprobs", "lossdiff", "if"])
