"""Seeded temperature sampling from a lab model, batched by prompt length (so no padding at all).

A small loop of our own rather than `model.generate`: the lab's prompts come in a handful of
lengths, so grouping them removes padding, position-id and mask subtleties, and one explicit
`torch.Generator` makes the draws reproducible. Special tokens other than EOS are never sampled,
and EOS is not allowed as the first token, so every response has at least one word.
"""

from __future__ import annotations

import inspect
from collections import defaultdict

import torch
from tqdm.auto import tqdm

from .task import words_to_response


@torch.no_grad()
def sample_responses(
    model,
    tokenizer,
    prompts: list[str],
    n_samples: int = 1,
    *,
    temperature: float = 1.0,
    max_new_tokens: int = 10,
    seed: int = 0,
    batch_size: int = 512,
    progress: bool = False,
    desc: str = "sampling",
) -> list[list[str]]:
    """``n_samples`` responses per prompt: ``out[i][j]`` is the j-th sample for ``prompts[i]``.

    Each response is written like every lab response (``" 1 3 7"``: leading space, no EOS text).
    A response that reaches ``max_new_tokens`` without EOS is kept as it stands (truncated)."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    if n_samples < 1 or max_new_tokens < 1:
        raise ValueError("need n_samples >= 1 and max_new_tokens >= 1")
    if not prompts:
        return []
    was_training = model.training
    model.eval()
    eos = tokenizer.eos_token_id
    banned = sorted({tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.unk_token_id}
                    - {None})
    vocab_words = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device

    encoded = tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, ids in enumerate(encoded):
        by_length[len(ids)].append(i)
    jobs = [(i, j) for length in sorted(by_length) for i in by_length[length]
            for j in range(n_samples)]
    out: list[list[str]] = [[""] * n_samples for _ in prompts]

    bar = None
    if progress:
        bar = tqdm(total=len(jobs), desc=desc, unit="seq", leave=False)
    start = 0
    while start < len(jobs):
        length = len(encoded[jobs[start][0]])
        stop = start
        while (stop < len(jobs) and stop - start < batch_size
               and len(encoded[jobs[stop][0]]) == length):
            stop += 1
        chunk = jobs[start:stop]
        ids = torch.tensor([encoded[i] for i, _ in chunk], dtype=torch.long, device=device)
        new = _sample_batch(model, ids, eos, banned, temperature, max_new_tokens, gen)
        for (i, j), row in zip(chunk, new):
            out[i][j] = words_to_response(vocab_words[t] for t in row)
        if bar is not None:
            bar.update(len(chunk))
        start = stop
    if bar is not None:
        bar.close()
    model.train(was_training)
    return out


def _sample_batch(model, ids, eos, banned, temperature, max_new_tokens, gen) -> list[list[int]]:
    """Sample continuations of equal-length prompts; returns the new ids of each row, EOS cut
    off."""
    batch = ids.shape[0]
    finished = [False] * batch
    rows: list[list[int]] = [[] for _ in range(batch)]
    cache_kw = _cache_kwarg(model)
    past = None
    step_input = ids
    for step in range(max_new_tokens):
        result = model(input_ids=step_input, use_cache=True, **{cache_kw: past})
        past = getattr(result, cache_kw, None)
        logits = result.logits[:, -1, :].float().cpu() / temperature
        logits[:, banned] = float("-inf")
        if step == 0:
            logits[:, eos] = float("-inf")
        probs = torch.softmax(logits, dim=-1)
        nxt = torch.multinomial(probs, 1, generator=gen).squeeze(1)
        for r, t in enumerate(nxt.tolist()):
            if not finished[r]:
                if t == eos:
                    finished[r] = True
                else:
                    rows[r].append(t)
        if all(finished):
            break
        step_input = nxt.unsqueeze(1).to(ids.device)
    return rows


def _cache_kwarg(model) -> str:
    """transformers 5.x renamed ``past_key_values`` to ``cache``; support both spellings."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"
