"""`shard fsdp`: two torchrun processes (gloo on the CPU), each holding a shard of every model
(FSDP2), give what one process gives. Training stages go through TRL and accelerate's FSDP; the
scores table comes from sharded π_ref, θ and θ_val. A run killed under FSDP resumes to the same
table.

Tolerances, and why:
- training: two processes × 4 pairs make the same steps as one process × 8 pairs. Only the order of
  the gradient sum differs (a reduce-scatter over 2 ranks instead of one batch sum, ~1e-7 relative
  per step in fp32). After 8 SGD steps, the largest weight difference is under 1e-3 of the largest
  step (measured: 7e-5). A different batch (4 in one process) is ~5e-2 off, so the bound can tell.
- scores: log-probs, IRM and ℓ(θ) are forward passes of the same weights (gathered, not summed), on
  the same batches: 1e-6 relative. IF is a sum over the two ranks of local inner products, and the
  validation gradient is the ranks' mean: reduction order, 1e-5 of the column's scale. LossDiff
  is a small difference of two losses of θ_val, which trains under FSDP: 1e-4 of its scale. These
  are the bounds of the DDP-sharded tests (test_distributed.py)."""

import json
import subprocess
import sys

import pandas as pd
import pytest
from safetensors.torch import load_file

from tests.tiny import (
    STAGE_WORKER,
    assert_same_table,
    lab_score_args,
    lab_with_theta,
    one_thread_env,
    prefsift_cli,
    torchrun,
)


def _gap(got: dict, start: dict, a: str, b: str) -> float:
    """The largest difference between two trainings, as a fraction of the step the first took."""
    return max(((got[a][k] - got[b][k]).abs().max() / (got[a][k] - start[k]).abs().max()).item()
               for k in start if (got[a][k] - start[k]).abs().max() > 0)


@pytest.mark.parametrize("lora_r", [0, 4])
def test_a_training_stage_under_fsdp_equals_one_process(word_tokenizer, tmp_path, lora_r):
    from tests.tiny import save_word_model

    save_word_model(word_tokenizer, tmp_path / "start")
    start = str(tmp_path / "start")
    r = subprocess.run([sys.executable, STAGE_WORKER, start, str(tmp_path / "one"), "8", "sgd",
                        "ddp", str(lora_r)],
                       capture_output=True, text=True, env=one_thread_env(), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    # (DDP's full fine-tuning is test_distributed.py's; its LoRA stage with a validation curve once
    # drifted from one process, so it is checked here)
    shards = ("ddp", "fsdp") if lora_r else ("fsdp",)
    for shard in shards:
        r = torchrun(2, STAGE_WORKER, start, str(tmp_path / shard), "8", "sgd", shard, str(lora_r))
        assert r.returncode == 0, r.stderr[-3000:]
    begin = load_file(tmp_path / "start" / "model.safetensors")
    got = {n: load_file(tmp_path / n / "model" / "model.safetensors") for n in ("one", *shards)}
    assert sorted(got["fsdp"]) == sorted(begin)  # a plain model folder, adapters merged
    for shard in shards:
        assert _gap(got, begin, "one", shard) < 1e-3, shard
    info = json.loads((tmp_path / "fsdp" / "stage.json").read_text())
    assert info["shard"] == "fsdp" and info["processes"] == 2
    # The validation curve starts at step 0 (the trainer's own evaluation on start, under FSDP) and
    # agrees with one process's, the same evaluation of the same weights.
    curve = lambda name: [(e["step"], e["eval_loss"]) for e in json.loads(  # noqa: E731
        (tmp_path / name / "stage.json").read_text())["log"] if "eval_loss" in e]
    assert ([s for s, _ in curve("fsdp")] == [s for s, _ in curve("one")]
            and curve("fsdp")[0][0] == 0)
    assert all(abs(a - b) < 1e-4 for (_, a), (_, b) in zip(curve("fsdp"), curve("one")))
    # Each rank held about half of the weights while it trained (FSDP pads a shard to a whole row).
    # (head: tied)
    total = sum(t.numel() for t in begin.values()) - begin["model.embed_tokens.weight"].numel()
    assert 0.4 * total < info["weights_held_by_rank0"] < 0.7 * total + (1 if lora_r else 0) * total


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = lab_with_theta(tmp_path_factory.mktemp("fsdp"))
    (root / "train.jsonl").write_text((root / "lab" / "train.jsonl").read_text())
    one = prefsift_cli(*lab_score_args(root, "one"))
    assert one.returncode == 0, one.stderr[-3000:]
    return root


FSDP = ("--processes", "2", "--shard", "fsdp")


def test_fsdp_scores_equal_one_process_and_forward_mode_falls_back_to_the_loop(lab):
    two = prefsift_cli(*lab_score_args(lab, "fsdp", *FSDP, "--if-method", "jvp"))
    assert two.returncode == 0, two.stderr[-3000:]
    assert ("under shard fsdp it is computed by the loop of backward passes"
            in two.stdout + two.stderr)
    a, b = (pd.read_parquet(lab / "one" / "scores.parquet"),
            pd.read_parquet(lab / "fsdp" / "scores.parquet"))
    assert_same_table(a, b, {"if": 1e-5, "lossdiff": 1e-4, "loss_theta_val": 1e-6})
    assert json.loads((lab / "fsdp" / "theta_val" / "stage.json").read_text())["shard"] == "fsdp"
    # Every rank kept its own partial inner products, so a rank resumes from its own.
    ckpt = next((lab / "fsdp" / "cache").glob("if-*"))
    assert sorted(p.name for p in ckpt.iterdir()) == ["rank-0-of-2", "rank-1-of-2"]


def test_a_score_killed_under_fsdp_resumes_to_the_same_table(lab):
    # both ranks, in the second chunk of IF
    env = {**one_thread_env(), "PREFSIFT_KILL_AT": "influence:100"}
    args = [sys.executable, "-m", "prefsift", *lab_score_args(lab, "killed", *FSDP)]
    killed = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert killed.returncode != 0 and not (lab / "killed" / "scores.parquet").exists()
    saved = sorted((lab / "killed" / "cache").glob("if-*/rank-*/chunk-*.npz"))
    assert saved, "the first chunk of IF was saved before the kill"
    resumed = prefsift_cli(*lab_score_args(lab, "killed", *FSDP))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = (pd.read_parquet(lab / "one" / "scores.parquet"),
            pd.read_parquet(lab / "killed" / "scores.parquet"))
    assert_same_table(a, b, {"if": 1e-5, "lossdiff": 1e-4, "loss_theta_val": 1e-6})


@pytest.mark.parametrize("extra, message", [
    (("--projection-dim", "8"),
     "--projection-dim projects whole per-pair gradients, which shard fsdp never holds"),
    (("--shard", "zero3"), "--shard must be one of ddp, fsdp"),
])
def test_fsdp_settings_it_cannot_honour_are_refused_before_any_work(lab, extra, message):
    args = lab_score_args(lab, "refused", "--shard", "fsdp", *extra)
    r = prefsift_cli(*args)
    assert r.returncode == 2 and message in r.stderr, r.stderr[-2000:]
    assert not (lab / "refused").exists()


def test_prefsift_warmup_under_fsdp_equals_one_process(lab):
    """`prefsift warmup --processes 2 --shard fsdp` (the command, its workers started by torchrun)
    trains the θ one process trains, to the order of the gradient sum (see the module docstring)."""
    args = ["warmup", "--reference", str(lab / "lab" / "sft_model"), "--train",
            str(lab / "train.jsonl"), "--learning-rate", "1e-3", "--batch-size", "16", "--quiet"]
    for out, extra in (("w_one", ()), ("w_fsdp", ("--processes", "2", "--shard", "fsdp"))):
        r = prefsift_cli(*args, "--out", str(lab / out), *extra)
        assert r.returncode == 0, r.stderr[-3000:]
    begin = load_file(lab / "lab" / "sft_model" / "model.safetensors")
    got = {n: load_file(lab / n / "warmup" / "model" / "model.safetensors")
           for n in ("w_one", "w_fsdp")}
    assert _gap(got, begin, "w_one", "w_fsdp") < 1e-3
    assert json.loads((lab / "w_fsdp" / "warmup" / "stage.json").read_text())["shard"] == "fsdp"
