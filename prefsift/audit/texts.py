"""The pairs as the audit reads them: each usable pair's prompt and answers as plain text, and the
answers' lengths, in tokens when a tokenizer is named (TRL's own tokenization, so a count is what
DPOTrainer trains on) or else in words (whitespace-separated: no model needed).

Everything is taken from the data layer's `PairSet` (every TRL format, the prompt made explicit):
the audit never reads a file by hand."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..data import PairSet
from ..data.tokenization import tokenize_pairs

_SPACE = re.compile(r"\s+")


def as_text(value) -> str:
    """A prompt or an answer as one string: a string as it is; a message list as its contents, one a
    line (the roles are the template's business, not the answer's)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return "\n".join(str(m.get("content", "")) for m in value if isinstance(m, dict))


def normalise(text: str) -> str:
    """Case and runs of whitespace ignored: 'Sure!  Yes' and 'sure! yes' are the same text."""
    return _SPACE.sub(" ", text).strip().casefold()


@dataclass
class AuditTexts:
    """Per input row (None / -1 where the row is not usable): texts and lengths."""

    pairs: PairSet
    usable: np.ndarray  # bool per row
    prompt: list[str | None]
    chosen: list[str | None]
    rejected: list[str | None]
    len_chosen: np.ndarray  # int per row, -1 where not usable
    len_rejected: np.ndarray
    len_prompt: np.ndarray
    unit: str  # "tokens" | "words"

    @property
    def n_usable(self) -> int:
        return int(self.usable.sum())


def audit_texts(pairs: PairSet, tokenizer=None) -> AuditTexts:
    """The texts and lengths of every usable pair of `pairs` (in tokens with `tokenizer`)."""
    n = len(pairs)
    usable = np.array([r.valid for r in pairs.rows], dtype=bool)
    prompt, chosen, rejected = [None] * n, [None] * n, [None] * n
    for i, r in enumerate(pairs.rows):
        if r.valid:
            prompt[i], chosen[i], rejected[i] = (
                as_text(r.prompt),
                as_text(r.chosen),
                as_text(r.rejected),
            )
    lc, lr, lp = (np.full(n, -1, dtype=np.int64) for _ in range(3))
    idx = np.flatnonzero(usable)
    if tokenizer is None:
        for i in idx:
            lc[i], lr[i], lp[i] = (
                len(chosen[i].split()),
                len(rejected[i].split()),
                len(prompt[i].split()),
            )
        unit = "words"
    else:
        rows = [pairs.rows[i] for i in idx]
        step = 512
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            toks = tokenize_pairs(
                tokenizer,
                [r.prompt for r in chunk],
                [r.chosen for r in chunk],
                [r.rejected for r in chunk],
                pairs.kind,
            )
            for i, tp in zip(idx[start : start + step], toks):
                lc[i], lr[i], lp[i] = len(tp.chosen_ids), len(tp.rejected_ids), len(tp.prompt_ids)
        unit = "tokens"
    return AuditTexts(pairs, usable, prompt, chosen, rejected, lc, lr, lp, unit)
