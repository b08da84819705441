"""Several processes (torchrun, gloo on the CPU) give what one process gives: the sharded scores
table, and a training stage under DDP with the same global batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.torch import load_file

from prefsift.runtime.distributed import World, check_processes, mine, shares
from prefsift.core.errors import ConfigError

HERE = Path(__file__).parent
LAB = dict(seed=5, preset="tiny", n_train=160, n_validation=40, n_test_prompts=10, sft_steps=40,
           sft_warmup_steps=5, threads=1, progress=False, share_sft=False)


def _env():
    # One thread per process: the comparison must not depend on how many cores the machine has.
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _torchrun(n: int, *args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)


def _prefsift(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "prefsift", *args], capture_output=True, text=True, env=_env(),
                          timeout=600)


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


def lab_with_theta(root: Path) -> Path:
    """A tiny lab in ROOT/lab and θ, its SFT model warmed up in one process, in ROOT/theta/model."""
    from prefsift.data import load_pairs
    from prefsift.lab import LabConfig, make_lab
    from prefsift.models.loading import load_model, load_tokenizer
    from prefsift.models.objectives import PairwiseObjective
    from prefsift.scoring.logprobs import model_fingerprint
    from prefsift.train.dpo import StageSettings
    from prefsift.train.stage import TrainingStage

    make_lab(LabConfig(**LAB), root / "lab")
    tok, ref = load_tokenizer(root / "lab" / "sft_model"), load_model(root / "lab" / "sft_model")
    recs = [{"prompt": r.prompt, "chosen": r.chosen, "rejected": r.rejected}
            for r in load_pairs(root / "lab" / "train.jsonl").valid_rows]
    TrainingStage(ref, ref, tok, recs, PairwiseObjective("dpo", 0.1),
                StageSettings(epochs=1, learning_rate=1e-3, batch_size=16), root / "theta",
                start_key=model_fingerprint(ref), data_key="lab", name="warmup", log=lambda *a: None).run()
    return root


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = lab_with_theta(tmp_path_factory.mktemp("sharded"))
    # A bad row stays in the merged table, in its place, with its reason.
    lines = (root / "lab" / "train.jsonl").read_text().splitlines()
    lines.insert(7, '{"prompt": "sort : 1 2 =", "chosen": " 1 2"}')
    (root / "train.jsonl").write_text("\n".join(lines) + "\n")
    return root


def _score_args(root, out, *extra):
    return ["score", "--policy", str(root / "theta" / "model"), "--reference", str(root / "lab" / "sft_model"),
            "--train", str(root / "train.jsonl"), "--validation", str(root / "lab" / "validation.jsonl"),
            "--out", str(root / out), "--quiet", *extra]


def _assert_same_table(one: pd.DataFrame, two: pd.DataFrame, loose: dict[str, float]):
    """Ids, order, reasons identical; every float column equal to 1e-6 relative, except the columns
    in `loose` (a reduction over the ranks in them), equal to that fraction of the column's scale."""
    assert list(one["id"]) == list(two["id"]) and list(one.columns) == list(two.columns)
    assert one["valid"].equals(two["valid"]) and one["reason_code"].equals(two["reason_code"])
    for c in one.columns:
        if one[c].dtype.kind != "f":
            assert one[c].equals(two[c]), c
            continue
        x, y = one[c].to_numpy(), two[c].to_numpy()
        assert (np.isnan(x) == np.isnan(y)).all(), c
        ok = ~np.isnan(x)
        tol = {"rtol": 1e-6, "atol": 0.0}
        for prefix, frac in loose.items():
            if c.startswith(prefix):
                tol = {"rtol": 0.0, "atol": frac * np.abs(x[ok]).max()}
        np.testing.assert_allclose(y[ok], x[ok], err_msg=c, **tol)


def test_sharded_scores_equal_one_process(lab):
    one = _prefsift(*_score_args(lab, "one"))
    assert one.returncode == 0, one.stderr[-3000:]
    two = _torchrun(2, "-m", "prefsift", *_score_args(lab, "two"))
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = pd.read_parquet(lab / "one" / "scores.parquet"), pd.read_parquet(lab / "two" / "scores.parquet")
    assert len(a) == 161 and (~a["valid"]).sum() == 1
    # Log-probs, IRM and ℓ(θ) are computed in the same batches: equal. IF reads the validation gradient,
    # a sum over the ranks' shares (order ~1e-7); θ_val trains under DDP (gradients averaged over the
    # ranks), and LossDiff is a small difference of two losses, so ~1e-7 of a loss is ~1e-6 of LossDiff.
    _assert_same_table(a, b, {"if": 1e-5, "lossdiff": 1e-4, "loss_theta_val": 1e-6})
    assert two.stdout.count("scores table:") == 1  # rank 0 speaks
    assert sorted(p.name for p in (lab / "two" / "cache").glob("rank-*")) == ["rank-0-of-2", "rank-1-of-2"]


def test_processes_flag_shards_the_forward_mode_route(lab):
    from prefsift.scoring.table import ScoreConfig, compute_scores

    one = compute_scores(ScoreConfig(policy=str(lab / "theta" / "model"), reference=str(lab / "lab" / "sft_model"),
                                     train=str(lab / "train.jsonl"), validation=str(lab / "lab" / "validation.jsonl"),
                                     out=str(lab / "jvp_one"), scores="irm,if", if_method="jvp"),
                         progress=False, log=lambda *a: None)
    two = _prefsift(*_score_args(lab, "jvp_two", "--scores", "irm,if", "--if-method", "jvp", "--processes", "2"))
    assert two.returncode == 0, two.stderr[-3000:]
    _assert_same_table(one, pd.read_parquet(lab / "jvp_two" / "scores.parquet"), {"if": 1e-5})


def test_processes_that_cannot_share_the_batch_are_refused_before_starting(lab):
    r = _prefsift(*_score_args(lab, "bad", "--processes", "3", "--val-batch-size", "8"))
    assert r.returncode == 2 and "--val-batch-size is 8, which 3 processes cannot share evenly" in r.stderr
    assert not (lab / "bad").exists()


def test_a_training_stage_under_ddp_equals_one_process_with_the_same_global_batch(word_tokenizer, tmp_path):
    from tests.tiny import word_model

    tok = word_tokenizer
    model = word_model(tok, seed=0)
    model.save_pretrained(tmp_path / "start")
    tok.save_pretrained(tmp_path / "start")
    worker = str(HERE / "stage_worker.py")
    runs = {"one": [sys.executable, worker, str(tmp_path / "start"), str(tmp_path / "one"), "8", "sgd"],
            "half": [sys.executable, worker, str(tmp_path / "start"), str(tmp_path / "half"), "4", "sgd"]}
    for name, cmd in runs.items():
        r = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
    r = _torchrun(2, worker, str(tmp_path / "start"), str(tmp_path / "two"), "8", "sgd")
    assert r.returncode == 0, r.stderr[-3000:]
    start = load_file(tmp_path / "start" / "model.safetensors")
    got = {n: load_file(tmp_path / n / "model" / "model.safetensors") for n in ("one", "two", "half")}

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
    args = _score_args(lab, "small_one", "--scores", "irm,if")
    args[args.index("--train") + 1] = str(small)
    one = _prefsift(*args)
    assert one.returncode == 0, one.stderr[-3000:]
    args[args.index("--out") + 1] = str(lab / "small_two")
    two = subprocess.run([sys.executable, "-m", "prefsift", *args, "--processes", "2"], capture_output=True,
                         text=True, env=_env(), timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    _assert_same_table(pd.read_parquet(lab / "small_one" / "scores.parquet"),
                       pd.read_parquet(lab / "small_two" / "scores.parquet"), {"if": 1e-5})


def test_a_plan_for_two_processes_is_made_in_one(lab):
    r = _prefsift(*_score_args(lab, "planned", "--processes", "2", "--plan"))
    assert r.returncode == 0, r.stderr[-3000:]
    plan = json.loads((lab / "planned" / "plan.json").read_text())
    assert plan["processes"] == 2 and [s["stage"] for s in plan["stages"]] == ["load", "logprobs", "lossdiff", "if"]
