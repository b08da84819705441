"""The view's data as compact columnar JSON, embedded in the page: numbers with 6 significant
digits, kept/dropped as a string of 0s and 1s, categories and repeated texts as levels plus codes.
At 10⁵ rows the columns cost a few bytes a row; the texts are what size the file."""

from __future__ import annotations

import json
import math

import numpy as np

from .frame import TEXTS, ViewTable


def _number(v) -> str:
    if v is None or not math.isfinite(v):
        return "null"
    return f"{v:.6g}"


def _levels(values: list) -> dict:
    """Distinct values and one code per row (texts repeat: a prompt answered twice, a category)."""
    index, levels, codes = {}, [], []
    for v in values:
        key = (v if isinstance(v, str) or v is None
               else json.dumps(v, sort_keys=True, ensure_ascii=False))
        if key not in index:
            index[key] = len(levels)
            levels.append(v)
        codes.append(index[key])
    return {"levels": levels, "codes": codes}


def _turns(value):
    """A text cell: a string as it is, a list of messages as [[role, content], ...]."""
    if isinstance(value, list):
        return [[str(m.get("role", "")), m.get("content") if isinstance(m.get("content"), str)
                 else json.dumps(m.get("content"), ensure_ascii=False)] if isinstance(m, dict)
                else ["", str(m)] for m in value]
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def encode(table: ViewTable) -> dict:
    """The page's data: {n, columns: [{name, role, kind, ...}], keep}."""
    f = table.frame
    cols = [{"name": "id", "role": "id", "kind": "str", "values": f["id"].tolist()}]
    for t in TEXTS:
        cols.append({"name": t, "role": "text", "kind": "text",
                     **_levels([_turns(v) for v in f[t]])})
    for r in table.rules:
        kept = f[table.rule_column(r)].to_numpy(dtype=bool)
        cols.append({"name": r, "role": "rule", "kind": "bool",
                     "bits": "".join("1" if k else "0" for k in kept)})
    for found in table.findings:  # the audit's findings: a bit per row, filtered from the panel
        on = f[table.finding_column(found["key"])].to_numpy(dtype=bool)
        cols.append({"name": found["key"], "role": "finding", "kind": "bool",
                     "bits": "".join("1" if k else "0" for k in on)})
    for c in table.categories:
        cols.append({"name": c, "role": "category", "kind": "cat", **_levels(f[c].tolist())})
    for c in table.scores:
        cols.append({"name": c, "role": "score", "kind": "num", "main": c in table.main,
                     "raw": "[" + ",".join(_number(v) for v in f[c].to_numpy(dtype=float)) + "]"})
    for c in table.info:
        cols.append({"name": c, "role": "info", "kind": "cat", **_levels(f[c].tolist())})
    return {"n": len(f), "keep": table.keep, "columns": cols, "audit": table.findings}


def to_json(data: dict) -> str:
    """JSON safe inside a <script> element: every `<` escaped, so no text can close the element."""
    raws = {}
    for i, col in enumerate(data["columns"]):
        if "raw" in col:  # numbers already written, spliced in without a second pass
            raws[f"@@RAW{i}@@"] = col.pop("raw")
            col["values"] = f"@@RAW{i}@@"
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    for key, raw in raws.items():
        text = text.replace(f'"{key}"', raw, 1)
    return text


def decode_numbers(col: dict) -> np.ndarray:
    """A numeric column as written (for tests: what the page reads)."""
    return np.array([np.nan if v is None else v for v in col["values"]], dtype=float)
