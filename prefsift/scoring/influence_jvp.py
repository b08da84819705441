"""Exact IF by forward-mode differentiation: one batched pass per batch of pairs.

IF(d) = ⟨∇L_val(θ), ∇ℓ(θ; d)⟩ is the directional derivative of ℓ(·; d) at θ along v = ∇L_val(θ).
`torch.func.jvp` of the per-pair losses with tangent v gives it for every pair of a batch at once:
no per-pair gradient, no backward pass, no stored activations. Its primal output is the policy's
log-probs, so IRM comes from the same pass.

Two things forward mode does differently from backward, handled here:
- `nn.Embedding(padding_idx=...)`: backward never moves the padding row (its gradient is zeroed,
  as in training), forward mode would use its tangent. The lookup gets a tangent whose padding row
  is zero; a tied output head keeps the full tangent (backward's head gradient of that row is real).
- PyTorch's flash and memory-efficient attention kernels have no forward-mode derivative: SDPA runs
  on its math backend and other implementations are switched to eager for the pass.

IF per layer group uses tangents restricted to each group, several per pass with `vmap` while they
fit in `group_memory_gb` (estimated by `tangent_bytes`); the groups sum to the total (linearity of
the derivative in the tangent). Batches are planned like the log-prob engine's (sorted by length,
right-padded without a mask, output head only at the positions that predict a completion token), but
per pair: a pair's two sequences share a batch, so the padding differs from the engine's and the
log-probs agree with it to float32 precision, not bit for bit."""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import Sequence

import numpy as np
import torch
from torch.func import functional_call, jvp, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel
from tqdm.auto import tqdm

from ..core import faults
from .logprobs import batch_logps, pair_sequences, plan_batches


class _LogpsOf(torch.nn.Module):
    """A module whose forward is the log-prob engine over `inner`, so `functional_call` can swap
    the inner model's parameters for tensors that carry tangents."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, seqs, pad_id, head_chunk):
        return batch_logps(self.inner, seqs, pad_id, head_chunk)


def _aliases(model, names: Sequence[str]) -> dict[str, tuple[list[str], int | None]]:
    """For each selected parameter: every module attribute that holds the same tensor (a tied
    output head shares the embedding's), and the padding index of the embedding lookups among them.

    Each alias must carry the tangent (`functional_call` with `tie_weights=False` swaps only the
    names it is given), except that the padding row of an embedding lookup carries none."""
    by_id: dict[int, list[str]] = {}
    for n, p in model.named_parameters(remove_duplicate=False):
        by_id.setdefault(id(p), []).append(n)
    lookups = {f"{m_name}.weight": m.padding_idx for m_name, m in model.named_modules()
               if isinstance(m, torch.nn.Embedding) and m.padding_idx is not None}
    params = dict(model.named_parameters())
    out = {}
    for n in names:
        every = by_id.get(id(params[n]), [n])
        out[n] = (every, {a: lookups[a] for a in every if a in lookups})
    return out


@contextlib.contextmanager
def forward_mode_attention(model):
    """Attention that has a forward-mode derivative, for the duration of the block."""
    cfg = getattr(model, "config", None)
    impl = getattr(cfg, "_attn_implementation", "eager")
    if impl == "sdpa":
        with sdpa_kernel([SDPBackend.MATH]):
            yield
        return
    if impl in (None, "eager") or not impl.startswith(("flash", "flex")):
        yield  # eager, or an implementation registered by the caller (tests' float64 attention)
        return
    configs = [m.config for m in model.modules()
               if getattr(getattr(m, "config", None), "_attn_implementation", None) == impl]
    for c in configs:
        c._attn_implementation = "eager"
    try:
        yield
    finally:
        for c in configs:
            c._attn_implementation = impl


def plan_pair_batches(seqs, token_budget: int, max_pairs: int) -> list[list[int]]:
    """Pairs (chosen at 2i, rejected at 2i+1 of `seqs`) grouped by length so that a batch's two
    padded sequences per pair fit the token budget."""
    lengths = [max(len(seqs[2 * i][0]), len(seqs[2 * i + 1][0])) for i in range(len(seqs) // 2)]
    return plan_batches(lengths, max(token_budget // 2, 1), max_pairs)


def jvp_influence(model, params: "OrderedDict[str, torch.nn.Parameter]",
                  tangent: Sequence[torch.Tensor], train_pairs, ref_chosen, ref_rejected, objective,
                  pad_id: int, *, groups: Sequence[str], per_group: bool = True,
                  group_memory_gb: float = 2.0, max_length: int | None = 1024,
                  token_budget: int = 1024, max_pairs: int = 32, head_chunk: int = 1024,
                  extra_tangents: "dict[str, Sequence[torch.Tensor]] | None" = None,
                  progress: bool = True, desc: str = "IF: forward mode"):
    """IF of every training pair along `tangent` (one tensor per selected parameter, usually
    ∇L_val), by forward mode. Returns (IF arrays by column, policy chosen log-probs, rejected).

    With `per_group`, one column per layer group (the tangent restricted to the group's
    parameters); else the total only, under the name "total". `extra_tangents` adds one column per
    entry (e.g. the gradient of another validation set), each along its whole tangent. Columns are
    computed several per pass (vmap) as far as they fit in `group_memory_gb`."""
    names = list(params)
    group_names = list(OrderedDict.fromkeys(groups))
    wrapper = _LogpsOf(model)
    aliases = _aliases(model, names)
    seqs = pair_sequences(train_pairs, max_length)
    dtype = next(iter(params.values())).dtype
    device = next(iter(params.values())).device
    primals = {n: p.detach() for n, p in params.items()}
    v = {n: t.detach().to(dtype) for n, t in zip(names, tangent)}

    # One tangent per output column: v restricted to each layer group (or v itself), and the extras.
    # Built when needed, so only the columns of one pass are in memory at a time.
    def group_tangent(k):
        return {n: v[n] if g == k else torch.zeros_like(v[n]) for n, g in zip(names, groups)}

    builders: "OrderedDict[str, object]" = OrderedDict()
    if per_group:
        for k in group_names:
            builders[k] = lambda k=k: group_tangent(k)
    else:
        builders["total"] = lambda: v
    for name, t in (extra_tangents or {}).items():
        builders[name] = lambda t=t: {n: x.detach().to(dtype) for n, x in zip(names, t)}
    per_pass = max(1, int(group_memory_gb * 2**30
                          // tangent_bytes(model, params, token_budget, head_chunk)))
    order = list(builders)
    chunks = [order[i:i + per_pass] for i in range(0, len(order), per_pass)]
    if len(chunks) == 1 and len(order) > 1:  # one pass: stack once for every batch
        built = [builders[k]() for k in order]
        only = {n: torch.stack([b[n] for b in built]) for n in names}
        del built
    else:
        only = None

    def tangents_of(chunk):
        if len(chunk) == 1:
            return builders[chunk[0]]()
        if only is not None:
            return only
        built = [builders[k]() for k in chunk]
        return {n: torch.stack([b[n] for b in built]) for n in names}

    # Every vmapped tangent has its own (rows x vocabulary) logits block: fewer rows per head
    # matmul.
    chunk_rows = max(16, head_chunk // max(len(c) for c in chunks))

    def losses_and_logps(p, batch_seqs, refs_c, refs_r, lens_c, lens_r):
        full = {}
        for n, t in p.items():
            every, pad_rows = aliases[n]
            for a in every:  # a tied head keeps the full tangent
                if a in pad_rows:  # an embedding lookup: no tangent on its padding row
                    rows = torch.arange(t.shape[0], device=t.device)[:, None] == pad_rows[a]
                    full["inner." + a] = torch.where(rows, t.detach(), t)
                else:
                    full["inner." + a] = t
        logps = functional_call(wrapper, full, (batch_seqs, pad_id, chunk_rows), tie_weights=False,
                                strict=False)
        chosen, rejected = logps[0::2], logps[1::2]
        margin = objective.margin(chosen, rejected, refs_c.to(chosen.dtype),
                                  refs_r.to(chosen.dtype),
                                  lens_c.to(chosen.dtype), lens_r.to(chosen.dtype))
        return objective.loss(margin), chosen, rejected

    out = {k: np.zeros(len(train_pairs)) for k in order}
    logp_c = np.zeros(len(train_pairs))
    logp_r = np.zeros(len(train_pairs))
    batches = plan_pair_batches(seqs, token_budget, max_pairs)
    bar = tqdm(total=len(train_pairs) * len(chunks), desc=desc, unit="pair", disable=not progress)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), forward_mode_attention(model):
            for batch in batches:
                bseqs = [s for i in batch for s in (seqs[2 * i], seqs[2 * i + 1])]
                refs_c = torch.as_tensor(np.asarray(ref_chosen)[batch], device=device)
                refs_r = torch.as_tensor(np.asarray(ref_rejected)[batch], device=device)
                lens_c = torch.tensor([max(len(seqs[2 * i][0]) - seqs[2 * i][1], 0) for i in batch],
                                      device=device)
                lens_r = torch.tensor([max(len(seqs[2 * i + 1][0]) - seqs[2 * i + 1][1], 0)
                                       for i in batch],
                                      device=device)
                f = lambda p: losses_and_logps(p, bseqs, refs_c, refs_r, lens_c, lens_r)
                for chunk in chunks:
                    if len(chunk) == 1:
                        (_, c, r), (dloss, _, _) = jvp(f, (primals,), (tangents_of(chunk),))
                        out[chunk[0]][batch] = dloss.double().cpu().numpy()
                    else:
                        (_, c, r), (dloss, _, _) = _vmapped(f, primals, tangents_of(chunk))
                        for k, g in enumerate(chunk):
                            out[g][batch] = dloss[k].double().cpu().numpy()
                    bar.update(len(batch))
                logp_c[batch] = c.double().cpu().numpy()
                logp_r[batch] = r.double().cpu().numpy()
                faults.point("influence")
    finally:
        bar.close()
        model.train(was_training)
    return out, logp_c, logp_r


def tangent_bytes(model, params, token_budget: int, head_chunk: int) -> int:
    """A rough upper bound of the memory one more tangent costs in a vmapped forward-mode pass: a
    dense copy of the selected parameters, the tangent of every layer's activations for a batch,
    and the tangent of one head block (float64 after the normaliser's cast)."""
    cfg = getattr(model, "config", None)
    text = cfg.get_text_config() if cfg is not None and hasattr(cfg, "get_text_config") else cfg
    hidden = int(getattr(text, "hidden_size", 1024))
    layers = int(getattr(text, "num_hidden_layers", 12))
    inter = int(getattr(text, "intermediate_size", 4 * hidden))
    vocab = int(getattr(text, "vocab_size", 32000))
    first = next(iter(params.values()))
    item = first.element_size()
    param_bytes = sum(p.numel() for p in params.values()) * item
    activation_bytes = token_budget * layers * (8 * hidden + 3 * inter) * item
    head_bytes = head_chunk * vocab * (item + 8)
    return param_bytes + activation_bytes + head_bytes


def _vmapped(f, primals, stacked):
    """jvp of `f` at `primals` along each of the stacked tangents: (primal outputs, stacked tangent
    outputs)."""
    def one(t):
        return jvp(f, (primals,), (t,))

    primal, tangents = vmap(one, out_dims=(None, 0), randomness="error")(stacked)
    return primal, tangents
