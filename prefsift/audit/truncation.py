"""Truncation: the pairs TRL would cut, and on which side. TRL 1.16's DPOTrainer cuts prompt +
answer at `max_length` (keep_start: the end of the answer goes) and drops a pair whose prompt alone
fills `max_length`, without a word. Older TRL also cut the prompt at `max_prompt_length` (keeping
its end).

With a tokenizer the counts are TRL's own tokens (`data.tokenization`, EOS and special tokens
included). Without one they are words, a lower bound on the tokens of a BPE tokenizer (a word is at
least one token), so a pair over the limit in words is surely over it in tokens."""

from __future__ import annotations

import numpy as np

from .finding import Finding, rows_finding
from .texts import AuditTexts


def truncation_findings(
    pairs, t: AuditTexts, max_length: int | None, max_prompt_length: int | None
) -> list[Finding]:
    idx = np.flatnonzero(t.usable)
    n = len(idx)
    unit = t.unit
    bound = "" if unit == "tokens" else "at least "
    out = []
    if max_length is None and max_prompt_length is None:
        f = rows_finding(pairs, "truncation.cut", "truncation", "pairs TRL would cut", [], n)
        f.cannot_tell = "no max_length given (TRL's default is 1024)"
        return [f]
    lp = t.len_prompt.copy()
    prompt_cut = np.zeros(len(lp), bool)
    if max_prompt_length is not None:
        prompt_cut = t.usable & (lp > max_prompt_length)
        lp = np.where(prompt_cut, max_prompt_length, lp)
        out.append(
            rows_finding(
                pairs,
                "truncation.prompt",
                "truncation",
                "prompts cut at max_prompt_length",
                np.flatnonzero(prompt_cut),
                n,
                summary=f"{bound}prompt over {max_prompt_length} {unit} (TRL < 1.0 keeps its end)",
                try_="raise max_prompt_length, or shorten these prompts",
                stats={"max_prompt_length": max_prompt_length, "unit": unit},
            )
        )
    if max_length is not None:
        dropped = t.usable & (lp >= max_length)
        live = t.usable & ~dropped
        c_cut = live & (lp + t.len_chosen > max_length)
        r_cut = live & (lp + t.len_rejected > max_length)
        sides = {
            "chosen only": c_cut & ~r_cut,
            "rejected only": r_cut & ~c_cut,
            "both": c_cut & r_cut,
        }
        stats = {
            "max_length": max_length,
            "unit": unit,
            "dropped_prompt_fills_max_length": int(dropped.sum()),
            **{f"cut_{k.replace(' ', '_')}": int(v.sum()) for k, v in sides.items()},
        }
        out.append(
            rows_finding(
                pairs,
                "truncation.dropped",
                "truncation",
                "pairs TRL drops (prompt fills max_length)",
                np.flatnonzero(dropped),
                n,
                summary=f"{bound}the prompt alone is >= {max_length} {unit}: no answer token is "
                "left",
                try_=f"raise max_length above "
                f"{int(lp[dropped].max()) + 1 if dropped.any() else max_length}"
                " or shorten these prompts",
                stats=stats,
            )
        )
        cut = np.flatnonzero(c_cut | r_cut)
        side_text = ", ".join(f"{k} {int(v.sum())}" for k, v in sides.items())
        longest = int((lp + np.maximum(t.len_chosen, t.len_rejected))[cut].max()) if len(cut) else 0
        out.append(
            rows_finding(
                pairs,
                "truncation.cut",
                "truncation",
                f"pairs TRL cuts at max_length {max_length}",
                cut,
                n,
                summary=f"{bound}prompt + answer over {max_length} {unit}; cut side: {side_text}"
                + ("" if unit == "tokens" else " (name --tokenizer for TRL's exact token counts)"),
                try_=f"max_length {longest} keeps every answer whole (or drop these pairs): a cut "
                "chosen loses the end that made it better",
                stats=stats,
            )
        )
    return out
