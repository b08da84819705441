"""Supervised fine-tuning that teaches a tiny causal LM the lab task — on purpose, imperfectly.

A plain torch loop, nanoGPT-style: fresh seeded prompts every step (the held-out test prompts are
excluded), cross-entropy on the response tokens and EOS only, AdamW with a short warm-up and cosine
decay. Two things keep the model imperfect, so that preference pairs built from its samples differ
in quality:

- a share ``flaw_rate`` of the demonstrations carries a systematic habit (`task.flawed_words`: an
  extra item, a dropped item, the input echoed) — the way web-scale SFT data teaches a model habits
  that it can perform well but should not; the model learns them as alternative modes, which a
  preference stage can then shift mass away from;
- a limited number of steps, so the harder tasks (sort, reverse) are only partly learnt.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from prefsift.models.loading import build_tiny_model

from ..models.loading import load_pretrained, tokenizer_from_folder
from .task import (
    FLAWS,
    PromptGenerator,
    best_response,
    flawed_words,
    parse_prompt,
    words_to_response,
)


@dataclass
class SFTConfig:
    """How the lab's reference (SFT) model is trained."""

    preset: str = field(default="lab-a", metadata={"help": "tiny model preset "
                                                   "(prefsift.models.loading.TINY_PRESETS)"})
    seed: int = field(default=0,
                      metadata={"help": "seed of the initial weights and of the training prompts"})
    steps: int = field(default=300, metadata={"help": "optimizer steps; few on purpose, so the "
                                                      "model stays imperfect"})
    batch_size: int = field(default=64, metadata={"help": "sequences per step"})
    lr: float = field(default=3e-3, metadata={"help": "peak AdamW learning rate"})
    warmup_steps: int = field(default=20,
                              metadata={"help": "linear warm-up steps before the cosine decay"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    grad_clip: float = field(default=1.0, metadata={"help": "max global gradient norm (0 = off)"})
    flaw_rate: float = field(default=0.0, metadata={"help": "share of demonstrations with a "
                                                            "systematic habit (task.FLAWS)"})


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """Use ``threads`` intra-op threads inside the block and restore the caller's setting after;
    ``None`` leaves the setting alone."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def build_lab_model(tokenizer, preset: str = "lab-a", seed: int = 0):
    """A fresh seeded tiny causal LM sized for the lab tokenizer."""
    model = build_tiny_model(
        preset,
        len(tokenizer),
        seed=seed,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    gc = model.generation_config
    gc.bos_token_id, gc.eos_token_id, gc.pad_token_id = (
        tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    return model


def sft_batch(tokenizer, prompts: list[str], responses: list[str]) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``/``attention_mask``/``labels``; labels are -100 except on the
    response tokens and the closing EOS (the prompt and its BOS are not trained on)."""
    prompt_ids = tokenizer(prompts)["input_ids"]
    full_ids = tokenizer([p + r for p, r in zip(prompts, responses)])["input_ids"]
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    seqs, labels = [], []
    for p, f in zip(prompt_ids, full_ids):
        if f[: len(p)] != p:
            raise ValueError("prompt tokens are not a prefix of prompt+response tokens")
        seq = f + [eos]
        seqs.append(seq)
        labels.append([-100] * len(p) + seq[len(p):])
    width = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    lab = torch.full((len(seqs), width), -100, dtype=torch.long)
    for i, (s, l) in enumerate(zip(seqs, labels)):
        input_ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
        lab[i, : len(l)] = torch.tensor(l)
    return {"input_ids": input_ids, "attention_mask": mask, "labels": lab}


def _lr_at(step: int, cfg: SFTConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = (step - cfg.warmup_steps) / span
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def demonstration(prompt: str, rng, flaw_rate: float) -> str:
    """The SFT target of a prompt: the oracle's best response, or with probability ``flaw_rate`` a
    flawed one (a flaw drawn uniformly from `task.FLAWS`)."""
    if flaw_rate > 0 and rng.random() < flaw_rate:
        p = parse_prompt(prompt)
        return words_to_response(flawed_words(p.task, p.items, rng.choice(FLAWS)))
    return best_response(prompt)


def train_sft(tokenizer, cfg: SFTConfig, *, exclude_prompts=(), threads: int | None = None,
              progress: bool = True):
    """Train a fresh ``cfg.preset`` model on (prompt, `demonstration`) and return ``(model, log)``;
    ``log`` holds the loss curve (every 10 steps), the final loss and the wall time."""
    with torch_threads(threads):
        t0 = time.perf_counter()
        model = build_lab_model(tokenizer, cfg.preset, cfg.seed)
        model.train()
        # A different stream from the pair and test prompts: offset the seed.
        gen = PromptGenerator(cfg.seed + 7919, exclude=exclude_prompts, unique=False)
        flaw_rng = random.Random(f"{cfg.seed}-sft-flaws")
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                betas=(0.9, 0.98))
        curve: list[tuple[int, float]] = []
        bar = tqdm(range(cfg.steps), desc="lab SFT", unit="step", disable=not progress, leave=False)
        loss_value = float("nan")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            for step in bar:
                prompts = [p.text for p in gen.draw(cfg.batch_size)]
                targets = [demonstration(p, flaw_rng, cfg.flaw_rate) for p in prompts]
                batch = sft_batch(tokenizer, prompts, targets)
                for g in opt.param_groups:
                    g["lr"] = _lr_at(step, cfg)
                loss = model(**batch).loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                loss_value = float(loss.detach())
                if step % 10 == 0 or step == cfg.steps - 1:
                    curve.append((step, loss_value))
                    bar.set_postfix(loss=f"{loss_value:.3f}")
        model.eval()
        log = {"config": asdict(cfg), "final_loss": loss_value, "loss_curve": curve,
               "wall_s": time.perf_counter() - t0}
    return model, log


def save_sft(model, tokenizer, folder: str | Path) -> Path:
    """Save model (safetensors) and tokenizer so `AutoModelForCausalLM.from_pretrained` loads it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def load_sft(folder: str | Path):
    """``(model, tokenizer)`` from a folder written by `save_sft`, in fp32 and eval mode."""
    from transformers import AutoModelForCausalLM


    model = load_pretrained(AutoModelForCausalLM, folder, dtype=torch.float32)
    model.eval()
    return model, tokenizer_from_folder(folder)
