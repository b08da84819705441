"""A selection written out (`prefsift select`): selection.parquet (one row per pair), the kept ids,
and, given the scored file, the kept pairs in that file's own format."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core import artifacts
from ..core.errors import require_path
from ..data import ColumnMap
from ..selection.arms import check_selectable
from ..selection.rules import (
    apply_rule,
    check_keep,
    check_rule_columns,
    check_windows,
    overlap_coefficient,
    read_scores_table,
    selection_frame,
    window_of,
)
from .pairs import load_pairs, write_subset


@dataclass
class Selection:
    """What `select_to_folder` kept and wrote; `str()` is what `prefsift select` prints."""

    label: str
    mask: np.ndarray
    n_scored: int
    n_rows: int
    folder: Path
    overlaps: dict = field(default_factory=dict)
    subset: Path | None = None
    subset_rows: int = 0

    def __str__(self) -> str:
        kept = int(self.mask.sum())
        lines = [f"{self.label}: kept {kept} of {self.n_scored} scored pairs "
                 f"({kept / max(self.n_scored, 1):.1%}); {self.n_rows} pairs in the table"]
        lines += [f"  overlap coefficient with {k}: {v:.3f}" for k, v in self.overlaps.items()]
        lines.append(f"selection table: {self.folder / 'selection.parquet'}")
        if self.subset is not None:
            lines.append(f"selected pairs in the input's format: {self.subset} ({self.subset_rows} "
                         f"rows)")
        return "\n".join(lines)


def select_to_folder(scores: str | Path, out: str | Path, *, rule: str = "lossdiff_irm",
                     keep: float = 0.64, window: str | None = None, overlap=(), seed: int = 0,
                     train: str | Path | None = None, columns: ColumnMap | None = None,
                     strict: bool = False, file_format: str | None = None,
                     split: str | None = None) -> Selection:
    """Select from the scores table `scores` by `rule` at `keep` (or by percentile `window`s, e.g.
    "if:20:80" or "lossdiff:10:90,irm:0:80") and write OUT/selection.parquet and
    OUT/selected_ids.txt; with `train` (the scored pair file), also OUT/selected.EXT in its format,
    which TRL's DPOTrainer reads unchanged. `overlap`: rules to report the overlap coefficient
    with."""
    # Every argument checked before the table is read.
    check_keep(keep)
    if window:
        check_windows(window)
    else:
        check_selectable(rule)
    overlap = list(overlap or [])
    for other in overlap:
        check_selectable(other, key="overlap")
    table = read_scores_table(scores)
    if train:
        require_path(train, "scored pairs", "train", kind="any")
    for other in ([] if window else [rule]) + overlap:
        check_rule_columns(table, other, key="rule" if other == rule and not window else "overlap")
    if window:
        mask, label = window_of(table, window)
    else:
        mask, label = apply_rule(table, rule, keep, seed=seed), f"{rule} at keep {keep}"
    folder = Path(out)
    result = Selection(label, mask, int(table["valid"].sum()), len(table), folder,
                       {o: overlap_coefficient(mask, apply_rule(table, o, keep, seed=seed))
                        for o in overlap})
    sel = selection_frame(table, {"selected": mask})
    sel["rule"] = label
    folder.mkdir(parents=True, exist_ok=True)
    artifacts.write_parquet(folder / "selection.parquet", sel)
    artifacts.write_text(folder / "selected_ids.txt",
                         "\n".join(table.loc[mask, "id"].astype(str)) + "\n", seal=False)
    if train:
        pairs = load_pairs(train, columns=columns, strict=strict, file_format=file_format,
                           split=split)
        suffix = "" if pairs.raw.file_format == "hf" else Path(train).suffix
        ids = set(table.loc[mask, "id"].astype(str))
        result.subset = folder / f"selected{suffix}"
        result.subset_rows = write_subset(pairs, [r.id in ids for r in pairs.rows], result.subset)
    return result
