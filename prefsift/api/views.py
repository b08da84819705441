"""`prefsift view`: every pair of a run (or of a scores table and its pairs file) in one
self-contained HTML page: texts, scores, what each rule kept, and why a row was not scored."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..browser import build_table, check_same_pairs, masks_from_selection, page
from ..browser.frame import with_findings
from ..core import artifacts
from ..core.errors import ConfigError, require_path
from ..data import ColumnMap
from ..selection.arms import check_selectable
from ..selection.rules import (
    apply_rule,
    check_keep,
    check_rule_columns,
    read_scores_table,
)
from .pairs import load_pairs
from .runs import open_run


def _run_train(folder: Path, config: dict) -> Path | None:
    """The pairs file a run directory was scored from: the lab's, the sentiment lab's, or its
    config's."""
    for cand in (folder / "lab" / "train.jsonl", folder / "sentiment-lab" / "train.jsonl"):
        if cand.is_file():
            return cand
    for cfg in (config, _json(folder / "score_config.json"),
                _json(folder / "score" / "score_config.json")):
        train = (cfg or {}).get("train")
        if train:
            for cand in (Path(train), folder / train):
                if cand.exists():
                    return cand
    return None


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def _inputs(run, scores, train):
    """(scores path, pairs path or None, {name: selection.parquet path}, config) from the
    arguments."""
    if run is not None and scores is not None:
        raise ConfigError(key="scores",
                          problem="and a run directory were both given; give one: RUN, or --scores "
                                  "FILE --train PAIRS")
    if run is None and scores is None:
        raise ConfigError(key="scores", problem="is missing; give a run directory (prefsift view "
                                                "RUN) or a scores table and its pairs (--scores "
                                                "FILE --train PAIRS)")
    selections = {}
    if run is not None:
        if not Path(run).is_dir():
            raise ConfigError(key="run", problem=f": {str(run)!r} is not a folder; give the --out "
                                                 "of `prefsift run` or `prefsift score`, or "
                                                 "--scores FILE --train PAIRS")
        opened = open_run(run)
        folder = opened.folder
        found = [p for p in (folder / "scores.parquet", folder / "score" / "scores.parquet")
                 if p.is_file()]
        if not found:
            raise ConfigError(key="run", problem=f": {str(folder)!r} holds no scores.parquet (nor "
                                                 "score/scores.parquet); give the --out of "
                              "`prefsift score` or `prefsift run`, or --scores FILE")
        scores_path, config = found[0], opened.config
        if (folder / "selection.parquet").is_file():
            selections[""] = folder / "selection.parquet"
        for path in sorted(folder.glob("*/selection.parquet")):
            selections[path.parent.name] = path
        if train is None:
            train = _run_train(folder, config)
    else:
        scores_path = require_path(scores, "scores table", "scores",
                                   hint="give the scores.parquet that "
                                        "`prefsift score` wrote")
        config = {}
        if train is None:
            train = _run_train(scores_path.parent, {})
            if train is None:
                raise ConfigError(key="train",
                                  problem=f"is missing: there is no score_config.json next to "
                                          f"{str(scores_path)!r} naming the scored pairs; give "
                                          "--train PAIRS, the file the table was "
                                                       "scored from")
    return scores_path, train, selections, config


def _with_treatments(table, treated):
    """The scores table with each treatment arm's weight (a score column: sortable, a range filter)
    and swap ("swapped" / "as labelled": a filter menu), matched by pair id."""
    if treated["id"].astype(str).tolist() != table["id"].astype(str).tolist():
        raise ConfigError(key="run", problem=": its treatments.parquet is not of the pairs of its "
                                             "scores table; rerun the run's selections (`prefsift "
                                             "run` again)")
    table = table.copy()
    for c in treated.columns:
        if c.endswith(":weight"):
            table[c] = treated[c].to_numpy(dtype=float)
        elif c.endswith(":swapped"):
            table[c] = np.where(treated[c].to_numpy(dtype=bool), "swapped", "as labelled")
    return table


def view(run: str | Path | None = None, *, scores: str | Path | None = None,
         train: str | Path | None = None,
         out: str | Path | None = None, rules=(), keep: float | None = None, seed: int = 0,
         columns: ColumnMap | None = None, strict: bool = False, file_format: str | None = None,
         split: str | None = None, title: str | None = None,
         audit: str | Path | None = None) -> Path:
    """Write one self-contained HTML page (no server, no network) with every pair of a run directory
    (`run`: of `prefsift run` or `prefsift score`) or of a scores table (`scores`) and the pairs
    file it was scored from (`train`; found from the run or score_config.json when not given): its
    texts, its scores, kept or dropped by each rule of the run's selection.parquet (and of `rules`
    at `keep`), and the reason for rows that were not scored. Sort, filter, search, open a row,
    export the ids shown for `prefsift data subset --ids`. With `audit` (the audit.json of `prefsift
    audit` on the same pairs), a panel lists its findings and each one filters the table to its
    pairs. Returns the page's path (default RUN/view.html, or view.html next to the scores
    table)."""

    rules = [rules] if isinstance(rules, str) else list(rules or [])
    for rule in rules:
        check_selectable(rule)
    if keep is not None:
        check_keep(keep)
    scores_path, train, selections, config = _inputs(run, scores, train)
    table = read_scores_table(scores_path, key="scores" if run is None else "run")
    for rule in rules:
        check_rule_columns(table, rule)
    if train is None:
        raise ConfigError(key="train",
                          problem=f": found no pairs file for {str(run)!r} (no lab/train.jsonl, no "
                                  "`train` in its config); give --train PAIRS")
    require_path(train, "scored pairs", "train", kind="any")
    pairs = load_pairs(train, columns=columns, strict=strict, file_format=file_format, split=split)
    check_same_pairs(table, pairs)
    if run is not None and (Path(run) / "treatments.parquet").is_file():
        table = _with_treatments(table, pd.read_parquet(Path(run) / "treatments.parquet"))
    masks = {}
    for name, path in selections.items():
        masks.update(masks_from_selection(pd.read_parquet(path), table,
                                          prefix=f"{name}:" if name else ""))
    keep = keep if keep is not None else config.get("keep", 0.64 if rules else None)
    for rule in rules:
        masks[rule] = apply_rule(table, rule, keep if keep is not None else 0.64, seed=seed)
    where = Path(run) if run is not None else Path(scores_path).parent
    path = Path(out) if out is not None else where / "view.html"
    if path.exists() and path.is_dir():
        raise ConfigError(key="out",
                          problem=f": {str(path)!r} is a folder; give the HTML file to write")
    shown = build_table(table, pairs, masks, keep=keep)
    if audit is not None:
        with_findings(shown, _audit_findings(audit))
    label = title or f"prefsift view: {where.resolve().name}"
    sub = f"{len(table)} pairs from {train}; scores from {scores_path}"
    path.parent.mkdir(parents=True, exist_ok=True)
    artifacts.write_text(path, page(shown, label, sub), seal=False)
    return path


def _audit_findings(path) -> list[dict]:
    """The findings of an audit.json that `prefsift audit --json` wrote."""

    require_path(path, "audit", "audit",
                 hint="give the audit.json that `prefsift audit --json` wrote")
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        findings = data["findings"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(key="audit", problem=f": {str(path)!r} is not an audit.json (no "
                                               "findings); give the file that `prefsift audit "
                                               "--json` wrote") from None
    return findings


def audit_view(report, out: str | Path, scores=None, title: str | None = None) -> Path:
    """The pairs browser of an audit (`prefsift audit --html`): every input pair with its texts, its
    reason when unusable, its answers' lengths, the scores table's columns when given, and the
    audit's panel, whose findings filter the table."""

    pairs, t = report.pairs, report.texts
    frame = pairs.to_frame().drop(columns=["n_tokens"])
    frame[f"chosen_{t.unit}"] = np.where(t.usable, t.len_chosen, np.nan)
    frame[f"rejected_{t.unit}"] = np.where(t.usable, t.len_rejected, np.nan)
    if scores is not None:
        for c in scores.columns:
            if c not in frame:
                frame[c] = scores[c].to_numpy()
    table = with_findings(build_table(frame, pairs, {}), [f.to_json() for f in report.findings])
    table.main = [f"chosen_{t.unit}", f"rejected_{t.unit}"]  # the lengths' histograms first
    path = Path(out)
    if path.exists() and path.is_dir():
        raise ConfigError(key="html",
                          problem=f": {str(path)!r} is a folder; give the HTML file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    n_rep = len(report.reported)
    sub = f"{len(pairs)} pairs from {pairs.raw.path}; {n_rep} finding(s) above threshold"
    artifacts.write_text(path, page(table, title or f"prefsift audit: {pairs.raw.path.name}", sub),
                         seal=False)
    return path
