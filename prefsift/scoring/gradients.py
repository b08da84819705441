"""Gradients of the pairwise loss: per pair (a loop of backward passes, or `torch.func.vmap`), of
the mean validation loss, and the empirical Fisher diagonal. The two sums over many pairs are
split over the ranks of a sharded run by whole batches and summed across them (`distributed`).

A model sharded with FSDP (`shard fsdp`) holds only a shard of each weight on each rank. Every rank
runs the same pairs, and a backward pass leaves on each rank its shard of their gradient: FSDP
averages the ranks' equal gradients. The gradients here are then each rank's local shards.
Inner products of two such gradients are the sum over the ranks of the local products
(scoring/influence.py)."""

from __future__ import annotations

import warnings
from typing import Sequence

import torch
from torch.func import functional_call, grad, vmap
from tqdm.auto import tqdm

from ..data.tokenization import TokenizedPair
from ..models.objectives import PairwiseObjective
from ..runtime.devices import accumulation_dtype
from ..runtime.distributed import mine, sum_tensors
from ..runtime.sharding import is_sharded, local_part
from .batching import pair_sequences
from .logprobs import batch_logps


class PairInputs(Sequence):
    """Pair i as its (chosen, rejected) sequences, built when accessed (see `PairSequences`)."""

    def __init__(self, pairs: Sequence[TokenizedPair], max_length: int | None):
        self.seqs = pair_sequences(pairs, max_length)

    def __len__(self) -> int:
        return len(self.seqs) // 2

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = i + len(self) if i < 0 else i
        return self.seqs[2 * i], self.seqs[2 * i + 1]

    def tokens(self, start: int, stop: int) -> int:
        """Tokens of the pairs start..stop-1 (the cost of computing them)."""
        return sum(self.seqs.length(k) for k in range(2 * start, 2 * min(stop, len(self))))


def pair_inputs(pairs: Sequence[TokenizedPair], max_length: int | None) -> PairInputs:
    return PairInputs(pairs, max_length)


def pair_losses(model, pair_seqs, ref_chosen, ref_rejected, objective: PairwiseObjective,
                pad_id: int):
    """Per-pair loss ℓ(θ; d) with gradients (reference log-probs are constants)."""
    flat = [s for pair in pair_seqs for s in pair]
    logps = batch_logps(model, flat, pad_id)
    chosen, rejected = logps[0::2], logps[1::2]
    dtype = logps.dtype
    on = dict(dtype=dtype, device=logps.device)
    lens_c = torch.tensor([max(len(c[0]) - c[1], 0) for c, _ in pair_seqs], **on)
    lens_r = torch.tensor([max(len(r[0]) - r[1], 0) for _, r in pair_seqs], **on)
    margin = objective.margin(chosen, rejected, torch.as_tensor(ref_chosen, **on),
                              torch.as_tensor(ref_rejected, **on), lens_c, lens_r)
    return objective.loss(margin)


def validation_gradient(model, params, val_pairs, ref_chosen, ref_rejected, objective, pad_id,
                        max_length=1024, batch_pairs: int = 4):
    """∇θ L_val with L_val the mean loss over the validation pairs, for the selected parameters."""
    seqs = pair_inputs(val_pairs, max_length)
    sharded = is_sharded(model)
    # Accumulated in fp32 (fp64 for fp64 models), whatever the weights' precision.
    grads = [torch.zeros_like(local_part(p), dtype=accumulation_dtype(p)) for p in params.values()]
    n = len(seqs)
    starts = list(range(0, n, batch_pairs))
    # (FSDP: every rank runs every batch; its gradient shard is the whole gradient's)
    ours = ([True] * len(starts) if sharded
            else mine([seqs.tokens(s, s + batch_pairs) for s in starts]))
    for s, own in zip(starts, ours):
        if not own:  # another rank's batch
            continue
        loss = pair_losses(model, seqs[s:s + batch_pairs], ref_chosen[s:s + batch_pairs],
                           ref_rejected[s:s + batch_pairs], objective, pad_id).sum() / n
        for g, gi in zip(grads, parameter_grads(model, loss, params)):
            if gi is not None:
                g += gi.to(g.dtype)
    if not sharded:
        sum_tensors(grads)  # the ranks' partial sums → the whole gradient, on every rank
    return grads


def parameter_grads(model, loss, params) -> list:
    """∂loss/∂p for each selected parameter (None where it does not reach p). On an FSDP model,
    this rank's shard of it: a backward pass fills the shards' `.grad`, read and cleared here."""
    if not is_sharded(model):
        return list(torch.autograd.grad(loss, list(params.values()), allow_unused=True))
    model.zero_grad(set_to_none=True)
    loss.backward()
    out = [None if p.grad is None else local_part(p.grad).clone() for p in params.values()]
    model.zero_grad(set_to_none=True)
    return out


def per_pair_grads(model, params, seqs_batch, ref_c, ref_r, objective, pad_id, use_vmap: bool):
    """Per-pair gradients of the selected parameters: a list (per parameter) of (B, *shape)."""
    names = list(params)
    if not use_vmap:
        out = [[] for _ in names]
        for i, pair in enumerate(seqs_batch):
            loss = pair_losses(model, [pair], ref_c[i:i + 1], ref_r[i:i + 1], objective, pad_id)[0]
            gs = parameter_grads(model, loss, params)
            for j, (g, p) in enumerate(zip(gs, params.values())):
                out[j].append(torch.zeros_like(local_part(p)) if g is None else g)
        return [torch.stack(o) for o in out]
    if is_sharded(model):
        raise ValueError("per-pair gradients by vmap need whole weights; an FSDP model takes the "
                         "loop")


    # Pad every sequence of the batch to one length (right padding, no mask: causal models ignore
    # what comes after a token) and describe scored positions by a mask, which vmap can batch.
    flat = [s for pair in seqs_batch for s in pair]
    longest = max(len(ids) for ids, _ in flat)
    ids = torch.full((len(flat), longest), pad_id, dtype=torch.long)
    mask = torch.zeros(len(flat), longest)
    for b, (seq, start) in enumerate(flat):
        ids[b, : len(seq)] = torch.tensor(seq)
        mask[b, start:len(seq)] = 1.0
    # log-probs and margins in fp32 or better
    dtype = accumulation_dtype(next(iter(params.values())))
    ids, mask = (ids.view(len(seqs_batch), 2, longest),
                 mask.view(len(seqs_batch), 2, longest).to(dtype))
    refs = torch.stack([torch.as_tensor(ref_c, dtype=dtype), torch.as_tensor(ref_r, dtype=dtype)],
                       dim=1)
    device = next(iter(params.values())).device
    ids, mask, refs = ids.to(device), mask.to(device), refs.to(device)
    frozen = {n: p.detach() for n, p in model.named_parameters() if n not in params}
    frozen.update({n: b for n, b in model.named_buffers()})

    def loss_of(p, ids_i, mask_i, refs_i):
        logits = functional_call(model, {**frozen, **p}, (ids_i,), {"use_cache": False}).logits[:,
                :-1].to(dtype)
        logp = torch.log_softmax(logits, dim=-1).gather(-1, ids_i[:, 1:, None])[..., 0]
        sums = (logp * mask_i[:, 1:]).sum(-1)
        lens = mask_i[:, 1:].sum(-1)
        m = objective.margin(sums[0:1], sums[1:2], refs_i[0:1], refs_i[1:2], lens[0:1], lens[1:2])
        return objective.loss(m)[0]

    detached = {n: p.detach() for n, p in params.items()}
    with warnings.catch_warnings():
        # sdpa's CPU backward has no batching rule yet; torch falls back to a loop and says so.
        warnings.filterwarnings("ignore", message=".*batching rule.*")
        g = vmap(grad(loss_of), in_dims=(None, 0, 0, 0))(detached, ids, mask, refs)
    return [g[n] for n in names]


def inverse_fisher(model, params, seqs, ref_train, objective, pad_id, damping: float, batch: int,
                   use_vmap: bool, progress: bool):
    """(F + λ·mean F)⁻¹ per parameter, F the mean squared per-pair gradient over the training pairs
    (empirical Fisher diagonal), λ = `damping`: one pass of per-pair gradients, `batch` pairs at a
    time."""
    sharded = is_sharded(model)
    fisher = [torch.zeros_like(local_part(p), dtype=accumulation_dtype(p)) for p in params.values()]
    starts = list(range(0, len(seqs), batch))
    ours = [True] * len(starts) if sharded else mine([seqs.tokens(s, s + batch) for s in starts])
    for s in tqdm([s for s, own in zip(starts, ours) if own], desc="IF: Fisher diagonal",
                  disable=not progress):
        gs = per_pair_grads(model, params, seqs[s:s + batch], ref_train[0][s:s + batch],
                             ref_train[1][s:s + batch], objective, pad_id, use_vmap)
        for f, g in zip(fisher, gs):
            f += (g.detach().to(f.dtype) ** 2).sum(0) / len(seqs)
    if sharded:  # the mean is over every rank's shard
        total = torch.stack([sum(f.sum() for f in fisher)])
        sum_tensors([total])
        mean_f = total[0] / sum(p.numel() for p in params.values())
    else:
        sum_tensors(fisher)
        mean_f = sum(f.sum() for f in fisher) / sum(p.numel() for p in params.values())
    return [1.0 / (f + damping * mean_f) for f in fisher]
