"""The tests' tiny models, built in one place (plain functions; the fixtures are in conftest.py).

Each builder gives exactly the model the tests built themselves before: the same config values and
the same seed, so no test's numbers change. A test that needs another size, seed or option passes it
at the call site rather than getting a builder of its own.

- `tiny_model`: prefsift's own `build_tiny_model` (a named preset, "tiny" unless told).
- `word_model`: the "tiny" preset sized to conftest's `word_tokenizer`, with its special ids.
- `save_word_model`: `word_model` and its tokenizer saved to a folder (a model folder for a stage).
- `llama`: a LlamaForCausalLM from a LlamaConfig built here, independent of prefsift's presets.
"""

from __future__ import annotations

from pathlib import Path

import torch

from prefsift.models.loading import build_tiny_model

# The special ids of conftest's `word_tokenizer` (<pad> 0, <bos> 1, <eos> 2).
WORD_IDS = dict(bos_token_id=1, eos_token_id=2, pad_token_id=0)

# `llama`'s config unless a call site says otherwise.
LLAMA = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=64, attn_implementation="eager")


def tiny_model(vocab_size: int, seed: int = 0, *, preset: str = "tiny", **options):
    """`build_tiny_model(preset, vocab_size, seed=seed, **options)`: prefsift's preset, seeded on a
    forked generator (the global one is left alone). `options` as build_tiny_model's (special ids,
    max_position_embeddings, attn_implementation)."""
    return build_tiny_model(preset, vocab_size, seed=seed, **options)


def word_model(tokenizer, seed: int = 0):
    """The "tiny" preset for conftest's `word_tokenizer` (or a copy of it): its vocabulary size and
    its special ids (`WORD_IDS`)."""
    return tiny_model(len(tokenizer), seed, **WORD_IDS)


def save_word_model(tokenizer, folder: Path, seed: int = 0) -> Path:
    """`word_model(tokenizer, seed)` and `tokenizer` saved in `folder`; returns `folder`."""
    word_model(tokenizer, seed).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def llama(vocab_size: int, seed: int, **config):
    """A LlamaForCausalLM with `LLAMA`'s config, `config` over it (e.g. tie_word_embeddings,
    pad_token_id, or other sizes), its weights drawn after `torch.manual_seed(seed)` on the global
    generator (as the tests that built their own did). In float32, in training mode."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=vocab_size, **{**LLAMA, **config})
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg)
