"""A finding of the audit: what was found, on which rows, how it compares with its threshold, and
what to try. Every check returns findings of this one shape, so the terminal, audit.json and the
view's panel show them the same way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# The order the checks run in and the terminal prints them.
CHECKS = ("data", "length", "style", "duplicates", "truncation", "ratings", "scores")


@dataclass
class Finding:
    """One finding. `rows` are positions in the input file (0-based), `ids` their pair ids.

    `reported` is True when the finding is at or above its threshold (`threshold` says which, in
    words); a finding below it is still kept in audit.json, so a reader sees what was checked.
    `cannot_tell` is set (with why) when the data cannot answer the question at all: an empty
    validation set, no pair whose answers differ in length; it is never silently a zero."""

    key: str  # "length.chosen_longer", "duplicates.identical_pairs", ...
    check: str  # one of CHECKS
    title: str  # a few words: "chosen is the longer answer"
    summary: str  # the terminal line's body: what and how much
    count: int  # rows involved
    denominator: int  # rows the share is of
    threshold: str  # the rule that reports it, in words
    reported: bool
    try_: str = ""  # the arm or setting to try
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    ids: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    cannot_tell: str | None = None

    @property
    def share(self) -> float | None:
        return self.count / self.denominator if self.denominator else None

    @property
    def example(self) -> str | None:
        return self.ids[0] if self.ids else None

    def line(self) -> str:
        """The finding as one terminal line: what, how many, share, an example id, what to try."""
        if self.cannot_tell:
            return f"[{self.check}] {self.title}: cannot tell ({self.cannot_tell})"
        share = f" ({100 * self.share:.1f} %)" if self.share is not None and self.count else ""
        head = f"[{self.check}] {self.title}: {self.count:,} of {self.denominator:,}{share}"
        body = f"; {self.summary}" if self.summary else ""
        example = f"; e.g. {self.example}" if self.example else ""
        todo = f" -> try: {self.try_}" if self.try_ and self.reported else ""
        return head + body + example + todo

    def to_json(self) -> dict:
        return {
            "key": self.key,
            "check": self.check,
            "title": self.title,
            "summary": self.summary,
            "reported": self.reported,
            "cannot_tell": self.cannot_tell,
            "count": self.count,
            "denominator": self.denominator,
            "share": self.share,
            "threshold": self.threshold,
            "try": self.try_,
            "example": self.example,
            "stats": _plain(self.stats),
            "ids": list(self.ids),
            "line": self.line(),
        }


def rows_finding(
    pairs,
    key: str,
    check: str,
    title: str,
    rows,
    denominator: int,
    *,
    threshold_count: int = 1,
    threshold_share: float = 0.0,
    summary: str = "",
    try_: str = "",
    stats=None,
    threshold: str | None = None,
) -> Finding:
    """A finding over a set of rows, reported when it holds at least `threshold_count` rows and at
    least `threshold_share` of `denominator`."""
    rows = np.asarray(sorted(set(int(r) for r in rows)), dtype=np.int64)
    count = len(rows)
    share = count / denominator if denominator else 0.0
    reported = count >= threshold_count and share >= threshold_share and count > 0
    if threshold is None:
        threshold = (
            f">= {threshold_count} pair"
            + ("s" if threshold_count != 1 else "")
            + (f" and >= {100 * threshold_share:g} % of them" if threshold_share else "")
        )
    return Finding(
        key,
        check,
        title,
        summary,
        count,
        denominator,
        threshold,
        reported,
        try_,
        rows,
        [pairs.rows[i].id for i in rows],
        dict(stats or {}),
    )


def _plain(value):
    """Numbers and containers as JSON-ready Python values (numpy scalars and arrays included)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return None if not np.isfinite(v) else v
    return value
