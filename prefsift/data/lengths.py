"""Over-length pairs: reported per row, with the user's policy applied (truncate or drop).

TRL drops a row whose prompt alone reaches `max_length` and truncates the rest silently
(keep_start); prefsift does the same but says so for each row."""

from __future__ import annotations

from .pairset import PairSet
from .readers import DataError
from .tokenization import tokenize_pairs

LENGTH_POLICIES = ("truncate", "drop")
_BATCH = 512


def check_lengths(pairs: PairSet, tokenizer, max_length: int | None = 1024,
                  policy: str = "truncate", strict: bool = False) -> PairSet:
    """Tokenize every usable pair, record `n_tokens`, and apply the over-length policy in place."""
    if policy not in LENGTH_POLICIES:
        raise ValueError(f"unknown over-length policy {policy!r}; choose one of {LENGTH_POLICIES}")
    usable = pairs.valid_rows
    for start in range(0, len(usable), _BATCH):
        chunk = usable[start:start + _BATCH]
        toks = tokenize_pairs(tokenizer, [r.prompt for r in chunk], [r.chosen for r in chunk],
                              [r.rejected for r in chunk], pairs.kind)
        for row, tp in zip(chunk, toks):
            row.n_tokens = tp.longest
            if max_length is None or tp.longest <= max_length:
                continue
            n_prompt = len(tp.prompt_ids)
            if n_prompt >= max_length:
                row.fail("over_length", pairs.columns.prompt or pairs.columns.chosen,
                         f"the prompt alone is {n_prompt} tokens >= max_length {max_length}: no "
                         "response token would remain, so the row is dropped (raise --max-length "
                         "to keep it)")
            elif policy == "drop":
                row.fail("over_length", pairs.columns.chosen,
                         f"prompt+response is {tp.longest} tokens > max_length {max_length}; "
                         "dropped (--overlength truncate keeps it, cut to max_length)")
            else:
                row.notes.append(f"truncated: {tp.longest} tokens > max_length {max_length} "
                                 f"(keep_start)")
            if strict and not row.valid:
                raise DataError(f"{pairs.raw.path}: {row.where}, field '{row.field}': {row.reason}")
    return pairs
