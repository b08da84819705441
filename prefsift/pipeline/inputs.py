"""What a run checks before it makes its directory or loads a model: the input files, the test
prompts, the reference model, the judge, and the selections imported from other runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError


def read_test_prompts(path, limit: int | None = None, key: str = "test_prompts") -> list:
    """The prompts of a JSONL file with a `prompt` per line (blank lines skipped), the first
    ``limit``; a line that is not such an object is a `ConfigError` naming the file and line."""
    from ..errors import require_path

    p = require_path(path, "test prompts file", key)
    prompts = []
    with open(p, "rb") as fh:
        for n, raw in enumerate(fh, start=1):
            try:  # strictly, as the evaluation reads it later: a bad byte is found now, not after training
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ConfigError(key=key, problem=f": {path}, line {n} is not UTF-8; re-save the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ConfigError(key=key, problem=f": {path}, line {n} is not valid JSON ({e.msg}); give one "
                                                   '{"prompt": ...} object per line') from None
            if not isinstance(record, dict) or "prompt" not in record:
                raise ConfigError(key=key, problem=f": {path}, line {n} has no `prompt`; give one "
                                                   '{"prompt": ...} object per line') from None
            prompts.append(record["prompt"])
            if limit is not None and len(prompts) >= limit:
                break
    if not prompts:
        raise ConfigError(key=key, problem=f": {path} holds no prompt; give one " '{"prompt": ...} object per line')
    return prompts


def check_run_inputs(cfg) -> dict:
    """Everything `run_pipeline` checks before it makes the run directory or loads a model: the
    input files exist and parse, the reference model resolves, the judge is installed and can judge
    the test prompts, and every imported selection exists. Returns what it read
    (``{"train": PairSet, "validation": PairSet}`` for your files). Raises a `UserError`."""
    from ..data import load_pairs
    from ..errors import require_path
    from ..eval.judges import check_judge
    from ..models import ModelSourceError, resolve_model_path

    from ..devices import placement
    from .judging import check_api_judge_use, judge_context

    placement(cfg.device, cfg.dtype)  # a CUDA device asked for where there is none
    read: dict = {}
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(key="out", problem=f": {cfg.out!r} is a file; give a folder for the run")
    ref_spec = None
    prompts = None
    if cfg.lab is None and cfg.sentiment is None:
        require_path(cfg.train, "training pairs", "train", kind="any")
        require_path(cfg.validation, "validation pairs", "validation", kind="any")
        ref_spec = cfg.reference
        prompts = read_test_prompts(cfg.test_prompts, cfg.eval_prompts)
        read["train"] = load_pairs(cfg.train, strict=cfg.scores.strict)
        read["validation"] = load_pairs(cfg.validation, strict=cfg.scores.strict)
        for k in ("train", "validation"):
            if not read[k].valid_rows:
                path = getattr(cfg, k)
                raise ConfigError(key=k, problem=f": {path} has no usable pair; `prefsift data check {path}` lists why")
    elif cfg.sentiment is not None:
        from ..lab.sentiment import check_sentiment_inputs

        try:
            check_sentiment_inputs(cfg.sentiment)
        except ConfigError as e:
            raise e.within("sentiment") from None
        ref_spec = cfg.reference
    if ref_spec is not None:
        try:
            resolve_model_path(ref_spec)
        except ModelSourceError as e:
            raise ConfigError(key="reference", problem=f": {e}") from None
    # The judge is made even when no arm is trained; it judges prompts only when one is.
    context = judge_context(cfg)
    check_judge(cfg.judge, prompts if (cfg.seeds and cfg.arms) else None, where=str(cfg.test_prompts), context=context)
    if cfg.calibration.judge:  # (the lab's validation prompts are made later, and are the lab's)
        from .probes import validation_prompts

        val = read.get("validation")
        asked = validation_prompts(val, cfg.calibration.prompts) if val else None
        try:
            check_judge(cfg.calibration.judge, asked, where=str(cfg.validation), context=context)
        except ConfigError as e:
            raise ConfigError(key="calibration.judge", problem=e.problem) from None
    check_api_judge_use(cfg)
    for name, spec in cfg.imported.items():
        if name in cfg.arms:
            _imported_table(name, *_imported_source(name, spec))
    return read


def _imported_source(name: str, spec: str) -> tuple[Path, str]:
    """'RUN/selection.parquet:COLUMN' → (file, column), the file checked to exist."""
    from ..errors import MissingFileError

    path, _, column = spec.rpartition(":")
    if not Path(path).exists():
        raise MissingFileError(key=f"imported.{name}", problem=f": {path} does not exist; run the other config first")
    return Path(path), column


def _imported_table(name: str, path: Path, column: str) -> pd.DataFrame:
    """Another run's selection table, checked to hold ``id`` and a true/false ``column``."""
    key = f"imported.{name}"
    try:
        other = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several kinds for a file that is not Parquet
        raise ConfigError(key=key, problem=f": {path} is not a readable Parquet file ({type(e).__name__}); use a "
                                           "run's selection.parquet") from None
    if "id" not in other.columns:
        raise ConfigError(key=key, problem=f": {path} has no `id` column; use a run's selection.parquet")
    if column not in other.columns:
        choices = [c for c in other.columns if c not in ("id", "valid", "reason")]
        raise ConfigError(key=key, problem=f": {path} has no column {column!r}; it has {choices}")
    if not pd.api.types.is_bool_dtype(other[column]):
        raise ConfigError(key=key, problem=f": column {column!r} of {path} is {other[column].dtype}, not a "
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
        raise ConfigError(key=f"imported.{name}", problem=f": {missing} of this run's {len(ids)} pair ids are not in "
                                                          f"{path}; an imported selection must come from a run over "
                                                          "the same pairs")
    kept = set(other.loc[other[column].to_numpy(dtype=bool), "id"].astype(str))
    return ids.isin(kept).to_numpy() & table["valid"].to_numpy(dtype=bool)
