"""Arms whose selection comes from another run (a run config's `imported`): that run's
selection.parquet column, matched to this run's pairs by id."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import ConfigError, MissingFileError


def _imported_source(name: str, spec: str) -> tuple[Path, str]:
    """'RUN/selection.parquet:COLUMN' → (file, column), the file checked to exist."""
    path, _, column = spec.rpartition(":")
    if not Path(path).exists():
        raise MissingFileError(key=f"imported.{name}",
                               problem=f": {path} does not exist; run the other config first")
    return Path(path), column


def _imported_table(name: str, path: Path, column: str) -> pd.DataFrame:
    """Another run's selection table, checked to hold ``id`` and a true/false ``column``."""
    key = f"imported.{name}"
    try:
        other = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several kinds for a file that is not Parquet
        raise ConfigError(key=key, problem=f": {path} is not a readable Parquet file "
                                           f"({type(e).__name__}); use a "
                                           "run's selection.parquet") from None
    if "id" not in other.columns:
        raise ConfigError(key=key,
                          problem=f": {path} has no `id` column; use a run's selection.parquet")
    if column not in other.columns:
        choices = [c for c in other.columns if c not in ("id", "valid", "reason")]
        raise ConfigError(key=key, problem=f": {path} has no column {column!r}; it has {choices}")
    if not pd.api.types.is_bool_dtype(other[column]):
        raise ConfigError(key=key,
                          problem=f": column {column!r} of {path} is {other[column].dtype}, not a "
                                  "selection (true/false per pair); use a selection.parquet column")
    return other


def imported_selection(table: pd.DataFrame, name: str, spec: str) -> np.ndarray:
    """The mask of another run's selection column over this run's pairs, matched by pair id.

    Every pair id of this run must be in the other run. Only the ids are compared: the lab's ids are
    positions (`lab-train-000123`), so the other run must have read the same pair file. A pair that
    is invalid here is never kept, whatever the other run chose."""
    path, column = _imported_source(name, spec)
    other = _imported_table(name, path, column)
    ids = table["id"].astype(str)
    other_ids = set(other["id"].astype(str))
    missing = (~ids.isin(other_ids)).sum()
    if missing:
        raise ConfigError(key=f"imported.{name}",
                          problem=f": {missing} of this run's {len(ids)} pair ids are not in "
                                  f"{path}; an imported selection must come from a run over "
                                  "the same pairs")
    kept = set(other.loc[other[column].to_numpy(dtype=bool), "id"].astype(str))
    return ids.isin(kept).to_numpy() & table["valid"].to_numpy(dtype=bool)


def check_imported(name: str, spec: str) -> None:
    """A `ConfigError` when ``spec`` ('RUN/selection.parquet:COLUMN') is not a readable selection
    column."""
    _imported_table(name, *_imported_source(name, spec))
