"""A transformers model that really computes in float64, for tests that compare two routes of the
same number to 1e-8.

`model.double()` is not enough: transformers' RMSNorm (Llama, Qwen2) casts its input to float32,
normalises, and casts back, and the rotary embedding computes its angles, cos and sin in float32.
The float32 rounding of those steps depends on the CPU's kernels (AVX2 and AVX-512 round
differently, and a vectorised loop and its scalar tail can differ by an ulp), so two routes that
agree to 1e-15 on one machine disagreed by 1e-6 on another. Eager attention's softmax is float32 as
well. An independent reference computes all of these in the model's own dtype, so these fixtures do
that: the norms and the rotary embedding are patched per module, and attention runs under an
implementation registered here ("eager_own_dtype"), the eager formula with its softmax in the
input's dtype and the eager causal mask."""

from __future__ import annotations

import types

import torch


def _rms_norm_in_own_dtype(self, hidden_states: torch.Tensor) -> torch.Tensor:
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))


def _rotary_in_own_dtype(self, x: torch.Tensor, position_ids: torch.Tensor):
    freqs = position_ids[..., None].to(x.dtype) * self.inv_freq.to(device=x.device, dtype=x.dtype)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos() * self.attention_scaling, emb.sin() * self.attention_scaling


def _eager_attention_in_own_dtype(module, query, key, value, attention_mask, scaling, dropout=0.0,
                                  **kwargs):
    groups = getattr(module, "num_key_value_groups", 1)
    if groups > 1:
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = torch.softmax(weights, dim=-1)
    weights = torch.nn.functional.dropout(weights, p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


OWN_DTYPE_ATTENTION = "eager_own_dtype"


def _register_attention() -> None:
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    ALL_ATTENTION_FUNCTIONS.register(OWN_DTYPE_ATTENTION, _eager_attention_in_own_dtype)
    ALL_MASK_ATTENTION_FUNCTIONS.register(OWN_DTYPE_ATTENTION, eager_mask)


def true_float64(model):
    """`model` in float64 with its norms and rotary embedding in float64 too (in place;
    returned)."""
    model = model.double()
    _register_attention()
    if model.config._attn_implementation != "eager":
        raise ValueError("true_float64 replaces eager attention; build the model with "
                         "attn_implementation='eager'")
    model.config._attn_implementation = OWN_DTYPE_ATTENTION
    patched = 0
    for module in model.modules():
        name = type(module).__name__
        if name.endswith("RMSNorm"):
            module.forward = types.MethodType(_rms_norm_in_own_dtype, module)
            patched += 1
        elif name.endswith("RotaryEmbedding"):
            module.inv_freq = module.inv_freq.double()
            module.forward = types.MethodType(_rotary_in_own_dtype, module)
            patched += 1
    assert patched, f"no RMSNorm or rotary embedding found in {type(model).__name__}"
    return model
