"""`prefsift audit`: what is wrong with a preference file, before any model is trained or scored."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..audit import AuditReport, Thresholds, run_audit
from ..audit.texts import as_text
from ..core.errors import ConfigError, UserError, require_path
from ..data import ColumnMap, PairSet
from ..data.readers import read_raw
from ..selection.rules import read_scores_table
from .pairs import load_pairs
from .views import audit_view


def _test_prompts(test_prompts, prompt_key: str) -> list[str] | None:
    """Prompt texts from a file of prompts (any format the data layer reads; its `prompt_key`
    column, a string or a message list) or from a list of strings."""
    if test_prompts is None:
        return None
    if not isinstance(test_prompts, (str, Path)):
        return [str(p) for p in test_prompts]

    require_path(
        test_prompts,
        "test prompts",
        "test_prompts",
        kind="any",
        hint=f"give a file with a '{prompt_key}' column, e.g. the lab's test_prompts.jsonl",
    )
    raw = read_raw(test_prompts)
    if prompt_key not in raw.columns:
        raise ConfigError(
            key="test_prompts",
            problem=f": {str(test_prompts)!r} has no '{prompt_key}' column (its "
            f"columns: {', '.join(raw.columns)}); give a file of prompts "
            "or map the column with --prompt-key",
        )
    return [
        as_text(r.record.get(prompt_key))
        for r in raw.rows
        if r.record is not None and r.record.get(prompt_key)
    ]


def _scale(rating_scale):
    if rating_scale is None:
        return None
    if isinstance(rating_scale, str):
        try:
            lo, hi = (float(x) for x in rating_scale.split(":"))
        except ValueError:
            raise ConfigError(
                key="rating_scale", problem=f"{rating_scale!r} is not LOW:HIGH; give e.g. 1:10"
            ) from None
    else:
        lo, hi = rating_scale
    if not lo < hi:
        raise ConfigError(key="rating_scale", problem=f"must have LOW < HIGH, got {lo:g}:{hi:g}")
    return lo, hi


def audit(
    train: str | Path | PairSet | Iterable[dict],
    *,
    validation=None,
    scores=None,
    test_prompts=None,
    tokenizer=None,
    by: Iterable[str] = (),
    max_length: int | None = 1024,
    max_prompt_length: int | None = None,
    rating_scale=None,
    thresholds: Thresholds | None = None,
    seed: int = 0,
    json_out: str | Path | None = None,
    html_out: str | Path | None = None,
    columns: ColumnMap | None = None,
    strict: bool = False,
    file_format: str | None = None,
    split: str | None = None,
) -> AuditReport:
    """Audit a preference file: length bias (against `validation`'s careful share when given), style
    habits, duplicates and prompt leaks (into `validation` and `test_prompts`), TRL truncation at
    `max_length`, the file's own ratings, and with `scores` (a scores.parquet of these pairs) the
    pairs θ holds strongly the other way. No model is needed: lengths are words, or the tokens of
    `tokenizer` (a spec such as a folder or `smollm2`, or a tokenizer object) when given.

    Returns an `AuditReport` (`.lines()` as the CLI prints them, `.get(key)`, `.to_json()`);
    `json_out` writes audit.json, `html_out` the pairs browser with the audit's panel."""
    if max_length is not None and max_length < 1:
        raise ConfigError(key="max_length", problem=f"must be >= 1, got {max_length}")
    if max_prompt_length is not None and max_prompt_length < 1:
        raise ConfigError(key="max_prompt_length", problem=f"must be >= 1, got {max_prompt_length}")
    reading = dict(columns=columns, strict=strict, file_format=file_format, split=split)
    pairs = load_pairs(train, **reading)
    val = None
    if validation is not None:
        val = load_pairs(validation, columns=columns, strict=strict)
        if not any(r.valid for r in val.rows):
            raise UserError(
                f"validation {val.raw.path}: none of its {len(val)} rows is a usable pair; "
                "`prefsift data check` says why for each row, or leave --validation out"
            )
    table, scores_path = None, None
    if scores is not None:
        if isinstance(scores, (str, Path)):
            scores_path = scores
            table = read_scores_table(scores, key="scores")
        else:
            table = scores
    tok = tokenizer
    if isinstance(tokenizer, (str, Path)):
        from ..models.loading import load_tokenizer

        tok = load_tokenizer(tokenizer)
    prompt_key = (columns or ColumnMap()).prompt or "prompt"
    inputs = {
        "train": str(pairs.raw.path),
        "validation": str(val.raw.path) if val is not None else None,
        "scores": str(scores_path) if scores_path else None,
        "test_prompts": str(test_prompts) if isinstance(test_prompts, (str, Path)) else None,
        "tokenizer": str(tokenizer)
        if isinstance(tokenizer, (str, Path))
        else (type(tokenizer).__name__ if tokenizer is not None else None),
        "max_length": max_length,
        "max_prompt_length": max_prompt_length,
    }
    report = run_audit(
        pairs,
        validation=val,
        test_prompts=_test_prompts(test_prompts, prompt_key),
        scores=table,
        tokenizer=tok,
        group_by=list(by or ()),
        max_length=max_length,
        max_prompt_length=max_prompt_length,
        rating_scale=_scale(rating_scale),
        thresholds=thresholds,
        seed=seed,
        inputs=inputs,
    )
    if json_out is not None:
        report.write_json(json_out)
    if html_out is not None:
        audit_view(report, html_out, scores=table)
    return report
