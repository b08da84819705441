"""The view's table: one row per input pair, in input order, joining the pair's texts (from the
pairs file) with its scores, its reason when it was not scored, every other column of the input
and one kept/dropped column per selection rule.

Columns get a role, which the page uses: `text` (prompt, chosen, rejected; a string or a list of
messages), `score` (numbers: sortable, range-filtered, drawn as distributions), `rule` (kept or
dropped by a selection), `category` (few distinct values: a filter menu), `info` (shown in a row's
detail only)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..core.errors import ConfigError

TEXTS = ("prompt", "chosen", "rejected")
# The scores shown in the table at first (others are one click away), in this order.
MAIN_SCORES = ("if", "lossdiff", "irm", "tif_score", "score_gap", "abs_irm")
# Columns of a scores table that only repeat what the view shows otherwise.
HIDDEN = {"row", "valid"}
MAX_LEVELS = 60  # a string column with at most this many distinct values is a category


@dataclass
class ViewTable:
    """What the page shows: `frame` (one row per input pair) and each column's role."""

    frame: pd.DataFrame
    scores: list[str]
    rules: list[str]
    categories: list[str]
    info: list[str] = field(default_factory=list)
    main: list[str] = field(default_factory=list)  # score columns shown at first
    keep: float | None = None  # the run's kept fraction: the middle window drawn on each score
    # the audit's findings, each with a `finding:KEY` column
    findings: list[dict] = field(default_factory=list)

    def rule_column(self, rule: str) -> str:
        return f"kept:{rule}"

    def finding_column(self, key: str) -> str:
        return f"finding:{key}"


def with_findings(table: ViewTable, findings: list[dict]) -> ViewTable:
    """The table with the audit's findings: per finding its description (key, check, title, line,
    reported, count, share, try) for the panel and a `finding:KEY` column, true on its rows, matched
    by pair id. `findings` are audit.json's entries (each with its `ids`)."""
    ids = table.frame["id"].astype(str)
    known = set(ids)
    meta = []
    for f in findings:
        missing = [i for i in f.get("ids", []) if i not in known]
        if missing:
            raise ConfigError(key="audit", problem=f": its finding {f['key']!r} names "
                                                   f"{len(missing)} pair id(s) that are not in the "
                              f"view's pairs (e.g. {missing[0]!r}); give the audit.json "
                                                   "of these pairs (`prefsift audit` on the same "
                                                   "file)")
        table.frame[table.finding_column(f["key"])] = ids.isin(set(f.get("ids", []))).to_numpy()
        meta.append({k: f.get(k) for k in ("key", "check", "title", "line", "reported",
                                           "cannot_tell", "count", "share", "try", "threshold")})
    table.findings = meta
    return table


def _texts(pairs, n: int) -> dict[str, list]:
    """prompt, chosen, rejected per input row: the parsed pair, or the raw record's fields for a row
    that could not be used (its text is still worth seeing), or None."""
    out = {t: [None] * n for t in TEXTS}
    if pairs is None:
        return out
    cols = pairs.columns
    keys = {"prompt": cols.prompt, "chosen": cols.chosen, "rejected": cols.rejected}
    for i, (row, raw) in enumerate(zip(pairs.rows, pairs.raw.rows)):
        for t in TEXTS:
            value = getattr(row, t)
            if value is None and raw.record is not None and keys[t]:
                value = raw.record.get(keys[t])
            if value is None and t == "prompt" and raw.record is None:
                value = raw.raw_text  # a line that is not JSON: show it as it is
            out[t][i] = value
    return out


def check_same_pairs(scores: pd.DataFrame, pairs, key: str = "train") -> None:
    """The pairs file is the one the table was scored from: same rows, same ids, same order."""
    if pairs is None:
        return
    ids = [str(i) for i in scores["id"]]
    if len(pairs) != len(ids) or pairs.ids != ids:
        bad = next((i for i, (a, b) in enumerate(zip(pairs.ids, ids)) if a != b),
                   min(len(pairs), len(ids)))
        raise ConfigError(key=key, problem=f": {str(pairs.raw.path)!r} has {len(pairs)} rows and "
                                           f"the scores table {len(ids)}; they differ first at row "
                                           f"{bad}; give the pairs file the "
                                           "table was scored from (with the same "
                                           "--prompt-key/--id-key flags)")


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def build_table(scores: pd.DataFrame, pairs=None, masks: dict | None = None,
                keep: float | None = None) -> ViewTable:
    """The view's table from a scores table (one row per input pair, as `prefsift score` writes it),
    the pairs file it was scored from (a `PairSet`, or None: no texts) and {rule: mask}."""
    check_same_pairs(scores, pairs)
    n = len(scores)
    frame = pd.DataFrame({"id": scores["id"].astype(str).to_numpy()})
    for t, values in _texts(pairs, n).items():
        frame[t] = values
    valid = scores["valid"].astype(bool).to_numpy() if "valid" in scores else np.ones(n, bool)
    code = (scores["reason_code"] if "reason_code" in scores
            else scores.get("reason", pd.Series([""] * n)))
    frame["reason"] = np.where(valid, "", code.fillna("").astype(str).to_numpy())
    frame.loc[~valid & (frame["reason"] == ""), "reason"] = "not scored"
    rules = []
    for name, mask in (masks or {}).items():
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (n,):
            raise ConfigError(key="selection", problem=f" {name!r} has {mask.shape[0]} rows and "
                                                       f"the scores table {n}; "
                                                       "give the selection made from this scores "
                                                       "table")
        frame[f"kept:{name}"] = mask
        rules.append(name)
    score_cols, categories, info = [], ["reason"], []
    for c in scores.columns:
        if c in HIDDEN or c in ("id", "reason_code") or c in frame:
            if c == "reason" and "reason_code" in scores:
                frame["reason_text"] = scores[c].fillna("").astype(str).to_numpy()
                info.append("reason_text")
            continue
        s = scores[c]
        if _is_numeric(s):
            frame[c] = pd.to_numeric(s, errors="coerce").astype(float).to_numpy()
            score_cols.append(c)
            continue
        s = s.astype(object).where(s.notna(), None)
        values = ["" if v is None else str(v) for v in s]
        frame[c] = values
        (categories if len(set(values)) <= MAX_LEVELS else info).append(c)
    order = {c: i for i, c in enumerate(MAIN_SCORES)}
    score_cols.sort(key=lambda c: (order.get(c, len(order)), 0))
    main = [c for c in score_cols if c in order][:4] or score_cols[:3]
    return ViewTable(frame, score_cols, rules, categories, info, main, keep)


def masks_from_selection(selection: pd.DataFrame, scores: pd.DataFrame, prefix: str = "") -> dict:
    """{rule: mask} from a selection.parquet (a bool column per arm, or `selected` with its `rule`),
    aligned to the scores table by id."""
    if "id" not in selection:
        raise ConfigError(key="selection",
                          problem="has no id column; give a selection.parquet prefsift wrote")
    by_id = selection.set_index(selection["id"].astype(str))
    if not by_id.index.is_unique:
        by_id = by_id[~by_id.index.duplicated()]
    ids = scores["id"].astype(str)
    out = {}
    for c in selection.columns:
        if c in ("id", "valid") or not pd.api.types.is_bool_dtype(selection[c]):
            continue
        name = f"{prefix}{c}" if prefix else c
        if c == "selected":  # a `prefsift select` folder: named by the folder, or by its rule
            name = prefix.rstrip(":") or (str(selection["rule"].iloc[0])
                                          if "rule" in selection and len(selection) else c)
        out[name] = by_id[c].reindex(ids).fillna(False).astype(bool).to_numpy()
    return out
