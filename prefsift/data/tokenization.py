"""Tokenize a pair exactly as TRL 1.16's DPOTrainer does, so that prefsift's log-probs, lengths
and selections refer to the same tokens TRL trains on (docs/method.md §14,
"Tokenization: the conventions of TRL 1.16").

- standard pairs: EOS is appended to each response unless present; the tokenizer adds its default
  special tokens (BOS); prompt and prompt+response are tokenized separately;
- conversational pairs: rendered with the chat template, the prompt alone with
  `add_generation_prompt=True`; no EOS is appended (the template's closing tokens are scored);
- the completion starts at the longest common token prefix of the tokenized prompt and
  prompt+response, the minimum over chosen and rejected."""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import Any, Sequence

from ..core.errors import UserError


@dataclass(frozen=True)
class TokenizedPair:
    """Token ids of a pair's prompt and completions; `tokenize_pairs` stores them as int32 arrays
    (`array('i')`: 4 bytes a token, where a list of ints takes about 36), any int sequence works."""

    prompt_ids: Sequence[int]
    chosen_ids: Sequence[int]
    rejected_ids: Sequence[int]

    @property
    def longest(self) -> int:
        return len(self.prompt_ids) + max(len(self.chosen_ids), len(self.rejected_ids))


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _split(p: list[int], pc: list[int], pr: list[int]) -> TokenizedPair:
    n = min(common_prefix_length(p, pc), common_prefix_length(p, pr))
    return TokenizedPair(array("i", p[:n]), array("i", pc[n:]), array("i", pr[n:]))


def _chat_ids(tokenizer, messages: list, **kw) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kw)
    return list(out["input_ids"])


def tokenize_pairs(tokenizer, prompts: Sequence[Any], chosens: Sequence[Any],
                   rejecteds: Sequence[Any], kind: str) -> list[TokenizedPair]:
    """Batch version of TRL's per-example tokenization (identical ids, much faster for strings)."""
    if kind == "standard":
        eos = tokenizer.eos_token
        if eos is None:
            raise UserError("the tokenizer has no eos_token, and TRL appends EOS to standard "
                            "responses: use a model whose tokenizer sets eos_token")
        c = [x if x.endswith(eos) else x + eos for x in chosens]
        r = [x if x.endswith(eos) else x + eos for x in rejecteds]
        p_ids = tokenizer(text=list(prompts))["input_ids"]
        pc_ids = tokenizer(text=[p + x for p, x in zip(prompts, c)])["input_ids"]
        pr_ids = tokenizer(text=[p + x for p, x in zip(prompts, r)])["input_ids"]
        return [_split(list(a), list(b), list(d)) for a, b, d in zip(p_ids, pc_ids, pr_ids)]
    if kind == "conversational":
        if getattr(tokenizer, "chat_template", None) is None:
            raise UserError("conversational pairs (message lists) need a tokenizer with a chat "
                            "template, and this model's has none: use a chat model, or give the "
                            "pairs as plain strings")
        out = []
        for p, ch, rj in zip(prompts, chosens, rejecteds):
            out.append(_split(_chat_ids(tokenizer, p, add_generation_prompt=True),
                              _chat_ids(tokenizer, p + ch), _chat_ids(tokenizer, p + rj)))
        return out
    raise ValueError(f"unknown pair kind {kind!r}")


def tokenize_pair(tokenizer, prompt, chosen, rejected, kind: str) -> TokenizedPair:
    return tokenize_pairs(tokenizer, [prompt], [chosen], [rejected], kind)[0]
