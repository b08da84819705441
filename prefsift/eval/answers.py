"""Answers of a model to held-out prompts, sampled with a seed, by a registered answer sampler.

`generate` (transformers' `generate`, chat template when the tokenizer has one) answers any causal
LM; the lab registers its own sampler for models with the lab's word-level tokenizer, so a lab
model is answered the lab's way even when it is read from files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from ..core.registry import Registry


@dataclass(frozen=True)
class Sampler:
    """``answer(model, tokenizer, prompts, temperature=, max_new_tokens=, seed=) -> list[str]``,
    used for every tokenizer for which ``matches(tokenizer)`` is true."""

    name: str
    answer: Callable
    matches: Callable = lambda tokenizer: False


SAMPLERS: Registry[Sampler] = Registry("answer sampler", key="sampler", plugins=True)


def sampler_for(tokenizer) -> Sampler:
    """The last registered sampler that claims ``tokenizer``, else `generate`."""
    for name in reversed(SAMPLERS.names()):
        s = SAMPLERS.get(name)
        if s.matches(tokenizer):
            return s
    return SAMPLERS.get("generate")


def generate_answers(model, tokenizer, prompts: Sequence, *, temperature: float = 1.0,
                     max_new_tokens: int = 128, seed: int = 0, batch_size: int = 16,
                     conversational: bool | None = None) -> list[str]:
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
                msgs = [p if isinstance(p, list) else [{"role": "user", "content": p}]
                        for p in chunk]
                texts = [tokenizer.apply_chat_template(m, tokenize=False,
                                                       add_generation_prompt=True) for m in msgs]
                enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            else:
                enc = tokenizer(list(chunk), return_tensors="pt", padding=True)
            enc = enc.to(next(model.parameters()).device)
            torch.manual_seed(seed + s)
            with torch.no_grad():
                gen = model.generate(**enc, do_sample=temperature > 0,
                                     temperature=temperature if temperature > 0 else None,
                                     max_new_tokens=max_new_tokens,
                                     pad_token_id=tokenizer.pad_token_id)
            out += tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:],
                                          skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
    return out


SAMPLERS.register("generate", Sampler("generate", generate_answers))
