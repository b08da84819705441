"""A reward model's scores of pairs: r(x, y) of every chosen and rejected sequence, the
Bradley–Terry margin m = r(x, y_w) − r(x, y_l) (the RM's IRM) and loss ℓ = softplus(−m), and the
exact IF of every pair under that loss, IF(d) = ⟨∇L_val, ∇ℓ(d)⟩, per layer group.

Sequences are tokenized as TRL's RewardTrainer tokenizes them: prompt + response as one text
(EOS appended to standard responses; the chat template over the messages for conversational
ones), which is exactly the prompt's and the response's ids of `tokenize_pairs` put together. They
run right-padded with an attention mask; the model reads the reward at the last non-pad token."""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, jvp
from torch.nn.attention import SDPBackend, sdpa_kernel
from tqdm.auto import tqdm

from ..runtime.devices import accumulation_dtype
from ..train.reward import batch_rewards  # noqa: F401
from ..train.reward import padded as _padded
from .batching import plan_batches


def reward_sequences(pairs, max_length: int | None) -> list[list[int]]:
    """Chosen at 2i, rejected at 2i+1: prompt + response ids, cut to max_length."""
    out = []
    for tp in pairs:
        for resp in (tp.chosen_ids, tp.rejected_ids):
            ids = list(tp.prompt_ids) + list(resp)
            out.append(ids[:max_length] if max_length is not None else ids)
    return out


def pair_rewards(model, pairs, pad_id: int, max_length: int | None = 1024,
                 token_budget: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(r of each chosen, r of each rejected) in input order, batched by length under a token
    budget."""
    seqs = reward_sequences(pairs, max_length)
    out = np.zeros(len(seqs))
    was = model.training
    model.eval()
    with torch.no_grad():
        for batch in plan_batches([len(s) for s in seqs], token_budget, 64):
            out[batch] = batch_rewards(model, [seqs[i] for i in batch],
                                       pad_id).double().cpu().numpy()
    model.train(was)
    return out[0::2], out[1::2]


def bt_losses(model, pairs, pad_id: int, max_length: int | None) -> torch.Tensor:
    """softplus(−(r_w − r_l)) of each pair, with gradients."""
    r = batch_rewards(model, reward_sequences(pairs, max_length), pad_id)
    return F.softplus(-(r[0::2] - r[1::2]))


def reward_influence(model, params: "OrderedDict[str, torch.nn.Parameter]", train_pairs, val_pairs,
                     pad_id: int,
                     max_length: int | None = 1024, groups: Sequence[str] | None = None,
                     val_batch: int = 8, progress: bool = False) -> tuple[np.ndarray,
                                                                          "OrderedDict[str, "
                                                                          "np.ndarray]"]:
    """Exact IF of every training pair under the BT loss: the validation gradient (mean loss over
    the validation pairs), then one backward pass per training pair. Returns (total, per group)."""
    was = model.training
    model.eval()  # IF is a property of the weights, not of a dropout mask
    names = list(params)
    groups = list(groups) if groups is not None else ["all"] * len(names)
    g_val = validation_gradient_bt(model, params, val_pairs, pad_id, max_length, val_batch)
    per_group = OrderedDict((g, np.zeros(len(train_pairs))) for g in dict.fromkeys(groups))
    for i in tqdm(range(len(train_pairs)), desc="IF (reward model): per-pair gradients",
                  disable=not progress):
        loss = bt_losses(model, train_pairs[i:i + 1], pad_id, max_length)[0]
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        for gname, gi, v in zip(groups, grads, g_val):
            if gi is not None:
                per_group[gname][i] += float((gi.to(v.dtype) * v).sum())
    model.train(was)
    return sum(per_group.values()), per_group


def validation_gradient_bt(model, params, val_pairs, pad_id: int, max_length: int | None = 1024,
                           batch: int = 8) -> list[torch.Tensor]:
    """∇L_val of the reward model, L_val the mean BT loss over the validation pairs."""
    grads = [torch.zeros_like(p, dtype=accumulation_dtype(p)) for p in params.values()]
    n = len(val_pairs)
    for s in range(0, n, batch):
        loss = bt_losses(model, val_pairs[s:s + batch], pad_id, max_length).sum() / n
        for g, gi in zip(grads, torch.autograd.grad(loss, list(params.values()),
                                                    allow_unused=True)):
            if gi is not None:
                g += gi.to(g.dtype)
    return grads


def reward_influence_jvp(model, params: "OrderedDict[str, torch.nn.Parameter]", train_pairs,
                         val_pairs, pad_id: int, max_length: int | None = 1024,
                         groups: Sequence[str] | None = None, batch: int = 8,
                         progress: bool = False) -> tuple[np.ndarray,
                                                          "OrderedDict[str, np.ndarray]"]:
    """The same IF by forward mode: IF(d) = d/dε ℓ(θ + ε·∇L_val; d), for a batch of pairs in one
    pass per layer group (the tangent restricted to the group), no per-pair gradient. SDPA runs on
    its math backend (its flash kernel has no forward-mode derivative)."""
    was = model.training
    model.eval()
    names = list(params)
    groups = list(groups) if groups is not None else ["all"] * len(names)
    g_val = validation_gradient_bt(model, params, val_pairs, pad_id, max_length)
    primals = {n: p.detach() for n, p in params.items()}
    device = next(model.parameters()).device
    per_group = OrderedDict((g, np.zeros(len(train_pairs))) for g in dict.fromkeys(groups))
    for s in tqdm(range(0, len(train_pairs), batch), desc="IF (reward model): forward mode",
                  disable=not progress):
        seqs = reward_sequences(train_pairs[s:s + batch], max_length)
        ids, mask = _padded(seqs, pad_id, device)

        def losses(p):
            logits = functional_call(model, p, (), {"input_ids": ids, "attention_mask": mask,
                                                    "use_cache": False}).logits
            r = logits[:, 0].to(accumulation_dtype(logits))
            return F.softplus(-(r[0::2] - r[1::2]))

        for gname in per_group:
            tangent = {n: (v.to(primals[n].dtype) if g == gname else torch.zeros_like(primals[n]))
                       for n, g, v in zip(names, groups, g_val)}
            with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
                _, d = jvp(losses, (primals,), (tangent,))
            per_group[gname][s:s + len(seqs) // 2] = d.double().cpu().numpy()
    model.train(was)
    return sum(per_group.values()), per_group
