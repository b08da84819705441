"""`PairSet`: every row of a preference file, parsed, validated and identified, in input order."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from .pairs import RATING_FIELDS, ColumnMap, PairRow, parse_pairs
from .readers import DataError, RawFile, read_raw


@dataclass
class PairSet:
    raw: RawFile
    columns: ColumnMap
    rows: list[PairRow]
    kind: str  # "standard" | "conversational"
    implicit_prompt: bool

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def valid_rows(self) -> list[PairRow]:
        return [r for r in self.rows if r.valid]

    @property
    def invalid_rows(self) -> list[PairRow]:
        return [r for r in self.rows if not r.valid]

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.rows]

    def records(self, mask=None) -> list[dict]:
        """The usable pairs as TRL dataset rows ({prompt, chosen, rejected}, prompt made explicit),
        optionally only those whose position in `mask` (one entry per input row) is true."""
        rows = (self.valid_rows if mask is None
                else [r for r, m in zip(self.rows, mask) if m and r.valid])
        return [{"prompt": r.prompt, "chosen": r.chosen, "rejected": r.rejected} for r in rows]

    @property
    def has_ratings(self) -> bool:
        """The file carries the dataset's own ratings (score_chosen / score_rejected)."""
        return all(f in self.raw.columns for f in RATING_FIELDS)

    @property
    def bad_rating_rows(self) -> list[PairRow]:
        """Usable pairs whose ratings are not numbers (left out of the score_gap baseline only)."""
        return [r for r in self.rows if r.valid and r.rating_problem]

    def rating_gaps(self):
        """score_chosen − score_rejected per input row; NaN where the row is unusable or a rating is
        bad."""
        return np.array([r.rating_gap if r.valid and r.rating_gap is not None else np.nan
                         for r in self.rows])

    def reason_counts(self) -> Counter:
        return Counter(r.code for r in self.rows if not r.valid)

    def extra_columns(self) -> list[str]:
        used = {self.columns.prompt, self.columns.chosen, self.columns.rejected, self.columns.id}
        return [c for c in self.raw.columns if c not in used]

    def to_frame(self, extras: bool = True):
        """One row per input row: id, validity and reason, the pair, and the file's other
        columns."""
        records = []
        extra_cols = self.extra_columns() if extras else []
        for r, raw in zip(self.rows, self.raw.rows):
            rec: dict[str, Any] = {
                "id": r.id, "row": r.index, "where": r.where, "valid": r.valid,
                "reason_code": r.code or "", "reason": r.reason or "", "notes": "; ".join(r.notes),
                "n_tokens": r.n_tokens,
            }
            if self.has_ratings:
                rec["rating_problem"] = r.rating_problem or ""
            for c in extra_cols:
                rec[c] = raw.record.get(c) if raw.record is not None else None
            records.append(rec)
        return pd.DataFrame.from_records(records)

    def summary(self) -> str:
        n, bad = len(self.rows), len(self.invalid_rows)
        fmt = f"{self.kind}, {'implicit' if self.implicit_prompt else 'explicit'} prompt"
        lines = [
            f"{self.raw.path} ({self.raw.file_format}; {fmt})",
            f"  rows in: {n}   usable: {n - bad}   not usable: {bad}   rows out: {n}",
        ]
        if self.raw.blank_lines:
            lines.append(f"  blank lines skipped: {self.raw.blank_lines} (not rows)")
        noted = sum(1 for r in self.rows if r.notes)
        if noted:
            lines.append(f"  rows with notes (still usable): {noted}")
        if self.bad_rating_rows:
            lines.append(f"  usable rows with a bad rating (left out of score_gap only): "
                         f"{len(self.bad_rating_rows)}")
        for code, count in sorted(self.reason_counts().items(), key=lambda kv: -kv[1]):
            lines.append(f"    {code:<20} {count}")
        extras = self.extra_columns()
        if extras:
            lines.append(f"  other columns kept through: {', '.join(extras)}")
        return "\n".join(lines)

    def bad_rows_report(self, limit: int | None = None) -> str:
        return _row_report(self.invalid_rows, lambda r: f"[{r.code}] {r.reason}", limit)

    def bad_ratings_report(self, limit: int | None = None) -> str:
        return _row_report(self.bad_rating_rows, lambda r: f"[bad_rating] {r.rating_problem}",
                           limit)

    def subset(self, ids: Iterable[str]) -> list[int]:
        """Row positions of the given ids, in file order."""
        wanted = set(ids)
        missing = wanted - set(self.ids)
        if missing:
            raise DataError(f"{len(missing)} of the requested ids are not in {self.raw.path}, e.g. "
                            f"{sorted(missing)[:3]}; check that the ids come from this file (its "
                            "`id` column, or the content ids prefsift gives rows without one)")
        return [r.index for r in self.rows if r.id in wanted]


def _row_report(rows: list[PairRow], what, limit: int | None) -> str:
    """One line per row (where, id, `what(row)`), the first `limit` of them and a count of the
    rest."""
    lines = [f"  {r.where:<12} id={r.id}  {what(r)}"
             for r in (rows if limit is None else rows[:limit])]
    if limit is not None and len(rows) > limit:
        lines.append(f"  ... and {len(rows) - limit} more (see --report)")
    return "\n".join(lines)


def load_pairs(
    path: str | Path,
    *,
    columns: ColumnMap | None = None,
    strict: bool = False,
    file_format: str | None = None,
    split: str | None = None,
) -> PairSet:
    """Read a preference file (JSONL, JSON, Parquet, CSV or a `save_to_disk` folder).

    strict=True raises `DataError` at the first bad row, naming file, line and field; otherwise
    every row is kept and each bad one carries its reason."""
    columns = columns or ColumnMap()
    raw = read_raw(path, file_format=file_format, split=split)
    rows, kind, implicit = parse_pairs(raw, columns, strict=strict)
    return PairSet(raw, columns, rows, kind, implicit)
