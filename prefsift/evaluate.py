"""WinRate and single scores of an aligned model's answers against the reference's.

WinRate = mean over prompts of P(aligned ≻ reference) by the judge (a tie counts ½), with a
percentile-bootstrap 95 % interval over prompts (seeded)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from .judges import Judge, Swapped


@dataclass
class WinRate:
    win_rate: float
    low: float
    high: float
    n: int

    def __str__(self):
        return f"{100 * self.win_rate:.1f}% [{100 * self.low:.1f}, {100 * self.high:.1f}] (n={self.n})"


def win_rate(prefs: Sequence[float], n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> WinRate:
    p = np.asarray(prefs, dtype=float)
    if len(p) == 0:
        raise ValueError("no comparisons to average")
    rng = np.random.default_rng(seed)
    boots = p[rng.integers(0, len(p), size=(n_boot, len(p)))].mean(axis=1)
    lo, hi = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2])
    return WinRate(float(p.mean()), float(lo), float(hi), len(p))


@dataclass
class Evaluation:
    judge: str
    win_rate: WinRate  # aligned vs reference
    score_aligned: float  # mean single score
    score_reference: float
    prefs: list[float]

    def to_dict(self):
        d = asdict(self)
        d["win_rate"] = asdict(self.win_rate)
        return d


def evaluate_answers(judge: Judge, prompts: Sequence[str], aligned: Sequence[str], reference: Sequence[str],
                     both_orders: bool = True, seed: int = 0) -> Evaluation:
    """Judge aligned against reference answers, prompt by prompt (in both orders by default)."""
    if not (len(prompts) == len(aligned) == len(reference)):
        raise ValueError("prompts, aligned and reference answers must have one entry per prompt")
    j = Swapped(judge) if both_orders and not isinstance(judge, Swapped) else judge
    prefs = j.prefers(prompts, aligned, reference)
    sa = float(np.mean(judge.scores(prompts, aligned)))
    sr = float(np.mean(judge.scores(prompts, reference)))
    return Evaluation(j.name, win_rate(prefs, seed=seed), sa, sr, list(map(float, prefs)))


def generate_answers(model, tokenizer, prompts: Sequence, *, temperature: float = 1.0, max_new_tokens: int = 128,
                     seed: int = 0, batch_size: int = 16, conversational: bool | None = None) -> list[str]:
    """Seeded answers of any causal LM: chat template when the tokenizer has one (or messages are
    given), left padding for batched generation; returns only the new text."""
    import torch

    if conversational is None:
        conversational = bool(getattr(tokenizer, "chat_template", None))
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    out = []
    try:
        for s in range(0, len(prompts), batch_size):
            chunk = prompts[s:s + batch_size]
            if conversational:
                msgs = [p if isinstance(p, list) else [{"role": "user", "content": p}] for p in chunk]
                texts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in msgs]
                enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            else:
                enc = tokenizer(list(chunk), return_tensors="pt", padding=True)
            torch.manual_seed(seed + s)
            with torch.no_grad():
                gen = model.generate(**enc, do_sample=temperature > 0, temperature=temperature if temperature > 0 else None,
                                     max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id)
            out += tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
    return out
