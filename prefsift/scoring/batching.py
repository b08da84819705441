"""How the log-prob engine lays out and batches its sequences: each pair as two sequences (chosen,
rejected) built only when a batch needs them, grouped by length under a token budget."""

from __future__ import annotations

from typing import Sequence

from ..data.tokenization import TokenizedPair


class PairSequences(Sequence):
    """Each pair as two (ids, first_scored_position) sequences, chosen at 2i and rejected at 2i+1,
    built when accessed: only the pairs' own token arrays stay in memory, so a pass over 10^5 pairs
    holds no second copy of every token. `length(k)` is a sequence's length without building it."""

    def __init__(self, pairs: Sequence[TokenizedPair], max_length: int | None):
        self.pairs, self.max_length = pairs, max_length

    def __len__(self) -> int:
        return 2 * len(self.pairs)

    def _parts(self, k: int):
        tp = self.pairs[k // 2]
        return tp.prompt_ids, (tp.chosen_ids if k % 2 == 0 else tp.rejected_ids)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        k = k + len(self) if k < 0 else k
        prompt, resp = self._parts(k)
        ids = list(prompt) + list(resp)
        if self.max_length is not None:
            ids = ids[:self.max_length]
        return ids, max(len(prompt), 1)

    def length(self, k: int) -> int:
        prompt, resp = self._parts(k)
        n = len(prompt) + len(resp)
        return n if self.max_length is None else min(n, self.max_length)

    def scored(self, k: int) -> int:
        """Completion tokens the sequence scores (after truncation)."""
        return max(self.length(k) - max(len(self._parts(k)[0]), 1), 0)


def pair_sequences(pairs: Sequence[TokenizedPair], max_length: int | None) -> PairSequences:
    """Each pair as two (ids, first_scored_position) sequences: chosen at 2i, rejected at 2i+1."""
    return PairSequences(pairs, max_length)


def plan_batches(lengths: Sequence[int], token_budget: int, max_batch: int) -> list[list[int]]:
    """Indices grouped into batches of similar length whose padded size fits the token budget."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches, cur, cur_max = [], [], 0
    for i in order:
        longest = max(cur_max, lengths[i])
        if cur and (longest * (len(cur) + 1) > token_budget or len(cur) >= max_batch):
            batches.append(cur)
            cur, longest = [], lengths[i]
        cur.append(i)
        cur_max = longest
    if cur:
        batches.append(cur)
    return batches


def plan_shared_batches(items: Sequence[int], prompt_lens: Sequence[int], cont_lens: Sequence[int],
                        token_budget: int, max_batch: int,
                        min_efficiency: float = 0.8) -> list[list[int]]:
    """Batches for the shared-prompt route, whose padded cost is B·(longest prompt + 2·longest
    response). Pairs are taken in order of total length; a batch closes at the token budget or when
    the next pair would bring its padding efficiency (real / padded tokens) under
    `min_efficiency`."""
    order = sorted(range(len(items)),
                   key=lambda j: (-(prompt_lens[j] + 2 * cont_lens[j]), -prompt_lens[j]))
    batches, cur, mp, mc, real = [], [], 0, 0, 0
    for j in order:
        np_, nc = max(mp, prompt_lens[j]), max(mc, cont_lens[j])
        r = real + prompt_lens[j] + 2 * cont_lens[j]
        padded = (np_ + 2 * nc) * (len(cur) + 1)
        if cur and (padded > token_budget or len(cur) >= max_batch or r / padded < min_efficiency):
            batches.append(cur)
            cur, np_, nc, r = [], prompt_lens[j], cont_lens[j], prompt_lens[j] + 2 * cont_lens[j]
        cur.append(items[j])
        mp, mc, real = np_, nc, r
    if cur:
        batches.append(cur)
    return batches
