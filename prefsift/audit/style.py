"""Style habits: the words, n-grams and markup far more frequent in chosen than in rejected answers
(or the reverse), by the log-odds ratio with an informative Dirichlet prior (Monroe, Colaresi and
Quinn 2008, "Fightin' Words", eq. 22):

    δ_w = log((y_w^c + α_w) / (n^c + α_0 − y_w^c − α_w))
          − log((y_w^r + α_w) / (n^r + α_0 − y_w^r − α_w))
    σ²_w ≈ 1/(y_w^c + α_w) + 1/(y_w^r + α_w),       z_w = δ_w / σ_w

with y_w the counts of feature w in the chosen (c) and rejected (r) answers, n their totals, and the
informative prior α_w = PRIOR·(y_w^c + y_w^r), α_0 = PRIOR·(n^c + n^r): the pooled corpus as the
background, a tenth as strong as the data (PRIOR = 0.1). A feature seen only on one side y times
then has z ≈ log(11)/√(10.9/y): about 4 at y = 30, so a rare word cannot be a habit.

Two families of features, each with its own totals, so that one cannot fake the other:
- words and their bigrams and trigrams, counted per occurrence (n = all words of that side): a
  habit that is a share of the text ("certainly", "as an ai");
- once-per-answer features, counted per answer (n = the number of answers): the first one to three
  words ("Sure !" as an opening), list markup, headings, bold, code fences, a repeated word
  ("9 9"), and an echoed prompt. Counted per word instead, these would look more frequent in
  whichever side is shorter, which is a length effect, not a habit."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from .finding import Finding, rows_finding
from .texts import AuditTexts

_TOKEN = re.compile(r"\w+|[^\w\s]+")
_MARKUP = {
    "<list item>": re.compile(r"(?m)^\s*(?:[-*\u2022+]|\d+[.)])\s+\S"),
    "<heading>": re.compile(r"(?m)^\s*#{1,6}\s+\S"),
    "<bold>": re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__"),
    "<code fence>": re.compile(r"```"),
    "<repeated word>": re.compile(r"(?i)\b(\w+)\s+\1\b"),
}
ECHO = "<echoes the prompt>"
PRIOR = 0.1
MAX_SHOWN = 15
MAX_TRIED = (
    100  # candidates checked for support, strongest first (each costs a pass over the words)
)


def _echoes(prompt_words: list[str], answer_words: list[str]) -> bool:
    """The answer restates the prompt: it contains the prompt's first min(8, all) words (at least 3)
    in a row, or the whole answer (at least 3 words) is a run of the prompt's words."""
    if len(prompt_words) >= 3:
        head = " " + " ".join(prompt_words[:8]) + " "
        if head in " " + " ".join(answer_words) + " ":
            return True
    if len(answer_words) >= 3:
        return " " + " ".join(answer_words) + " " in " " + " ".join(prompt_words) + " "
    return False


def log_odds(
    y_c: np.ndarray, y_r: np.ndarray, n_c: float, n_r: float
) -> tuple[np.ndarray, np.ndarray]:
    """(δ, z) of Monroe et al.'s eq. 22 with the pooled-count prior (see the module docstring)."""
    y_c, y_r = np.asarray(y_c, dtype=float), np.asarray(y_r, dtype=float)
    a = PRIOR * (y_c + y_r)
    a0 = PRIOR * (n_c + n_r)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.log((y_c + a) / (n_c + a0 - y_c - a)) - np.log((y_r + a) / (n_r + a0 - y_r - a))
        z = delta / np.sqrt(1.0 / (y_c + a) + 1.0 / (y_r + a))
    # A feature in every answer of both sides has no contrast (both odds infinite): δ = z = 0.
    return np.nan_to_num(delta, nan=0.0), np.nan_to_num(z, nan=0.0)


class _Side:
    """One side's answers as word ids (documents separated) and its once-per-answer features."""

    def __init__(self, docs: list[str], prompts: list[str], vocab: dict):
        ids, doc_of, per_doc = [], [], []
        for d, (text, prompt) in enumerate(zip(docs, prompts)):
            words = _TOKEN.findall(text.lower())
            ids.extend(vocab.setdefault(w, len(vocab)) for w in words)
            ids.append(-1)  # a document boundary: no n-gram crosses it
            doc_of.extend([d] * (len(words) + 1))
            feats = {"^ " + " ".join(words[:k]) for k in (1, 2, 3) if len(words) >= k}
            feats.update(name for name, rx in _MARKUP.items() if rx.search(text))
            if _echoes(_TOKEN.findall(prompt.lower()), words):
                feats.add(ECHO)
            per_doc.append(feats)
        self.ids = np.asarray(ids, dtype=np.int64)
        self.doc = np.asarray(doc_of, dtype=np.int64)
        self.per_doc = per_doc
        self.n_words = int((self.ids >= 0).sum())

    def ngrams(self, n: int, base: int) -> tuple[np.ndarray, np.ndarray]:
        """(codes, document) of every word n-gram within a document; code = Σ id_k·base^(n−1−k)."""
        x = self.ids
        if len(x) < n:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        ok = np.ones(len(x) - n + 1, bool)
        code = np.zeros(len(x) - n + 1, np.int64)
        for k in range(n):
            part = x[k : len(x) - n + 1 + k]
            ok &= part >= 0
            code = code * base + np.maximum(part, 0)
        return code[ok], self.doc[: len(x) - n + 1][ok]


def style_findings(pairs, t: AuditTexts, th) -> list[Finding]:
    """The chosen side's habits and the rejected side's, each reported when some feature has
    |z| >= th.style_min_z and appears in at least th.style_min_share of that side's answers (and at
    least th.style_min_answers of them)."""
    idx = np.flatnonzero(t.usable)
    n_pairs = len(idx)
    if n_pairs == 0:
        return [_empty(pairs, key, "no usable pair") for key in ("chosen", "rejected")]
    vocab: dict[str, int] = {}
    prompts = [t.prompt[i] for i in idx]
    side_c = _Side([t.chosen[i] for i in idx], prompts, vocab)
    side_r = _Side([t.rejected[i] for i in idx], prompts, vocab)
    words = np.array(sorted(vocab, key=vocab.get), dtype=object)
    base = max(len(vocab), 1)
    table = []  # (name, family, z, delta, y_c, y_r, docs_c set, docs_r set)
    # Words and n-grams (per occurrence).
    for n in (1, 2, 3):
        if base**n >= 2**62:
            break
        cc, dc = side_c.ngrams(n, base)
        cr, dr = side_r.ngrams(n, base)
        uniq, inv = np.unique(np.concatenate([cc, cr]), return_inverse=True)
        y_c = np.bincount(inv[: len(cc)], minlength=len(uniq))
        y_r = np.bincount(inv[len(cc) :], minlength=len(uniq))
        delta, z = log_odds(y_c, y_r, side_c.n_words, side_r.n_words)
        pick = np.flatnonzero(np.abs(z) >= th.style_min_z)
        for j in pick:
            table.append(
                (
                    _name(uniq[j], n, base, words),
                    f"{n}-gram" if n > 1 else "word",
                    z[j],
                    delta[j],
                    int(y_c[j]),
                    int(y_r[j]),
                    (uniq[j], n, (cc, dc), (cr, dr)),
                )
            )
    # Once-per-answer features (per answer).
    count_c, count_r = Counter(), Counter()
    for s in side_c.per_doc:
        count_c.update(s)
    for s in side_r.per_doc:
        count_r.update(s)
    feats = sorted(set(count_c) | set(count_r))
    if feats:
        y_c = np.array([count_c[f] for f in feats])
        y_r = np.array([count_r[f] for f in feats])
        delta, z = log_odds(y_c, y_r, n_pairs, n_pairs)
        for j in np.flatnonzero(np.abs(z) >= th.style_min_z):
            table.append(
                (
                    _doc_name(feats[j]),
                    "per answer",
                    z[j],
                    delta[j],
                    int(y_c[j]),
                    int(y_r[j]),
                    feats[j],
                )
            )
    need = max(th.style_min_answers, int(np.ceil(th.style_min_share * n_pairs)))
    out = []
    for side, sign in (("chosen", 1), ("rejected", -1)):
        shown, rows = [], set()
        candidates = [r for r in sorted(table, key=lambda r: -sign * r[2]) if sign * r[2] > 0]
        for name, family, z, delta, yc, yr, key in candidates[:MAX_TRIED]:
            in_c, in_r = _docs(key, side_c, side_r)
            mine, other = (in_c, in_r) if sign > 0 else (in_r, in_c)
            if len(mine) < need:
                continue
            only = sorted(mine - other)
            rows.update(int(idx[d]) for d in only)
            shown.append(
                {
                    "feature": name,
                    "kind": family,
                    "z": float(z),
                    "log_odds": float(delta),
                    "count_chosen": yc,
                    "count_rejected": yr,
                    "answers_chosen": len(in_c),
                    "answers_rejected": len(in_r),
                    "pairs_only_this_side": len(only),
                    "example": pairs.rows[int(idx[only[0]])].id if only else None,
                }
            )
            if len(shown) >= MAX_SHOWN:
                break
        other_side = "rejected" if side == "chosen" else "chosen"
        try_ = (
            f"read a few pairs whose {side} answer has them (the view's panel shows them): a "
            "habit the "
            f"raters rewarded is learned; drop or rewrite the pairs, or train on the careful set's "
            f"preference (the one-sided rules on IF or LossDiff)"
            if side == "chosen"
            else f"the {side} answers share a style the {other_side} ones lack: if it is not a "
            "quality "
            f"(a refusal, a truncated answer), the labels follow style: check those pairs"
        )
        f = rows_finding(
            pairs,
            f"style.{side}_habits",
            "style",
            f"habits of the {side} answers",
            rows,
            n_pairs,
            try_=try_,
            stats={"features": shown, "min_z": th.style_min_z, "min_answers": need},
        )
        f.reported = bool(shown)
        f.threshold = (
            f"a feature with z {'>=' if sign > 0 else '<='} "
            f"{'' if sign > 0 else '-'}{th.style_min_z} "
            f"in >= {need} {side} answers ({100 * th.style_min_share:g} % of the pairs, at least "
            f"{th.style_min_answers})"
        )
        f.summary = (
            "; ".join(
                f"'{s['feature']}' z={s['z']:+.1f} ({s['answers_chosen']} chosen / "
                f"{s['answers_rejected']} rejected answers)"
                for s in shown[:5]
            )
            or "no word, n-gram or markup stands out"
        )
        f.count = len(rows)
        out.append(f)
    return out


def _name(code: int, n: int, base: int, words: np.ndarray) -> str:
    parts = []
    for _ in range(n):
        parts.append(words[code % base])
        code //= base
    return " ".join(reversed(parts))


def _doc_name(feat: str) -> str:
    return f"(opens with) {feat[2:]}" if feat.startswith("^ ") else feat


def _docs(key, side_c: _Side, side_r: _Side) -> tuple[set, set]:
    """The answers (positions among the usable pairs) of each side that hold the feature."""
    if isinstance(key, str):
        return (
            {d for d, s in enumerate(side_c.per_doc) if key in s},
            {d for d, s in enumerate(side_r.per_doc) if key in s},
        )
    code, _, (cc, dc), (cr, dr) = key
    return set(np.unique(dc[cc == code]).tolist()), set(np.unique(dr[cr == code]).tolist())


def _empty(pairs, side: str, why: str) -> Finding:
    f = rows_finding(pairs, f"style.{side}_habits", "style", f"habits of the {side} answers", [], 0)
    f.cannot_tell = why
    return f
