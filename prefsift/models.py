"""Load a causal LM and its tokenizer: a local HF folder, the packaged SmolLM2-135M-Instruct, or a
tiny model built from a transformers config. Everything loads in fp32 unless asked otherwise,
because margins and gradients are differences of large sums of log-probs (see DESIGN.md §4)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

SMOLLM2_NAME = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class TinyPreset:
    """Shape of a tiny causal LM built from a config (no weights are downloaded)."""

    arch: str  # "llama" or "qwen2"
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    help: str


# Two distinct architectures, so the lab can show that pair value depends on the model.
TINY_PRESETS: dict[str, TinyPreset] = {
    "tiny": TinyPreset("llama", 64, 2, 4, 4, 128, "~0.1 M params; unit tests"),
    "lab-a": TinyPreset("llama", 192, 4, 6, 6, 512, "~1.8 M params; the lab's default model (Llama-style)"),
    "lab-b": TinyPreset("qwen2", 160, 3, 5, 5, 640, "~1.3 M params; the lab's second variant (Qwen2-style)"),
}


def build_tiny_model(
    preset: str,
    vocab_size: int,
    *,
    seed: int = 0,
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
    max_position_embeddings: int = 256,
    attn_implementation: str = "eager",
):
    """A randomly initialised causal LM of a named size preset (`TINY_PRESETS`), seeded.

    Eager attention by default: `torch.func.vmap` over sdpa with an attention mask fails, and at
    this size eager is as fast on a CPU."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    if preset not in TINY_PRESETS:
        raise ValueError(f"unknown tiny preset {preset!r}; choose one of {sorted(TINY_PRESETS)}")
    p = TINY_PRESETS[preset]
    common = dict(
        vocab_size=vocab_size,
        hidden_size=p.hidden_size,
        num_hidden_layers=p.num_layers,
        num_attention_heads=p.num_heads,
        num_key_value_heads=p.num_kv_heads,
        intermediate_size=p.intermediate_size,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        tie_word_embeddings=True,
        attn_implementation=attn_implementation,
    )
    config_cls, model_cls = {
        "llama": (LlamaConfig, LlamaForCausalLM),
        "qwen2": (Qwen2Config, Qwen2ForCausalLM),
    }[p.arch]
    config = config_cls(**common)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config)
    return model.float()
