"""What more than one test module uses, in one place: the tiny models (plain functions; the fixtures
are in conftest.py), and the configs, records and helpers that several test modules share. Test
modules import these from here, never from one another.

Each builder gives exactly the model the tests built themselves before: the same config values and
the same seed, so no test's numbers change. A test that needs another size, seed or option passes it
at the call site rather than getting a builder of its own.

Models:
- `tiny_model`: prefsift's own `build_tiny_model` (a named preset, "tiny" unless told).
- `word_model`: the "tiny" preset sized to conftest's `word_tokenizer`, with its special ids.
- `save_word_model`: `word_model` and its tokenizer saved to a folder (a model folder for a stage).
- `llama`: a LlamaForCausalLM from a LlamaConfig built here, independent of prefsift's presets.

Runs, records and TRL references:
- `TINY_RUN`: a `prefsift run` config on a tiny lab (three arms, one seed); `QUIET`: a log that
  drops all.
- `REWARD_RECORDS`: 24 preference records for the reward-model route's tests.
- `CHAT_TEMPLATE`: a chat template in `word_tokenizer`'s words, for the conversational layouts.
- `trl_margins`: TRL's DPOTrainer's reward margin for each record, one pair at a time.

Several processes (torchrun, gloo on the CPU):
- `one_thread_env`, `torchrun`, `prefsift_cli`: a subprocess's environment, and the two ways to
  start one.
- `STAGE_WORKER`: the script that runs one training stage (tests/stage_worker.py).
- `lab_with_theta`, `lab_score_args`: a lab with a warmed-up θ, and `prefsift score`'s arguments on
  it.
- `assert_same_table`: two scores tables equal, within a tolerance where ranks reduce.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from prefsift.models.loading import build_tiny_model

if TYPE_CHECKING:
    import pandas as pd

# The special ids of conftest's `word_tokenizer` (<pad> 0, <bos> 1, <eos> 2).
WORD_IDS = dict(bos_token_id=1, eos_token_id=2, pad_token_id=0)

# `llama`'s config unless a call site says otherwise.
LLAMA = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=64, attn_implementation="eager")


def tiny_model(vocab_size: int, seed: int = 0, *, preset: str = "tiny", **options):
    """`build_tiny_model(preset, vocab_size, seed=seed, **options)`: prefsift's preset, seeded on a
    forked generator (the global one is left alone). `options` as build_tiny_model's (special ids,
    max_position_embeddings, attn_implementation)."""
    return build_tiny_model(preset, vocab_size, seed=seed, **options)


def word_model(tokenizer, seed: int = 0):
    """The "tiny" preset for conftest's `word_tokenizer` (or a copy of it): its vocabulary size and
    its special ids (`WORD_IDS`)."""
    return tiny_model(len(tokenizer), seed, **WORD_IDS)


def save_word_model(tokenizer, folder: Path, seed: int = 0) -> Path:
    """`word_model(tokenizer, seed)` and `tokenizer` saved in `folder`; returns `folder`."""
    word_model(tokenizer, seed).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def llama(vocab_size: int, seed: int, **config):
    """A LlamaForCausalLM with `LLAMA`'s config, `config` over it (e.g. tie_word_embeddings,
    pad_token_id, or other sizes), its weights drawn after `torch.manual_seed(seed)` on the global
    generator (as the tests that built their own did). In float32, in training mode."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=vocab_size, **{**LLAMA, **config})
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg)


# ---------------------------------------------------------------------------------------------
# Runs, records and TRL references

# A `prefsift run` config on a tiny lab: `RunConfig(out=..., **TINY_RUN)`.
TINY_RUN = dict(lab={"seed": 2, "preset": "tiny", "n_train": 96, "n_validation": 32,
                     "n_test_prompts": 24,
                     "sft_steps": 30, "sft_warmup_steps": 5, "threads": 1, "share_sft": False},
                warmup={"epochs": 1, "learning_rate": 1e-3, "batch_size": 16},
                final={"epochs": 1, "learning_rate": 1e-3, "batch_size": 16},
                arms=["full", "random", "lossdiff_irm"], seeds=[0], eval_prompts=24, eval_steps=3)


# A log function that drops everything: `log=QUIET`.
QUIET = lambda *a, **k: None  # noqa: E731


# Preference records (prompt, chosen, rejected) that the reward-model tests train and score on.
REWARD_RECORDS = [{"prompt": f"Q{i % 10}?", "chosen": " good answer" + " yes" * (i % 3),
                   "rejected": f" bad {i % 10}"}
                  for i in range(24)]

# A chat template in conftest's `word_tokenizer`'s words (each turn "<bos> ROLE : CONTENT <eos>").
CHAT_TEMPLATE = (
    "{% for m in messages %}<bos> {{ m['role'] }} : {{ m['content'] }} <eos> {% endfor %}"
    "{% if add_generation_prompt %}<bos> assistant : {% endif %}"
)


def trl_margins(policy, ref, tok, records, max_length=None, beta: float = 0.1) -> np.ndarray:
    """TRL's DPOTrainer's reward margin of each record, β·(log-ratio of `policy` over `ref` on the
    chosen answer − the same on the rejected), as TRL logs it: one pair per batch, on copies of the
    two models."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    args = DPOConfig(output_dir="/tmp/prefsift-trl-irm", use_cpu=True, bf16=False, report_to=[],
                     beta=beta, max_length=max_length, dataset_num_proc=None)
    trainer = DPOTrainer(model=copy.deepcopy(policy), ref_model=copy.deepcopy(ref), args=args,
                         train_dataset=Dataset.from_list(records), processing_class=tok)
    trainer.model.eval()
    margins = []
    # one pair per batch: TRL's logged mean is that pair's margin
    for i in range(len(trainer.train_dataset)):
        inputs = trainer.data_collator([trainer.train_dataset[i]])
        with torch.no_grad():
            trainer.compute_loss(trainer.model, inputs)
        margins.append(trainer._metrics["eval"]["rewards/margins"][-1])
    return np.array(margins)


# ---------------------------------------------------------------------------------------------
# Several processes (torchrun, gloo on the CPU)

# The script that runs one DPO training stage, in one process or under torchrun (see its docstring).
STAGE_WORKER = str(Path(__file__).parent / "stage_worker.py")

# The lab that `lab_with_theta` makes.
DISTRIBUTED_LAB = dict(seed=5, preset="tiny", n_train=160, n_validation=40, n_test_prompts=10,
                       sft_steps=40, sft_warmup_steps=5, threads=1, progress=False, share_sft=False)


def one_thread_env() -> dict:
    """The environment for a test's subprocesses: one thread per process (a comparison of several
    processes with one must not depend on how many cores the machine has), offline."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false"}


def torchrun(n: int, *args) -> subprocess.CompletedProcess:
    """`python -m torch.distributed.run --standalone --nproc_per_node=N ARGS...`, in
    `one_thread_env`."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
           *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=one_thread_env(), timeout=600)


def prefsift_cli(*args) -> subprocess.CompletedProcess:
    """`python -m prefsift ARGS...` in one process, in `one_thread_env`."""
    return subprocess.run([sys.executable, "-m", "prefsift", *args], capture_output=True, text=True,
                          env=one_thread_env(), timeout=600)


def lab_with_theta(root: Path) -> Path:
    """A tiny lab (`DISTRIBUTED_LAB`) in ROOT/lab and θ, its SFT model warmed up in one process, in
    ROOT/theta/model. Returns ROOT."""
    from prefsift.data import load_pairs
    from prefsift.lab import LabConfig, make_lab
    from prefsift.models.loading import load_model, load_tokenizer
    from prefsift.models.objectives import PairwiseObjective
    from prefsift.scoring.logprobs import model_fingerprint
    from prefsift.train.dpo import StageSettings
    from prefsift.train.stage import TrainingStage

    make_lab(LabConfig(**DISTRIBUTED_LAB), root / "lab")
    tok, ref = load_tokenizer(root / "lab" / "sft_model"), load_model(root / "lab" / "sft_model")
    recs = [{"prompt": r.prompt, "chosen": r.chosen, "rejected": r.rejected}
            for r in load_pairs(root / "lab" / "train.jsonl").valid_rows]
    TrainingStage(ref, ref, tok, recs, PairwiseObjective("dpo", 0.1),
                  StageSettings(epochs=1, learning_rate=1e-3, batch_size=16), root / "theta",
                  start_key=model_fingerprint(ref), data_key="lab", name="warmup",
                  log=lambda *a: None).run()
    return root


def lab_score_args(root: Path, out: str, *extra) -> list[str]:
    """`prefsift score`'s arguments on `lab_with_theta`'s ROOT: θ against the SFT model, the pairs
    in ROOT/train.jsonl (the test writes it), the lab's validation pairs, the table in ROOT/OUT."""
    return ["score", "--policy", str(root / "theta" / "model"), "--reference",
            str(root / "lab" / "sft_model"), "--train", str(root / "train.jsonl"), "--validation",
            str(root / "lab" / "validation.jsonl"), "--out", str(root / out), "--quiet", *extra]


def assert_same_table(one: pd.DataFrame, two: pd.DataFrame, loose: dict[str, float]):
    """Ids, order, reasons identical; every float column equal to 1e-6 relative, except the columns
    in `loose` (a reduction over the ranks in them), equal to that fraction of the column's
    scale."""
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
