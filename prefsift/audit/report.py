"""The audit as a whole: every check run over the pairs, its findings in one `AuditReport`, printed
as one line per finding, written as audit.json (every finding, below its threshold too, with the ids
of its rows, and every input row with its reason), and shown as a panel of `prefsift view`."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..browser.frame import check_same_pairs
from ..core import artifacts
from ..core.errors import ConfigError, UserError
from ..core.version import __version__
from ..data import PairSet
from .duplicates import identical_pairs, near_identical, prompt_leaks, same_answers
from .finding import CHECKS, Finding, _plain, rows_finding
from .lengths import length_findings
from .ratings import rating_findings
from .scores import score_findings
from .style import style_findings
from .texts import AuditTexts, audit_texts
from .thresholds import Thresholds
from .truncation import truncation_findings

# Group columns used without being asked for (UltraFeedback's name for the model that answered).
DEFAULT_GROUPS = ("source",)


@dataclass
class AuditReport:
    pairs: PairSet
    texts: AuditTexts
    findings: list[Finding]
    thresholds: Thresholds
    inputs: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    def get(self, key: str) -> Finding:
        for f in self.findings:
            if f.key == key:
                return f
        raise KeyError(f"no finding {key!r}; the findings are {[f.key for f in self.findings]}")

    @property
    def reported(self) -> list[Finding]:
        return [f for f in self.findings if f.reported and not f.cannot_tell]

    def lines(self) -> list[str]:
        """What the terminal shows: a header, one line per reported finding, each 'cannot tell', and
        the checks that found nothing above threshold."""
        p, t = self.pairs, self.texts
        out = [
            f"prefsift audit: {p.raw.path} ({len(p):,} rows, {t.n_usable:,} usable; lengths in "
            f"{t.unit})"
        ]
        out += [f.line() for f in self.reported]
        out += [f.line() for f in self.findings if f.cannot_tell]
        quiet = [f.key for f in self.findings if not f.reported and not f.cannot_tell]
        if not self.reported:
            out.append("nothing above its threshold")
        if quiet:
            out.append("below threshold: " + ", ".join(quiet))
        return out

    def to_json(self) -> dict:
        p, t = self.pairs, self.texts
        reasons = {}
        for r in p.rows:
            if not r.valid:
                reasons[r.code] = reasons.get(r.code, 0) + 1

        return {
            "prefsift_version": __version__,
            "inputs": self.inputs,
            "unit": t.unit,
            "pairs": {
                "rows_in": len(p),
                "usable": t.n_usable,
                "not_usable": len(p) - t.n_usable,
                "reasons": reasons,
            },
            "thresholds": _plain(dataclasses.asdict(self.thresholds)),
            "reported": [f.key for f in self.reported],
            "findings": [f.to_json() for f in self.findings],
            "rows": {
                "id": p.ids,
                "where": [r.where for r in p.rows],
                "valid": [r.valid for r in p.rows],
                "reason": [r.code or "" for r in p.rows],
                "reason_text": [r.reason or "" for r in p.rows],
                "len_chosen": [int(x) if x >= 0 else None for x in t.len_chosen],
                "len_rejected": [int(x) if x >= 0 else None for x in t.len_rejected],
            },
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
        }

    def write_json(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        artifacts.write_text(
            path, json.dumps(self.to_json(), ensure_ascii=False, indent=1), seal=False
        )
        return path

    def masks(self) -> dict[str, np.ndarray]:
        """{finding key: bool per input row}: the rows of each finding, for the view's panel."""
        out = {}
        for f in self.findings:
            m = np.zeros(len(self.pairs), bool)
            m[f.rows] = True
            out[f.key] = m
        return out


def unusable(pairs: PairSet) -> Finding:
    rows = [i for i, r in enumerate(pairs.rows) if not r.valid]
    counts = {}
    for i in rows:
        counts[pairs.rows[i].code] = counts.get(pairs.rows[i].code, 0) + 1
    return rows_finding(
        pairs,
        "data.not_usable",
        "data",
        "rows that cannot be used",
        rows,
        len(pairs),
        summary=", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])),
        try_="`prefsift data check` lists each row with its reason and the fix",
        stats={"reasons": counts},
    )


def group_columns(pairs: PairSet, group_by) -> list[str]:
    """The group columns: those asked for (each must be a column of the file), else DEFAULT_GROUPS
    that the file has."""
    cols = pairs.raw.columns
    if group_by:
        for c in group_by:
            if c not in cols:
                raise ConfigError(
                    key="by",
                    problem=f": {c!r} is not a column of {pairs.raw.path} (its columns: "
                    f"{', '.join(cols)}); name a column that groups the pairs",
                )
        return list(group_by)
    return [c for c in DEFAULT_GROUPS if c in cols]


def run_audit(
    pairs: PairSet,
    *,
    validation: PairSet | None = None,
    test_prompts: list[str] | None = None,
    scores=None,
    tokenizer=None,
    group_by=(),
    max_length: int | None = 1024,
    max_prompt_length: int | None = None,
    rating_scale=None,
    thresholds: Thresholds | None = None,
    seed: int = 0,
    inputs: dict | None = None,
) -> AuditReport:
    """Every check over `pairs` (a `PairSet`). `scores`: a scores table of these pairs (rows in the
    same order, as `prefsift score` writes it); `test_prompts`: prompt texts."""
    th = thresholds or Thresholds()
    if len(pairs) == 0:
        raise UserError(
            f"{pairs.raw.path} has no rows: there is nothing to audit; give a file with pairs"
        )
    timings: dict[str, float] = {}

    def timed(name, fn, *a, **kw):
        t0 = time.perf_counter()
        got = fn(*a, **kw)
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0
        return got

    t = timed("read_lengths", audit_texts, pairs, tokenizer)
    vt = (
        timed("read_lengths", audit_texts, validation, tokenizer)
        if validation is not None
        else None
    )
    groups = group_columns(pairs, group_by)
    findings = [unusable(pairs)]
    if t.n_usable == 0:
        raise UserError(
            f"{pairs.raw.path}: none of its {len(pairs)} rows is a usable pair ("
            + findings[0].summary
            + "); `prefsift data check` says why for each row"
        )
    findings += timed("length", length_findings, pairs, t, vt, groups, th, seed)
    findings += timed("style", style_findings, pairs, t, th)
    findings.append(timed("duplicates", identical_pairs, pairs))
    findings.append(timed("duplicates", same_answers, pairs, t))
    findings.append(timed("duplicates", near_identical, pairs, t, th))
    others = {}
    if validation is not None:
        others["validation"] = [vt.prompt[i] for i in np.flatnonzero(vt.usable)]
    if test_prompts is not None:
        others["test"] = list(test_prompts)
    findings += timed("duplicates", prompt_leaks, pairs, t, others)
    findings += timed("truncation", truncation_findings, pairs, t, max_length, max_prompt_length)
    findings += timed("ratings", rating_findings, pairs, rating_scale)
    if scores is not None:
        check_same_pairs(scores, pairs, key="scores")
        findings += timed("scores", score_findings, pairs, t, scores, th)
    findings.sort(key=lambda f: CHECKS.index(f.check))
    timings["total"] = sum(timings.values())
    return AuditReport(pairs, t, findings, th, dict(inputs or {}), timings)
