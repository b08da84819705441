"""Summed response log-probs of chosen and rejected, per pair, equal to what TRL's DPOTrainer
computes, in fp32 — and several times faster on a CPU.

Why it is faster than TRL's reference pass, with the same numbers:
- sequences are sorted by length and batched under a token budget, so little compute goes to
  padding (TRL pads every batch to its longest sequence in data order);
- sequences are right-padded and run *without* an attention mask: in a causal model a real token
  never attends to a later position, so right padding cannot change it, and the maskless call takes
  the fast causal path (and works under `torch.func.vmap`);
- the output head (49k columns for SmolLM2) is applied only at the positions that predict a
  completion token, not at every position.

Positions scored match TRL: tokens of the completion, prompt masked, token 0 never scored; with
`max_length` the sequence prompt+completion is cut to its first `max_length` tokens (keep_start)."""

from __future__ import annotations

import hashlib
import inspect
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core import artifacts, faults
from ..data.tokenization import TokenizedPair

# re-exported: stages key their inputs with it
from ..models.loading import model_fingerprint  # noqa: F401
from ..runtime.devices import model_device
from ..runtime.distributed import World, merge_arrays, shares, world
from ..runtime.sharding import is_sharded

# re-exported
from .batching import PairSequences, pair_sequences, plan_batches, plan_shared_batches  # noqa: F401


@dataclass(frozen=True)
class LogprobSettings:
    max_length: int | None = 1024  # TRL DPOConfig.max_length; None = no truncation
    # padded tokens per forward batch (on 2 CPU cores 512–1024 ran fastest; see benchmarks/)
    token_budget: int = 1024
    max_batch: int = 64  # sequences per forward batch
    # completion positions per output-head matmul (bounds memory: rows x vocab x 8 B)
    head_chunk: int = 1024
    # run each prompt once (KV cache): fewer tokens, but measured slower on CPU (benchmarks/)
    share_prompt: bool = False


@dataclass
class PairLogps:
    """Per pair, in input order."""

    chosen: np.ndarray  # float64 copies of fp32 sums
    rejected: np.ndarray
    chosen_tokens: np.ndarray  # completion tokens scored (after truncation)
    rejected_tokens: np.ndarray


@dataclass
class EngineStats:
    sequences: int = 0
    real_tokens: int = 0
    processed_tokens: int = 0
    seconds: float = 0.0

    @property
    def padding_efficiency(self) -> float:
        return self.real_tokens / max(self.processed_tokens, 1)

    def describe(self) -> str:
        return (f"{self.sequences} sequences in {self.seconds:.1f} s "
                f"({self.sequences / 2 / max(self.seconds, 1e-9):.1f} pairs/s), padding efficiency "
                f"{self.padding_efficiency:.1%}")


def _backbone_and_head(model):
    """(backbone, head) when the logits are a plain linear head over the backbone's last hidden
    state, else None (then the model's own forward is used). A model sharded with FSDP always runs
    its own forward, so FSDP's root unit gathers and frees the embeddings and the head."""
    if is_sharded(model):
        return None
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    cfg = getattr(base, "config", None)
    text_cfg = cfg.get_text_config() if cfg is not None and hasattr(cfg, "get_text_config") else cfg
    for attr in ("final_logit_softcapping", "logit_scale", "output_multiplier",
                 "lm_head_multiplier", "logits_scaling"):
        if getattr(text_cfg, attr, None) is not None:
            return None  # logits are post-processed by the model's forward
    backbone = getattr(base, "base_model", None)
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    if backbone is None or backbone is base or head is None:
        return None
    return backbone, head


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    # fp32 for bf16/fp16 models (their log-probs drift by up to a nat); fp64 stays fp64 (finite
    # differences).
    return x if x.dtype == torch.float64 else x.float()


def token_logps_from_logits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) = logit[target] − logsumexp(logits), the normaliser in float64.

    An fp32 logsumexp over a 49k vocabulary is off by a few 1e-6 per token with a consistent sign,
    which adds up to about 1e-3 nat over a 500-token response; in float64 the sum stays within
    1e-5 of an all-float64 forward pass."""
    logits = _at_least_fp32(logits)
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    if logits.requires_grad:
        # Gradients (IF, training) need no float64 normaliser, and autograd would keep a float64
        # copy of every (token x vocabulary) chunk alive until backward.
        return picked - torch.logsumexp(logits, dim=-1)
    return picked.double() - torch.logsumexp(logits.double(), dim=-1)


def _head_logps(head, picked: torch.Tensor, targets: torch.Tensor, head_chunk: int) -> torch.Tensor:
    """Log-probs of `targets` from the hidden states `picked` (one row each), the output head
    applied `head_chunk` rows at a time so only chunk x vocabulary logits exist at once."""
    parts = [token_logps_from_logits(head(picked[s:s + head_chunk]), targets[s:s + head_chunk])
             for s in range(0, len(targets), head_chunk)]
    return torch.cat(parts) if parts else picked.new_zeros(0)


def batch_logps(model, seqs: Sequence[tuple[list[int], int]], pad_id: int,
                head_chunk: int = 1024) -> torch.Tensor:
    """Summed log-probs of each sequence's tokens from its first scored position on
    (differentiable)."""
    device = next(model.parameters()).device
    longest = max(len(ids) for ids, _ in seqs)
    input_ids = torch.full((len(seqs), longest), pad_id, dtype=torch.long)
    rows, cols = [], []
    for b, (ids, start) in enumerate(seqs):
        input_ids[b, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        for t in range(start, len(ids)):  # position t-1 predicts token t
            rows.append(b)
            cols.append(t)
    input_ids = input_ids.to(device)
    rows_t = torch.tensor(rows, dtype=torch.long, device=device)
    cols_t = torch.tensor(cols, dtype=torch.long, device=device)
    targets = input_ids[rows_t, cols_t]
    parts = _backbone_and_head(model)
    if parts is not None:
        backbone, head = parts
        hidden = backbone(input_ids=input_ids, use_cache=False).last_hidden_state
        token_logps = _head_logps(head, hidden[rows_t, cols_t - 1], targets, head_chunk)
    else:
        logits = model(input_ids=input_ids, use_cache=False).logits
        token_logps = token_logps_from_logits(logits[rows_t, cols_t - 1], targets)
    sums = torch.zeros(len(seqs), dtype=token_logps.dtype, device=device)
    return sums.index_add(0, rows_t, token_logps)


def _cache_kwarg(backbone) -> str:
    """transformers 5.x names the KV-cache argument `cache`; earlier versions `past_key_values`."""
    params = inspect.signature(backbone.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _shared_prompt_batch(model, pairs: Sequence[TokenizedPair], max_length: int | None, pad_id: int,
                         head_chunk: int) -> tuple[torch.Tensor, int, int]:
    """Chosen/rejected sums for a batch of pairs, each prompt run once.

    Prompts are right-padded and run without a mask; chosen and rejected then continue from the
    prompt's KV cache (repeated twice), with a mask that hides the prompt padding and position ids
    that continue each prompt. The first response token is predicted by the prompt's last hidden
    state. Returns (sums of shape (2B,) in chosen/rejected order, real tokens, processed tokens)."""
    backbone, head = _backbone_and_head(model)
    device = next(model.parameters()).device
    B = len(pairs)
    conts, plens = [], []
    for tp in pairs:
        p = len(tp.prompt_ids)
        room = None if max_length is None else max_length - p
        plens.append(p)
        for resp in (tp.chosen_ids, tp.rejected_ids):
            conts.append(list(resp) if room is None else list(resp)[:room])
    lp, lc = max(plens), max(len(c) for c in conts)
    prompt_ids = torch.full((B, lp), pad_id, dtype=torch.long)
    for b, tp in enumerate(pairs):
        prompt_ids[b, : plens[b]] = torch.tensor(tp.prompt_ids, dtype=torch.long)
    cont_ids = torch.full((2 * B, max(lc, 1)), pad_id, dtype=torch.long)
    mask = torch.zeros((2 * B, lp + max(lc, 1)), dtype=torch.long)
    pos = torch.zeros((2 * B, max(lc, 1)), dtype=torch.long)
    rows_h, rows, cols = [], [], []  # first token: from the prompt pass; the rest: the continuation
    for s, c in enumerate(conts):
        b = s // 2
        cont_ids[s, : len(c)] = torch.tensor(c, dtype=torch.long)
        mask[s, : plens[b]] = 1
        mask[s, lp: lp + len(c)] = 1
        pos[s] = plens[b] + torch.arange(max(lc, 1))
        if c:
            rows_h.append(s)
        for j in range(1, len(c)):
            rows.append(s)
            cols.append(j)
    cache_kw = _cache_kwarg(backbone)
    out = backbone(input_ids=prompt_ids.to(device), use_cache=True)
    cache = getattr(out, "cache", None) or out.past_key_values
    last = out.last_hidden_state[torch.arange(B, device=device),
                                 torch.tensor(plens, device=device) - 1]
    cache.batch_repeat_interleave(2)
    hidden = backbone(input_ids=cont_ids.to(device), attention_mask=mask.to(device),
                      position_ids=pos.to(device),
                      use_cache=True, **{cache_kw: cache}).last_hidden_state
    rows_h_t = torch.tensor(rows_h, dtype=torch.long, device=device)
    rows_t = torch.tensor(rows, dtype=torch.long, device=device)
    cols_t = torch.tensor(cols, dtype=torch.long, device=device)
    cont_ids = cont_ids.to(device)
    picked = torch.cat([last.repeat_interleave(2, dim=0)[rows_h_t], hidden[rows_t, cols_t - 1]])
    targets = torch.cat([cont_ids[rows_h_t, 0], cont_ids[rows_t, cols_t]])
    owners = torch.cat([rows_h_t, rows_t])
    token_logps = _head_logps(head, picked, targets, head_chunk)
    sums = torch.zeros(2 * B, dtype=token_logps.dtype, device=device).index_add(0, owners,
                                                                                token_logps)
    real = sum(plens) + sum(len(c) for c in conts)
    return sums, real, B * lp + 2 * B * max(lc, 1)


def compute_pair_logps(model, pairs: Sequence[TokenizedPair], pad_id: int,
                       settings: LogprobSettings = LogprobSettings(), progress: bool = True,
                       desc: str = "log-probs", stats: EngineStats | None = None,
                       shard: World | None = None) -> PairLogps:
    """Chosen and rejected summed log-probs for every pair, in input order, without gradients.

    With a sharded `shard`, only that rank's batches are computed (0 elsewhere; `merge_logps` sums
    the ranks'): the batches are planned over all pairs first, so every sequence is computed in the
    batch it has in a one-process run."""
    seqs = pair_sequences(pairs, settings.max_length)
    lengths = [seqs.length(k) for k in range(len(seqs))]
    out = np.zeros(len(seqs), dtype=np.float64)
    idle = 0  # one-token forwards that keep an FSDP rank in step with the others
    stats = stats if stats is not None else EngineStats()
    t0 = time.perf_counter()
    was_training = model.training
    model.eval()
    bar = tqdm(total=len(pairs), desc=desc, unit="pair", disable=not progress, smoothing=0.1)
    # Pairs whose prompt can be run once: a non-empty prompt (token 0 is never scored) that leaves
    # room for the response under max_length. The others take the plain route.
    shared = []
    if settings.share_prompt and _backbone_and_head(model) is not None:
        shared = [i for i, tp in enumerate(pairs) if tp.prompt_ids
                  and (settings.max_length is None or len(tp.prompt_ids) < settings.max_length)]
    plain = sorted(set(range(len(pairs))) - set(shared))
    plain_seqs = [k for i in plain for k in (2 * i, 2 * i + 1)]
    batches = [[plain_seqs[j] for j in b] for b in
               plan_batches([lengths[k] for k in plain_seqs], settings.token_budget,
                            settings.max_batch)]
    shared_batches = plan_shared_batches(
        shared, [len(pairs[i].prompt_ids) for i in shared],
        [max(lengths[2 * i], lengths[2 * i + 1]) - len(pairs[i].prompt_ids) for i in shared],
        settings.token_budget, settings.max_batch)
    if shard is not None and shard.sharded:
        # Whole batches go to ranks, balanced by padded tokens (the engine's cost).
        def padded(batch, shared_route):
            if shared_route:
                return len(batch) * max(len(pairs[i].prompt_ids)
                                        + 2 * (max(lengths[2 * i], lengths[2 * i + 1])
                                               - len(pairs[i].prompt_ids)) for i in batch)
            return len(batch) * max(lengths[k] for k in batch)

        every = [(b, True) for b in shared_batches] + [(b, False) for b in batches]
        owner = shares([padded(b, r) for b, r in every], shard.size)
        shared_batches = [b for (b, r), o in zip(every, owner) if o == shard.rank and r]
        batches = [b for (b, r), o in zip(every, owner) if o == shard.rank and not r]
        if is_sharded(model):
            # Every forward of an FSDP model gathers each layer from all the ranks: a rank with
            # fewer batches runs one-token forwards until every rank has run as many as the busiest.
            calls = [sum(2 if r else 1 for (b, r), o in zip(every, owner) if o == k)
                     for k in range(shard.size)]
            idle = max(calls) - calls[shard.rank]
        bar.total = sum(len(b) for b in shared_batches) + sum(len(b) for b in batches) / 2
        bar.refresh()
    try:
        with torch.no_grad():
            for batch in shared_batches:
                sums, real, processed = _shared_prompt_batch(model, [pairs[i] for i in batch],
                                                             settings.max_length,
                                                             pad_id, settings.head_chunk)
                idx = [k for i in batch for k in (2 * i, 2 * i + 1)]
                out[idx] = sums.double().cpu().numpy()
                stats.sequences += len(idx)
                stats.real_tokens += real
                stats.processed_tokens += processed
                bar.update(len(batch))
                bar.set_postfix(pad_eff=f"{stats.real_tokens / max(stats.processed_tokens, 1):.0%}")
            for batch in batches:
                vals = batch_logps(model, [seqs[i] for i in batch], pad_id, settings.head_chunk)
                out[batch] = vals.double().cpu().numpy()
                faults.point(f"logprobs:{desc}")
                stats.sequences += len(batch)
                stats.real_tokens += sum(lengths[i] for i in batch)
                stats.processed_tokens += max(lengths[i] for i in batch) * len(batch)
                bar.update(len(batch) / 2)
                bar.set_postfix(pad_eff=f"{stats.real_tokens / max(stats.processed_tokens, 1):.0%}")
            for _ in range(idle):
                model(input_ids=torch.full((1, 1), pad_id, dtype=torch.long,
                                           device=model_device(model)),
                      use_cache=False)
    finally:
        bar.close()
        model.train(was_training)
    stats.seconds += time.perf_counter() - t0
    scored = np.array([seqs.scored(k) for k in range(len(seqs))])
    return PairLogps(out[0::2], out[1::2], scored[0::2], scored[1::2])


# ---------------------------------------------------------------------------------------------
# Disk cache: a second run with the same model, tokenizer, data and settings does no forward pass.


def data_fingerprint(pairs: Sequence[TokenizedPair]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for tp in pairs:
        for ids in (tp.prompt_ids, tp.chosen_ids, tp.rejected_ids):
            h.update(np.asarray(ids, dtype=np.int64).tobytes())
            h.update(b"|")
    return h.hexdigest()


def cached_pair_logps(model, pairs: Sequence[TokenizedPair], pad_id: int,
                      cache_dir: str | Path | None,
                      settings: LogprobSettings = LogprobSettings(), model_key: str | None = None,
                      progress: bool = True, desc: str = "log-probs",
                      stats: EngineStats | None = None, log=print) -> PairLogps:
    """`compute_pair_logps`, cached on disk under a fingerprint of (weights, token ids, settings).
    A cache file that does not match its recorded checksum is recomputed (`artifacts.trusted`).

    Token ids stand for (tokenizer, data): the same text under another tokenizer gives other ids."""
    here = world()
    if cache_dir is None:
        return merge_logps(compute_pair_logps(model, pairs, pad_id, settings, progress, desc, stats,
                                              here), here)
    if here.sharded:  # each rank keeps its own share, so a killed rank resumes alone
        cache_dir = Path(cache_dir) / here.tag()
    key_src = json.dumps({"model": model_key or model_fingerprint(model),
                          "data": data_fingerprint(pairs),
                          "settings": asdict(settings)}, sort_keys=True)
    key = hashlib.sha256(key_src.encode()).hexdigest()[:24]
    path = Path(cache_dir) / f"logps-{key}.npz"
    if artifacts.trusted(path, desc, log):
        with np.load(path) as z:
            return merge_logps(PairLogps(z["chosen"], z["rejected"], z["chosen_tokens"],
                                         z["rejected_tokens"]), here)
    res = compute_pair_logps(model, pairs, pad_id, settings, progress, desc, stats, here)
    artifacts.atomic_write(path, lambda tmp: np.savez(tmp, chosen=res.chosen, rejected=res.rejected,
                                                      chosen_tokens=res.chosen_tokens,
                                                      rejected_tokens=res.rejected_tokens))
    return merge_logps(res, here)


def merge_logps(part: PairLogps, w: World) -> PairLogps:
    """The ranks' shares of the log-probs summed into the whole (one process: `part` itself)."""
    if not w.sharded:
        return part
    got = merge_arrays({"chosen": part.chosen, "rejected": part.rejected}, w)
    return PairLogps(got["chosen"], got["rejected"], part.chosen_tokens, part.rejected_tokens)
