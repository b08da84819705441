"""Duplicates and leaks: pairs that say the same thing twice, pairs whose two answers are (nearly)
the same, and training prompts that are also validation or test prompts.

"The same" ignores case and runs of whitespace (`texts.normalise`). Near-identical answers are
measured by rapidfuzz (a maintained C++ library): `fuzz.ratio`, the normalised Indel similarity
100·(1 − (insertions + deletions) / (len(a) + len(b))) of the two normalised texts, at least
`near_min_similarity` (95: about one character in twenty changed). A short answer with one word
changed is not near-identical by this measure (it is a real difference); a long answer with a word
or a punctuation mark changed is. Such a pair's label rests on that one detail."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from rapidfuzz import fuzz

from .finding import Finding, rows_finding
from .texts import AuditTexts, as_text, normalise


def _parsed(row) -> bool:
    """The row's pair was read (it may still be unusable for another reason: a duplicate id)."""
    return row.chosen is not None and row.rejected is not None


def identical_pairs(pairs) -> Finding:
    """Rows whose (prompt, chosen, rejected) appears more than once (every copy, the first
    included)."""
    groups = defaultdict(list)
    for i, r in enumerate(pairs.rows):
        if _parsed(r):
            groups[
                (
                    normalise(as_text(r.prompt)),
                    normalise(as_text(r.chosen)),
                    normalise(as_text(r.rejected)),
                )
            ].append(i)
    copies = [g for g in groups.values() if len(g) > 1]
    rows = [i for g in copies for i in g]
    n = sum(1 for r in pairs.rows if _parsed(r))
    return rows_finding(
        pairs,
        "duplicates.identical_pairs",
        "duplicates",
        "the same pair more than once",
        rows,
        n,
        summary=f"{len(copies)} pair(s) appear {len(rows)} times in all (case and spacing ignored)",
        try_="keep one copy of each (prefsift data subset); a repeated pair weighs double in DPO",
        stats={
            "groups": [[pairs.rows[i].id for i in g] for g in copies[:200]],
            "n_groups": len(copies),
        },
    )


def same_answers(pairs, t: AuditTexts) -> Finding:
    """chosen identical to rejected: the rows the data layer refused for it (`identical`, or any
    reason when the two fields are equal: in the UltraFeedback layout two equal conversations are a
    prompt mismatch first), and usable rows whose answers differ only in case or spacing."""
    cols = pairs.columns

    def same_raw(i, r) -> bool:  # a row the data layer refused whose two answer fields are equal
        rec = pairs.raw.rows[i].record
        return (
            not r.valid
            and rec is not None
            and rec.get(cols.chosen) is not None
            and rec.get(cols.chosen) == rec.get(cols.rejected)
        )

    rows = [i for i, r in enumerate(pairs.rows) if r.code == "identical" or same_raw(i, r)]
    rows += [
        i for i in np.flatnonzero(t.usable) if normalise(t.chosen[i]) == normalise(t.rejected[i])
    ]
    n = len(pairs)
    return rows_finding(
        pairs,
        "duplicates.chosen_equals_rejected",
        "duplicates",
        "chosen is the same as rejected",
        rows,
        n,
        summary="the pair carries no preference (the data layer leaves exact copies out; "
        "copies that differ in case or spacing only are counted here too)",
        try_="drop them; TRL trains on them silently (a zero-margin pair pulls both answers down)",
    )


def near_identical(pairs, t: AuditTexts, th) -> Finding:
    """Usable pairs whose answers are near-identical texts (rapidfuzz's normalised Indel similarity,
    on the case- and spacing-normalised texts) without being the same."""
    rows, sims = [], []
    idx = np.flatnonzero(t.usable)
    for i in idx:
        a, b = normalise(t.chosen[i]), normalise(t.rejected[i])
        if a == b:
            continue  # counted as chosen == rejected
        s = fuzz.ratio(a, b, score_cutoff=th.near_min_similarity)
        if s:
            rows.append(i)
            sims.append(s)
    return rows_finding(
        pairs,
        "duplicates.near_identical_answers",
        "duplicates",
        "near-identical answers",
        rows,
        len(idx),
        threshold_share=th.near_min_share,
        summary=f"chosen and rejected are >= {th.near_min_similarity:g} % similar (characters: "
        "one edit in twenty), yet not the same",
        try_="check their labels: a detail decides them (a near tie, a typo fix); they are "
        "the pairs a reward model finds hardest; drop them or weight them down",
        stats={"median_similarity": float(np.median(sims)) if sims else None},
    )


def prompt_leaks(pairs, t: AuditTexts, others: dict[str, list[str]]) -> list[Finding]:
    """Usable training pairs whose prompt is also one of the prompts in `others` ({"validation":
    [...], "test": [...]}): a leak makes validation and test numbers look better than they are."""
    out = []
    idx = np.flatnonzero(t.usable)
    keys = {i: normalise(t.prompt[i]) for i in idx}
    for name, prompts in others.items():
        seen = {normalise(p) for p in prompts if p}
        rows = [i for i in idx if keys[i] in seen]
        n_shared = len({keys[i] for i in rows})
        out.append(
            rows_finding(
                pairs,
                f"duplicates.prompt_leak.{name}",
                "duplicates",
                f"training prompts that are {name} prompts",
                rows,
                len(idx),
                summary=f"{n_shared} distinct prompt(s) of {len(seen)} {name} prompts are in "
                "the training file",
                try_=f"drop these training pairs (prefsift data subset) or those {name} prompts: "
                f"a leak inflates every {name} number",
                stats={"shared_prompts": n_shared, f"{name}_prompts": len(seen)},
            )
        )
    return out
