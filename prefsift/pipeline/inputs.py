"""What a run checks before it makes its directory or loads a model: the input files, the test
prompts, the reference model, the judge, and the selections imported from other runs."""

from __future__ import annotations

import json
from pathlib import Path

from ..core.errors import ConfigError, require_path
from ..data import load_pairs
from ..selection.imported import check_imported
from .judging import check_api_judge_use, judge_context


def read_test_prompts(path, limit: int | None = None, key: str = "test_prompts") -> list:
    """The prompts of a JSONL file with a `prompt` per line (blank lines skipped), the first
    ``limit``; a line that is not such an object is a `ConfigError` naming the file and line."""
    p = require_path(path, "test prompts file", key)
    prompts = []
    with open(p, "rb") as fh:
        for n, raw in enumerate(fh, start=1):
            # strictly, as the evaluation reads it later: a bad byte is found now, not after
            # training
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ConfigError(key=key, problem=f": {path}, line {n} is not UTF-8; re-save the "
                                                   f"file as UTF-8") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ConfigError(key=key, problem=f": {path}, line {n} is not valid JSON "
                                                   f"({e.msg}); give one "
                                                   '{"prompt": ...} object per line') from None
            if not isinstance(record, dict) or "prompt" not in record:
                raise ConfigError(key=key, problem=f": {path}, line {n} has no `prompt`; give one "
                                                   '{"prompt": ...} object per line') from None
            prompts.append(record["prompt"])
            if limit is not None and len(prompts) >= limit:
                break
    if not prompts:
        raise ConfigError(key=key, problem=f": {path} holds no prompt; give one " '{"prompt": ...} '
                                           'object per line')
    return prompts


def check_run_inputs(cfg) -> dict:
    """Everything `run_pipeline` checks before it makes the run directory or loads a model: the
    input files exist and parse, the reference model resolves, the judge is installed and can judge
    the test prompts, and every imported selection exists. Returns what it read
    (``{"train": PairSet, "validation": PairSet}`` for your files). Raises a `UserError`."""
    from ..eval.judges import check_judge
    from ..models.loading import ModelSourceError, resolve_model_path
    from ..runtime.devices import placement

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
                raise ConfigError(key=k, problem=f": {path} has no usable pair; `prefsift data "
                                                 f"check {path}` lists why")
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
    check_judge(cfg.judge, prompts if (cfg.seeds and cfg.arms) else None,
                where=str(cfg.test_prompts), context=context)
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
            check_imported(name, spec)
    return read
